"""Numbers and options: every count has a bound that its message states; an option given is
never silently ignored; a resume that differs names the stored and given values."""

import pytest

import metazoo
from tests.hostile.harness import TINY, refused

BIG = str(10**30)


def test_predict_steps_are_bounded(run, tmp_path):
    (tmp_path / "sup.csv").write_text("x,y\n0.1,0.2\n0.3,0.4\n")
    (tmp_path / "qry.csv").write_text("x\n0.5\n")
    for steps in (BIG, "10001"):
        refused("predict", run, "--support", tmp_path / "sup.csv", "--query",
                tmp_path / "qry.csv", "--steps", steps, "--out", tmp_path / "p.csv",
                watch=tmp_path, absent=[tmp_path / "p.csv"],
                message="--steps must be an integer from 0 to 10,000")
    loaded = metazoo.load_run(run)
    with pytest.raises(ValueError, match="steps must be an integer from 0 to 10,000"):
        loaded.adapt([[0.1]], [[0.2]], steps=10**30)


@pytest.mark.parametrize("name", ["", "nope", " "])
def test_an_empty_or_unknown_preset_is_refused(name, tmp_path):
    result = refused("train", *TINY, "--preset", name, "--out", tmp_path / "new",
                     watch=tmp_path, absent=[tmp_path / "new"],
                     message=f"unknown preset {name!r}; choose one of: ")
    assert "maml-omniglot-5w1s" in result.line


COMPARE = ["--algorithms", "maml", "--train-steps", "1", "--seeds", "0", "--meta-batch", "2",
           "--eval-tasks", "2", "--analysis-tasks", "2", "--test-steps", "0", "1",
           "--fidelity-steps", "1", "--cost-steps", "1", "--jobs", "1", "--no-progress"]


@pytest.mark.parametrize("flags", [["--toy-iterations", "-5"], ["--toy-iterations", BIG],
                                   ["--analysis-tasks", BIG]])
def test_compare_counts_are_bounded(flags, tmp_path):
    name = flags[0][2:].replace("-", "_")
    refused("compare", *COMPARE, *flags, "--out", tmp_path / "cmp", watch=tmp_path,
            absent=[tmp_path / "cmp"], message=f"{name} must be an integer from 0 to ")


def test_resume_with_another_algorithm_names_what_differs(run):
    result = refused("train", "--resume", run, "--algorithm", "fomaml", "--inner-lr", "0.5",
                     "--no-progress", watch=run, message="cannot resume with a different config")
    assert "algorithm (stored 'maml', given 'fomaml')" in result.line
    assert "inner_lr (stored " in result.line and "given 0.5)" in result.line
    assert "takes no option" not in result.line
