"""Every user-facing input is checked up front: one line naming the option, exit status 2,
nothing written. Plus property-based tests over the configuration space."""

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metazoo.algorithms import ALGORITHMS
from metazoo.cli import main
from metazoo.engine import NonFiniteError, TrainConfig, train

CASES = [
    (["--algorithm", "foo"], "invalid choice: 'foo'"),
    (["--task", "cifar"], "invalid choice: 'cifar'"),
    (["--inner-lr", "-1"], "inner_lr must be a finite number > 0"),
    (["--inner-lr", "nan"], "inner_lr must be a finite number > 0"),
    (["--inner-steps", "-2"], "inner_steps must be an integer >= 0"),
    (["--inner-steps", "two"], "invalid int value: 'two'"),
    (["--meta-batch", "0"], "meta_batch must be a positive integer"),
    (["--iterations", "0"], "iterations must be a positive integer"),
    (["--outer-lr", "0"], "outer_lr must be a positive number"),
    (["--outer-optimizer", "rmsprop"], "outer_optimizer must be 'adam' or 'sgd'"),
    (["--lr-schedule", "cosine"], "lr_schedule must be 'constant' or 'linear'"),
    (["--strategy", "threads"], "strategy must be one of"),
    (["--chunk-size", "0"], "chunk_size must be a positive integer (leave it out for a whole batch at once)"),
    (["--max-memory", "0"], "max_memory must be a positive number of GiB"),
    (["--max-memory", "nan"], "max_memory must be a positive number of GiB"),
    (["--max-memory", "-4"], "max_memory must be a positive number of GiB"),
    (["--max-memory", "8", "--strategy", "loop"],
     "max_memory bounds the choice of strategy auto, but strategy is loop"),
    (["--eval-steps", "1", "-1"], "eval_steps must be integers >= 0"),
    (["--eval-tasks", "0"], "eval_tasks must be a positive integer"),
    (["--eval-k-shot", "-2"], "eval_k_shot must be a positive integer (leave it out for as k_shot)"),
    (["--k-shot", "0"], "k_shot must be a positive integer"),
    (["--query-shots", "-3"], "query_shots must be a positive integer"),
    (["--n-way", "0"], "n_way must be a positive integer"),
    (["--dtype", "float16"], "dtype must be float32 or float64"),
    (["--time-budget", "-5"], "time_budget must be >= 0 seconds"),
    (["--budget-clock", "gpu"], "budget_clock must be wall or cpu"),
    (["--algorithm", "imaml", "--imaml-lambda", "0"], "lam must be a finite number > 0, got 0.0 (--imaml-lam)"),
    (["--algorithm", "imaml", "--cg-steps", "0"], "cg_steps must be an integer >= 1"),
    (["--algorithm", "imaml", "--imaml-cg-steps", "100000000000"], "cg_steps must be at most"),
    (["--algorithm", "imaml", "--cg-damping", "-1"], "cg_damping must be a finite number >= 0"),
    (["--algorithm", "reptile", "--reptile-data", "query"],
     "data must be 'all' or 'support', got 'query' (--reptile-data)"),
    (["--algorithm", "maml", "--cg-steps", "3"],
     "--imaml-cg-steps is an option of imaml, not of maml"),
    (["--algorithm", "maml", "--imaml-lam", "3"], "--imaml-lam is an option of imaml, not of maml"),
    (["--device", "cuda:7"], "is not available here"),
    (["--device", "tpu"], "is not available here"),
]


@pytest.mark.parametrize("flags, message", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_option_is_one_clear_line_exit_2_and_writes_nothing(flags, message, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", *flags, "--iterations", "1", "--out", str(out)]
                if "--iterations" not in flags else ["train", *flags, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err, err
    assert err.count("\n") == 1
    assert not out.exists()


def test_out_that_is_a_file_or_under_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep")
    for out in (target, target / "sub"):
        code = main(["train", "--iterations", "1", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and ("is a file" in err or "not writable" in err), err
    assert target.read_text() == "keep"


def test_existing_run_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code = main(["train", "--iterations", "1", "--out", str(out)])
    assert code == 2 and "already holds files that are not a metazoo run" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_resume_from_missing_or_corrupt_checkpoint(tmp_path, capsys):
    code = main(["train", "--resume", str(tmp_path / "nothing")])
    assert code == 2 and "no run in" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "checkpoint.pt").write_bytes(b"\x00garbage")
    code = main(["train", "--resume", str(tmp_path / "bad")])
    assert code == 2 and "corrupt or not a metazoo checkpoint" in capsys.readouterr().err
    torch.save({"weights": 1}, tmp_path / "bad" / "checkpoint.pt")
    code = main(["eval", str(tmp_path / "bad")])
    assert code == 2 and "is not a metazoo checkpoint (missing" in capsys.readouterr().err


def test_config_file_errors(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"algoritm": "maml"}))
    code = main(["train", "--config", str(config), "--out", str(tmp_path / "r")])
    assert code == 2 and "unknown option(s) in --config: algoritm" in capsys.readouterr().err
    code = main(["train", "--config", str(tmp_path / "missing.json"), "--out", str(tmp_path / "r")])
    assert code == 2 and "cannot read it as JSON" in capsys.readouterr().err


def test_corrupt_omniglot_data_is_refused(tmp_path, capsys, monkeypatch):
    data = tmp_path / "omniglot"
    data.mkdir()
    for name in ("images_background.zip", "images_evaluation.zip"):
        (data / name).write_bytes(b"PK\x03\x04 not really a zip")
    monkeypatch.setenv("METAZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("METAZOO_OMNIGLOT_URL", "http://127.0.0.1:9/")  # nothing listens there
    code = main(["train", "--task", "omniglot", "--data-dir", str(data),
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "images_background.zip" in err, err
    assert not (tmp_path / "run").exists()


def test_nonfinite_run_exits_3_and_keeps_its_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--inner-lr", "1e6", "--outer-lr", "1e6", "--iterations", "5",
                 "--no-progress", "--out", str(out)])
    assert code == 3 and "non-finite" in capsys.readouterr().err
    assert (out / "checkpoint.pt").is_file()


# ---- property-based: the configuration space ----------------------------------------------

numbers = st.one_of(st.integers(-3, 40), st.floats(allow_nan=True, allow_infinity=True),
                    st.booleans(), st.text(max_size=3))
FIELDS = ["inner_steps", "inner_lr", "meta_batch", "iterations", "k_shot", "query_shots",
          "outer_lr", "chunk_size", "eval_tasks", "time_budget", "n_way", "log_every"]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(FIELDS), numbers, max_size=5),
       st.sampled_from([*sorted(ALGORITHMS), "nope"]))
def test_any_config_is_accepted_or_refused_with_value_error(options, algorithm):
    try:
        config = TrainConfig(algorithm=algorithm, **options)
    except ValueError as error:
        assert str(error)  # refused with a message
        return
    assert config.algorithm == algorithm


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(algorithm=st.sampled_from(sorted(ALGORITHMS)),
       task=st.sampled_from(["sinusoid", "linear"]),
       inner_steps=st.integers(0, 3), inner_lr=st.floats(1e-4, 10.0),
       meta_batch=st.integers(1, 4), k_shot=st.integers(1, 4), strategy=st.sampled_from(
           ["vmap", "loop"]), chunk_size=st.one_of(st.none(), st.integers(1, 3)))
def test_valid_small_configs_train_without_crashing(tmp_path_factory, algorithm, task,
                                                    inner_steps, inner_lr, meta_batch, k_shot,
                                                    strategy, chunk_size):
    config = TrainConfig(algorithm=algorithm, task=task, inner_steps=inner_steps,
                         inner_lr=inner_lr, meta_batch=meta_batch, k_shot=k_shot,
                         query_shots=2, iterations=2, eval_tasks=3, eval_steps=[0, 1],
                         strategy=strategy, chunk_size=chunk_size)
    out = tmp_path_factory.mktemp("run")
    try:
        summary = train(config, out, progress=False, overwrite=True)
    except NonFiniteError:
        return  # a huge inner step may diverge: refused cleanly, which is the contract
    assert all(torch.isfinite(p).all() for p in summary["params"].values())
    assert set(summary["report"]) == {0, 1}
