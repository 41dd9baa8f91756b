"""Engine and CLI: evaluation, determinism, checkpoint/resume, validation."""

import json
import math
import time

import pytest
import torch

from metazoo.algorithms import make_method
from metazoo.cli import main
from metazoo.core import adapt, sgd
from metazoo.core.tree import flatten
from metazoo.engine import Estimate, NonFiniteError, TrainConfig, evaluate, rebuild_run, train
from metazoo.engine.setup import build, configure_process
from tests.helpers import double_mlp, read_state, rewrite_run, sinusoid_batch

# strategy vmap: "auto" times vmap against the loop, and on a busy machine two runs may
# choose differently (the strategies agree to rounding, not bit for bit).
TINY = {"iterations": 12, "meta_batch": 4, "log_every": 3, "checkpoint_every": 4, "eval_tasks": 20,
        "eval_query_shots": 10, "eval_steps": [0, 2], "strategy": "vmap"}


def test_estimate_is_mean_and_student_t_95_interval():
    values = torch.tensor([1.0, 2.0, 3.0, 6.0])
    estimate = Estimate.of(values)
    sample_std = math.sqrt(((values - 3.0) ** 2).sum().item() / 3)
    assert estimate.mean == pytest.approx(3.0)
    assert estimate.ci95 == pytest.approx(3.182 * sample_std / 2)  # t(3 dof), as the analysis
    # a diverged task is not hidden: it makes the mean non-finite
    assert math.isinf(Estimate.of(torch.tensor([1.0, float("inf")])).mean)


def test_evaluate_matches_direct_adaptation():
    _, loss, params = double_mlp()
    tasks = sinusoid_batch(num_tasks=6)
    report = evaluate(loss, params, tasks, steps=[3, 0, 1], method=make_method("maml", inner_lr=0.02),
                      state={})
    assert list(report) == [0, 1, 3]
    for steps in (0, 1, 3):
        per_task = []
        for i in range(6):
            task = tasks.task(i)
            adapted = adapt(loss, params, task.support_x, task.support_y, steps, sgd(0.02)).params
            per_task.append(loss(adapted, task.query_x, task.query_y))
        expected = Estimate.of(torch.stack(per_task))
        assert report[steps]["loss"].mean == pytest.approx(expected.mean, rel=1e-10)
        assert report[steps]["loss"].ci95 == pytest.approx(expected.ci95, rel=1e-8)


def test_evaluate_uses_the_methods_own_test_time_adaptation():
    _, loss, params = double_mlp()
    tasks = sinusoid_batch(num_tasks=3)
    plain = evaluate(loss, params, tasks, steps=[2], method=make_method("maml", inner_lr=0.05),
                     state={})
    proximal = evaluate(loss, params, tasks, steps=[2],
                        method=make_method("imaml", inner_solver="gd", inner_lr=0.05, lam=2.0,
                                           test_proximal=True), state={})
    assert plain[2]["loss"].mean != pytest.approx(proximal[2]["loss"].mean, rel=1e-6)
    # without the proximal term iMAML adapts exactly as MAML does
    without = evaluate(loss, params, tasks, steps=[2],
                       method=make_method("imaml", inner_solver="gd", inner_lr=0.05), state={})
    assert without[2]["loss"].mean == plain[2]["loss"].mean
    # Meta-SGD takes its learned step sizes for the k steps they were learned for, no more
    metasgd = make_method("metasgd", inner_steps=1, inner_lr=0.05)
    meta, state = metasgd.init(params)
    capped = evaluate(loss, meta, tasks, steps=[1, 5], method=metasgd, state=state)
    assert capped[5]["loss"].mean == capped[1]["loss"].mean


@pytest.mark.parametrize("algorithm", ["maml", "imaml"])
def test_training_is_deterministic_and_lowers_the_loss(tmp_path, algorithm):
    # A fixed strategy: "auto" times vmap against the loop, and on a busy machine two runs
    # may choose differently (they agree to rounding, not bit for bit).
    config = TrainConfig(algorithm=algorithm, **{**TINY, "iterations": 40, "strategy": "vmap"})
    first = train(config, tmp_path / "a", progress=False)
    second = train(config, tmp_path / "b", progress=False)
    for name in first["params"]:
        assert torch.equal(first["params"][name], second["params"][name])
    assert first["report"][2]["loss"].mean < first["report"][0]["loss"].mean
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == list(range(3, 40, 3)) + [40]
    stored = json.loads((tmp_path / "a" / "config.json").read_text())
    assert TrainConfig.from_dict(stored) == config.resolve()


# Reptile with its carried inner-Adam state: state the run carries but does not train, which
# the checkpoint must hold too.
CARRYING = {"algorithm": "reptile", "algorithm_options": {"inner_optimizer": "adam",
                                                          "carry_moment": True}}


@pytest.mark.parametrize("method", [{"algorithm": "maml"}, CARRYING], ids=["maml", "carried"])
def test_resume_is_bit_identical(tmp_path, method):
    config = TrainConfig(**method, **TINY)
    whole = train(config, tmp_path / "whole", progress=False)
    if method is CARRYING:  # the state moved, and the final θ was adapted from it
        assert whole["state"]["inner_rms_steps"].item() == 12 * config.resolve().inner_steps
        assert all(v.abs().sum() > 0 for v in whole["state"]["inner_rms"].values())
        assert whole["params"].keys() == whole["state"]["inner_rms"].keys()
    # Stop after 8 iterations (the checkpoint at 8), then resume to 12.
    short = TrainConfig(**method, **{**TINY, "iterations": 8})
    train(short, tmp_path / "part", progress=False, evaluate_at_end=False)
    # as if it had been a 12-iteration run killed at 8
    rewrite_run(tmp_path / "part", read_state(tmp_path / "part"), iterations=12)
    resumed = train(config, tmp_path / "part", resume=True, progress=False)
    for name in whole["params"]:
        assert torch.equal(whole["params"][name], resumed["params"][name])
    for name, value in flatten(whole["state"]).items():
        assert torch.equal(value, flatten(resumed["state"])[name])
    iterations = [json.loads(line)["iteration"]
                  for line in (tmp_path / "part" / "log.jsonl").read_text().splitlines()]
    assert iterations == [3, 6, 8, 9, 12]  # 8: the short run logged its last iteration


def test_resume_with_a_different_config_names_the_option(tmp_path):
    config = TrainConfig(**TINY)
    train(config, tmp_path / "run", progress=False, evaluate_at_end=False)
    with pytest.raises(ValueError, match="inner_lr.*stored 0.01.*given 0.02"):
        train(TrainConfig(**{**TINY, "inner_lr": 0.02}), tmp_path / "run", resume=True,
              progress=False)


def test_existing_output_is_not_overwritten(tmp_path):
    train(TrainConfig(**TINY), tmp_path / "run", progress=False, evaluate_at_end=False)
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(ValueError, match="already holds a run"):
        train(TrainConfig(**TINY), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before


def test_nonfinite_stops_with_iteration_and_keeps_checkpoint(tmp_path):
    config = TrainConfig(**{**TINY, "inner_lr": 1e6, "outer_lr": 1e6, "checkpoint_every": 1})
    with pytest.raises(NonFiniteError, match=r"at iteration \d+.*last good checkpoint"):
        train(config, tmp_path / "run", progress=False)
    _, params, _, _ = rebuild_run(tmp_path / "run")
    assert all(torch.isfinite(p).all() for p in params.values())
    skipping = TrainConfig(**{**TINY, "inner_lr": 1e6, "outer_lr": 1e6, "skip_nonfinite": True})
    train(skipping, tmp_path / "skip", progress=False, evaluate_at_end=False)
    log = [json.loads(line) for line in (tmp_path / "skip" / "log.jsonl").read_text().splitlines()]
    assert any(r["skipped"] for r in log)


@pytest.mark.parametrize("options, message", [
    ({"algorithm": "mamll"}, "unknown algorithm 'mamll'"),
    ({"task": "cifar"}, "unknown task"),
    ({"inner_lr": -0.1}, "inner_lr must be a finite number > 0"),
    ({"inner_lr": float("nan")}, "inner_lr must be a finite number > 0"),
    ({"inner_steps": -2}, "inner_steps must be an integer >= 0"),
    ({"meta_batch": 0}, "meta_batch must be a positive integer"),
    ({"iterations": 0}, "iterations must be a positive integer"),
    ({"outer_lr": 0.0}, "outer_lr must be a positive number"),
    ({"outer_optimizer": "rmsprop"}, "outer_optimizer"),
    ({"strategy": "threads"}, "strategy"),
    ({"chunk_size": -2}, "chunk_size"),
    ({"eval_steps": [1, -1]}, "eval_steps"),
    ({"k_shot": 0}, "k_shot"),
    ({"algorithm": "imaml", "algorithm_options": {"imaml_lambda": 0.0}}, "lam must be"),
    ({"algorithm": "imaml", "algorithm_options": {"lam": 0.0}}, "lam must be"),
    ({"algorithm": "imaml", "algorithm_options": {"cg_steps": 0}}, "cg_steps"),
    ({"algorithm": "imaml", "algorithm_options": {"cg_dampng": 1.0}}, "did you mean cg_damping"),
    ({"algorithm": "reptile", "algorithm_options": {"data": "query"}}, "data must be"),
    ({"algorithm": "maml", "algorithm_options": {"cg_steps": 3}}, "maml takes no option"),
])
def test_bad_config_is_refused_clearly(options, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**options)


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_train_and_eval(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(["train", "--algorithm", "fomaml", "--iterations", 6,
                               "--meta-batch", 3, "--eval-tasks", 10, "--eval-steps", 0, 1,
                               "--no-progress", "--out", out], capsys)
    assert code == 0 and "| test steps |" in stdout and "ms per meta-iteration" in stdout
    results = json.loads((out / "results.json").read_text())
    assert set(results["evaluation"]) == {"0", "1"}
    code, stdout, _ = run_cli(["eval", out, "--tasks", 8, "--steps", 2, "--k-shot", 10,
                               "--json", tmp_path / "e.json"], capsys)
    assert code == 0 and "| 2 |" in stdout and "K=10" in stdout
    assert set(json.loads((tmp_path / "e.json").read_text())) == {"2"}


def test_cli_algorithm_options_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, _ = run_cli(["train", "--algorithm", "imaml", "--imaml-lambda", 3.0, "--cg-steps", 2,
                          "--iterations", 4, "--meta-batch", 2, "--eval-tasks", 5,
                          "--no-progress", "--out", out], capsys)
    assert code == 0
    stored = json.loads((out / "config.json").read_text())
    assert stored["algorithm_options"] == {"lam": 3.0, "cg_steps": 2, "cg_damping": 0.0,
                                           "lam_damping": 0.0, "inner_proximal": True,
                                           "test_proximal": False, "inner_solver": "newton",
                                           "solver_cg_steps": 5}
    code, _, err = run_cli(["train", "--resume", out, "--cg-steps", 5, "--no-progress"], capsys)
    assert code == 2 and "algorithm_options" in err
    code, _, err = run_cli(["train", "--resume", out, "--iterations", 6, "--no-progress"], capsys)
    assert code == 2 and "iterations (stored 4, given 6)" in err


@pytest.mark.parametrize("args, message", [
    (["train", "--inner-lr", "-1"], "inner_lr must be a finite number > 0"),
    (["train", "--meta-batch", "0"], "meta_batch must be a positive integer"),
    (["train", "--algorithm", "maml", "--cg-steps", "3"], "is an option of imaml, not of maml"),
    (["train", "--device", "cuda:7"], "not available"),
    (["train", "--resume", "/nonexistent/run"], "no run in /nonexistent/run"),
    (["eval", "/nonexistent/run"], "no run in /nonexistent/run"),
])
def test_cli_errors_exit_2_with_one_clear_line(args, message, capsys, tmp_path):
    code, _, err = run_cli(args + (["--out", tmp_path / "x"] if args[0] == "train"
                                   and "--resume" not in args else []), capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1


def test_cli_out_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep me")
    code, _, err = run_cli(["train", "--out", target], capsys)
    assert code == 2 and "is a file" in err and target.read_text() == "keep me"


def test_cli_config_file(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"algorithm": "reptile", "reptile_data": "support",
                                  "iterations": 3, "meta_batch": 2, "eval_tasks": 4}))
    code, _, _ = run_cli(["train", "--config", config, "--inner-steps", 2, "--no-progress",
                          "--out", tmp_path / "run"], capsys)
    assert code == 0
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["algorithm"] == "reptile" and stored["inner_steps"] == 2
    assert stored["algorithm_options"]["data"] == "support"  # the former name still loads
    config.write_text("{not json")
    code, _, err = run_cli(["train", "--config", config, "--out", tmp_path / "r2"], capsys)
    assert code == 2 and "cannot read it as JSON" in err


def test_time_budget_stops_early_and_records_it(tmp_path):
    config = TrainConfig(**{**TINY, "iterations": 100_000, "time_budget": 0.5})
    summary = train(config, tmp_path / "run", progress=False)
    assert 1 <= summary["iterations"] < 100_000
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["iterations"] == summary["iterations"]
    assert results["train_seconds"] >= 0.5
    assert read_state(tmp_path / "run")["iteration"] == summary["iterations"]


def test_cpu_budget_clock_counts_process_time(tmp_path, monkeypatch):
    # A fake CPU clock that advances one second per reading: every iteration reads it twice
    # (start, end), so a budget of 3 CPU seconds stops after exactly 3 iterations whatever
    # the wall clock says.
    ticks = iter(range(10**6))
    monkeypatch.setattr(time, "process_time", lambda: float(next(ticks)))
    config = TrainConfig(**{**TINY, "iterations": 1000, "time_budget": 3.0, "budget_clock": "cpu"})
    summary = train(config, tmp_path / "run", progress=False, evaluate_at_end=False)
    assert summary["iterations"] == 3
    assert summary["train_seconds"] == 3.0


def test_auto_strategy_is_measured_stored_and_kept_on_resume(tmp_path):
    config = TrainConfig(**{**TINY, "iterations": 4, "checkpoint_every": 2, "strategy": "auto"})
    summary = train(config, tmp_path / "run", progress=False, evaluate_at_end=False)
    assert summary["strategy"] in ("vmap", "loop")
    state = read_state(tmp_path / "run")
    assert state["strategy"] == summary["strategy"]
    # A resumed run reuses the stored choice instead of measuring again (the checkpoint at
    # iteration 2 of a 6-iteration run: the state after iteration 4 stands in for it).
    state["strategy"] = "loop" if summary["strategy"] == "vmap" else "vmap"
    state["iteration"] = state["scheduler"]["last_epoch"] = 2
    rewrite_run(tmp_path / "run", state, iterations=6)
    resumed = train(TrainConfig(**{**TINY, "iterations": 6, "checkpoint_every": 2,
                                   "strategy": "auto"}),
                    tmp_path / "run", resume=True, progress=False, evaluate_at_end=False)
    assert resumed["strategy"] == state["strategy"]


@pytest.mark.parametrize("algorithm", ["metasgd", "anil"])
def test_extended_algorithms_train_and_evaluate(tmp_path, algorithm):
    summary = train(TrainConfig(algorithm=algorithm, **TINY), tmp_path / "run", progress=False)
    if algorithm == "metasgd":
        assert {n for n in summary["params"] if n.startswith("inner_lr.")}
        # the learned step sizes moved away from their initial value
        assert any((p - 0.01).abs().max() > 0 for n, p in summary["params"].items()
                   if n.startswith("inner_lr."))
    _, params, _, _ = rebuild_run(tmp_path / "run")
    assert params.keys() == summary["params"].keys()
    assert summary["report"][2]["loss"].mean < summary["report"][0]["loss"].mean


def test_tf32_is_off_unless_asked_and_set_by_the_run_not_by_build(tmp_path):
    # PyTorch lets cuDNN use TF32 by default; metazoo's float32 must mean float32. The switch
    # is process-wide, so building a setup leaves it alone; the run's start sets it.
    torch.backends.cudnn.allow_tf32 = True
    build(TrainConfig(**TINY))
    assert torch.backends.cudnn.allow_tf32
    configure_process(TrainConfig(**TINY))
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    configure_process(TrainConfig(**{**TINY, "tf32": True}))
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    train(TrainConfig(**{**TINY, "iterations": 1}), tmp_path / "run", progress=False,
          evaluate_at_end=False)
    assert not torch.backends.cudnn.allow_tf32


def test_validation_curve_is_logged_and_resumes_without_duplicates(tmp_path):
    config = TrainConfig(**{**TINY, "val_every": 4, "val_tasks": 6})
    whole = train(config, tmp_path / "whole", progress=False, evaluate_at_end=False)
    curve = [json.loads(line) for line in
             (tmp_path / "whole" / "validation.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in curve] == [4, 8, 12]
    assert all(r["train_seconds"] > 0 and "loss@2" in r for r in curve)
    assert curve[0]["train_seconds"] < curve[-1]["train_seconds"]
    assert whole["iterations"] == 12
    short = TrainConfig(**{**TINY, "val_every": 4, "val_tasks": 6, "iterations": 8})
    train(short, tmp_path / "part", progress=False, evaluate_at_end=False)
    rewrite_run(tmp_path / "part", read_state(tmp_path / "part"), iterations=12)
    train(config, tmp_path / "part", resume=True, progress=False, evaluate_at_end=False)
    resumed = [json.loads(line) for line in
               (tmp_path / "part" / "validation.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in resumed] == [4, 8, 12]
    assert resumed[-1]["loss@2"] == pytest.approx(curve[-1]["loss@2"], rel=1e-12)


def test_validation_never_scores_the_test_tasks_of_a_family_without_parts(tmp_path):
    """Sinusoid has no validation part: its learning curve draws other tasks of the same
    distribution (eval_seed + 1), so a curve (and a search reading it) never sees a test task."""
    from metazoo.engine.run import evaluate_params

    config = TrainConfig(**{**TINY, "val_every": 4, "val_tasks": 6, "eval_tasks": 6,
                            "iterations": 4})
    train(config, tmp_path / "run", progress=False, evaluate_at_end=False)
    setup, params, state, _ = rebuild_run(tmp_path / "run")
    tasks, seed = setup.val_tasks
    assert seed == config.eval_seed + 1
    val = evaluate_params(setup, params, state, num_tasks=6, eval_tasks=tasks, seed=seed)
    test = evaluate_params(setup, params, state, num_tasks=6)
    assert val[2]["loss"].mean != test[2]["loss"].mean
    curve = json.loads((tmp_path / "run" / "validation.jsonl").read_text().splitlines()[0])
    assert curve["loss@2"] == pytest.approx(val[2]["loss"].mean, rel=1e-6)


def test_a_stored_run_reads_back_with_the_value_it_used_for_an_option_added_since():
    """An option added with a new default must not change what a stored run meant: the run
    reads back with the value runs used before the option existed (``option(absent=...)``)."""
    from dataclasses import dataclass

    from metazoo.algorithms import Algorithm, Settings, get_algorithm, register, unregister
    from metazoo.options import option

    @dataclass(frozen=True)
    class Later(Settings):
        solver: str = option("new", "added later, with a new default", absent="old")
        width: float = option(1.0, "an option every stored run holds")

    def make(settings):  # pragma: no cover - never trained here
        raise AssertionError

    register(Algorithm("toy-later", "a method whose option was added later", Later, make))
    try:
        stored = TrainConfig(algorithm="toy-later").resolve().to_dict()
        assert stored["algorithm_options"] == {"solver": "new", "width": 1.0}
        del stored["algorithm_options"]["solver"]  # a run from before the option existed
        assert TrainConfig.from_dict(stored).algorithm_options["solver"] == "old"
        assert TrainConfig(algorithm="toy-later").resolve().algorithm_options["solver"] == "new"
        assert get_algorithm("toy-later").stored_options({"solver": "new"}) == {"solver": "new"}
    finally:
        unregister("toy-later")


def test_an_imaml_run_stored_before_the_newton_solver_reads_back_with_gradient_steps(tmp_path):
    stored = TrainConfig(algorithm="imaml", inner_steps=20, inner_lr=0.005,
                         algorithm_options={"lam": 10.0, "inner_solver": "gd"}).to_dict()
    del stored["algorithm_options"]["inner_solver"]  # as config.json was written then
    assert TrainConfig.from_dict(stored).method().settings.inner_solver == "gd"
    assert TrainConfig(algorithm="imaml").method().settings.inner_solver == "newton"


def test_the_results_title_names_the_test_time_rule(tmp_path):
    config = TrainConfig(algorithm="imaml", **{**TINY, "iterations": 2})
    train(config, tmp_path / "run", progress=False)
    title = (tmp_path / "run" / "results.md").read_text().splitlines()[0]
    assert "Newton–CG on the proximal problem, λ 40" in title and "step size" not in title


def test_one_default_budget_clock_and_stored_runs_keep_the_one_they_used(capsys):
    from metazoo.analysis.config import CompareConfig
    from metazoo.engine.run import read_run
    from tests.engine.test_formats import FIXTURES

    # Equal compute is the point of a time budget: train and compare both count CPU seconds.
    assert TrainConfig().budget_clock == CompareConfig().budget_clock == "cpu"
    assert main(["train", "--help"]) == 0
    assert "or wall (elapsed) (default: 'cpu')" in " ".join(capsys.readouterr().out.split())
    # A stored run holds the clock it used; one from before the option counted elapsed time.
    assert read_run(FIXTURES / "maml" / "finished").config.budget_clock == "wall"
    stored = TrainConfig(time_budget=5.0).to_dict()
    del stored["budget_clock"]
    assert TrainConfig.from_dict(stored).budget_clock == "wall"
