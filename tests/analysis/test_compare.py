"""``metazoo compare`` end to end on a tiny grid: report, figures, resume without retraining."""

import dataclasses
import json

import pytest

from metazoo.analysis.compare import CompareConfig, train_grid
from metazoo.cli import main

# -1: each algorithm's own k (Reptile 5, iMAML 3 Newton steps, MAML and first-order MAML 1).
TINY = ["--algorithms", "maml", "fomaml", "reptile", "imaml", "--train-steps", "-1", "2",
        "--seeds", "0", "1", "--iterations", "15", "--meta-batch", "4", "--eval-tasks", "24",
        "--analysis-tasks", "6", "--test-steps", "0", "1", "3", "--fidelity-steps", "1", "2",
        "--cost-steps", "1", "2",
        "--toy-iterations", "5", "--no-progress"]


@pytest.mark.slow
def test_compare_writes_the_report_and_resumes(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", *TINY, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    for question in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5."):
        assert question in stdout
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(records) == 4 * 2 * 2
    assert {r["name"] for r in records} == {f"{a}-k{k}-seed{s}" for a in
                                           ("maml", "fomaml", "reptile", "imaml")
                                           for k in ("own", 2) for s in (0, 1)}
    own = {r["algorithm"]: r["k"] for r in records if "-kown-" in r["name"]}
    assert own == {"maml": 1, "fomaml": 1, "reptile": 5, "imaml": 3}
    assert all(r["iterations"] == 15 for r in records)
    report = out / "report"
    for figure in ("q1_steps.png", "q2_decomposition.png", "q3_paths.png", "q4_fidelity_maml.png",
                   "q5_time.png", "toy_landscape.png"):
        assert (report / figure).read_bytes()[:4] == b"\x89PNG"
    html = (report / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 6
    markdown = (report / "index.md").read_text()
    for cheap in ("fomaml", "reptile", "imaml"):  # each paired with the method it approximates
        assert f"maml − {cheap}" in markdown
    assert "## 1b. imaml or reptile?" in markdown  # the contest the registry declares
    assert "| reptile | own (5) |" in markdown and "| imaml | own (3) |" in markdown
    assert "| own |" in markdown  # the contest at each method's own k
    assert "nan" not in markdown.lower().replace("nan-", "")
    assert "Control by perturbation" in markdown and "From the same starting loss" in markdown
    assert (out / "runs.csv").read_text().count("\n") == 17

    # Interrupted comparison: drop the last record; only that run is redone.
    lines = (out / "runs.jsonl").read_text().splitlines()
    (out / "runs.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    stamps = {r["name"]: (out / "runs" / r["name"] / "per_task.pt").stat().st_mtime_ns
              for r in records}
    assert main(["compare", *TINY, "--out", str(out)]) == 0
    again = {r["name"]: (out / "runs" / r["name"] / "per_task.pt").stat().st_mtime_ns
             for r in records}
    changed = [name for name in stamps if stamps[name] != again[name]]
    assert changed == [records[-1]["name"]]


def test_compare_refuses_bad_options(capsys):
    assert main(["compare", "--algorithms", "maml", "nope"]) == 2
    assert "unknown algorithm(s) nope" in capsys.readouterr().err
    assert main(["compare", "--seeds"]) == 2
    assert main(["compare", "--train-steps", "-2"]) == 2
    assert "train_steps must be a non-empty list of integers >= -1" in capsys.readouterr().err
    assert main(["compare", "--seeds", "0", "0"]) == 2
    assert "seeds lists a value twice" in capsys.readouterr().err
    assert main(["compare", "--algorithm-options", "{\"cg_damping\": 1"]) == 2
    assert "not JSON" in capsys.readouterr().err
    assert main(["compare", "--algorithms", "maml", "--algorithm-options",
                 "{\"cg_damping\": 1.0}"]) == 2
    assert "must be keyed by the algorithms compared (maml)" in capsys.readouterr().err
    # every algorithm's options are checked before any run starts
    assert main(["compare", "--algorithms", "maml", "imaml", "--algorithm-options",
                 "{\"imaml\": {\"cg_damping\": -1}}"]) == 2
    assert "cg_damping must be" in capsys.readouterr().err


def test_parallel_runs_match_serial_runs_and_take_their_own_options(tmp_path):
    # Worker processes (spawned, 1 thread each) must produce the same records as training in
    # this process; --algorithm-options reaches the algorithms that have the option only.
    config = CompareConfig(algorithms=["maml", "imaml"], train_steps=[1], seeds=[0, 1],
                           iterations=6, meta_batch=4, eval_tasks=16, test_steps=[0, 1],
                           algorithm_options={"imaml": {"cg_damping": 0.5}})
    serial = train_grid(dataclasses.replace(config, jobs=1), tmp_path / "serial", progress=False)
    parallel = train_grid(dataclasses.replace(config, jobs=2), tmp_path / "parallel",
                        progress=False)
    assert [r["name"] for r in serial] == [r["name"] for r in parallel]
    for one, other in zip(serial, parallel, strict=True):
        for key in ("loss@0", "loss@1"):
            assert one[key] == pytest.approx(other[key], rel=1e-5), (one["name"], key)
    stored = json.loads((tmp_path / "parallel" / "runs" / "imaml-k1-seed0" / "config.json")
                        .read_text())
    assert stored["algorithm_options"]["cg_damping"] == 0.5
    stored = json.loads((tmp_path / "parallel" / "runs" / "maml-k1-seed0" / "config.json")
                        .read_text())
    assert "cg_damping" not in stored["algorithm_options"]


def test_common_start_leaves_out_a_theta_far_above_the_others():
    from metazoo.analysis.sections.start_or_gain import common_start

    # Omniglot, train k = 1: first-order MAML's θ starts at 6.09, the others near ln 5.
    levels = {"joint": 1.61, "maml": 1.64, "fomaml": 6.09, "imaml": 1.69, "anil": 1.62}
    assert common_start(levels) == (1.69, ["fomaml"])
    # Sinusoid: spread, but no outlier; the level is the highest.
    assert common_start({"joint": 2.74, "maml": 2.81, "imaml": 3.77}) == (3.77, [])
    # All at zero loss: nothing to leave out.
    assert common_start({"a": 0.0, "b": 0.0}) == (0.0, [])


def test_a_diverged_method_is_named_with_its_last_finite_value(tmp_path):
    from metazoo.analysis import report as rpt
    from metazoo.analysis.grid import run_name
    from metazoo.analysis.sections import second_order

    assert rpt.cell([1.0, float("inf"), float("nan")]) == "diverged (2 of 3 tasks)"
    assert rpt.cell([1.0, 3.0]).startswith("2 ± ")
    config = CompareConfig(algorithms=["maml", "fomaml"], train_steps=[1], seeds=[0, 1],
                           test_steps=[0, 1, 10])
    records = [{"name": run_name(a, 1, seed), "algorithm": a, "k": 1, "seed": seed,
                "loss@0": 3.0, "loss@1": 1.0 + seed,
                "loss@10": float("inf") if a == "fomaml" else 0.5}
               for a in ("maml", "fomaml") for seed in (0, 1)]
    text = rpt.to_markdown(second_order.blocks(config, records, "loss"))
    row = next(line for line in text.splitlines() if line.startswith("| fomaml"))
    assert "diverged (2 of 2 seeds); last finite: 1.5 ± 6.4 after 1 steps" in row
    assert "inf" not in text and "nan" not in text


def test_a_time_budget_gives_every_run_equal_compute_not_an_iteration_cap():
    """Under --time-budget a fast method must not stop at a default iteration count while a
    slow one uses its whole budget (MAML stopped at 1,000 iterations in 20 of its 120 s)."""
    from metazoo.analysis.compare import UNBOUNDED

    budget = CompareConfig(algorithms=["maml"], train_steps=[1], seeds=[0], time_budget=120.0)
    assert budget.train_config("maml", 1, 0).iterations == UNBOUNDED
    assert CompareConfig(algorithms=["maml"], train_steps=[1], seeds=[0]).train_config(
        "maml", 1, 0).iterations == 1000
    capped = dataclasses.replace(budget, iterations=50)
    assert capped.train_config("maml", 1, 0).iterations == 50
    with pytest.raises(ValueError, match="iterations must be >= 0"):
        dataclasses.replace(budget, iterations=-1)


@pytest.mark.slow
def test_compare_tuned_trains_each_studied_method_with_its_best_settings(tmp_path, capsys):
    """``--tuned DIR`` replaces a method's defaults by its study's best config; the others keep
    theirs; a study of another problem, of a method not compared, or without a finished search
    is refused in one line."""
    from tests.search.helpers import tune

    assert tune(tmp_path, "--algorithm", "imaml", "--trials", "2", "--out",
                str(tmp_path / "study")) == 0
    capsys.readouterr()
    best = json.loads((tmp_path / "study" / "best.json").read_text())
    config = CompareConfig(algorithms=["imaml", "maml"], train_steps=[-1, 2], seeds=[0],
                           tuned=[str(tmp_path / "study")])
    own, two = config.train_config("imaml", -1, 0), config.train_config("imaml", 2, 0)
    for name in ("outer_lr", "meta_batch", "inner_lr", "outer_optimizer", "lr_schedule"):
        assert getattr(own, name) == best[name] == getattr(two, name), name
    assert own.inner_steps == best["inner_steps"] and two.inner_steps == 2
    assert own.algorithm_options == best["algorithm_options"]
    plain = config.train_config("maml", -1, 0)
    assert (plain.outer_lr, plain.meta_batch) == (config.outer_lr, config.meta_batch)

    out = tmp_path / "cmp"
    assert main(["compare", "--algorithms", "imaml", "maml", "--train-steps", "-1", "--seeds",
                 "0", "--iterations", "4", "--meta-batch", "4", "--eval-tasks", "6",
                 "--analysis-tasks", "2", "--test-steps", "0", "1", "--fidelity-steps", "1",
                 "--cost-steps", "1", "--toy-iterations", "0", "--no-progress",
                 "--tuned", str(tmp_path / "study"), "--out", str(out)]) == 0
    stored = json.loads((out / "runs" / "imaml-kown-seed0" / "config.json").read_text())
    assert stored["outer_lr"] == best["outer_lr"] and stored["inner_lr"] == best["inner_lr"]
    capsys.readouterr()

    for options, message in (
            (["--algorithms", "maml"], "is of imaml, which algorithms leaves out"),
            (["--k-shot", "5"], "was tuned with k_shot 10, this comparison has 5"),
            (["--tuned", str(tmp_path)], "has no best.json"),
            (["--tuned", str(tmp_path / "study"), str(tmp_path / "study")],
             "two studies of imaml")):
        if "--tuned" not in options:
            options = [*options, "--tuned", str(tmp_path / "study")]
        assert main(["compare", *options, "--out", str(tmp_path / "never")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "never").exists()
