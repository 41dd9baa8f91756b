"""Run folders written by earlier metazoo still resume, evaluate and predict bit-identically.

The fixtures in ``tests/fixtures/format2`` were written in checkpoint format 2 (Reptile's
carried inner-Adam state among the meta-parameters) by the code of their README, with what
``eval`` and ``predict`` gave then.

On the machine that wrote them the results are bit-identical. Another CPU runs the same float64
computation through other kernels, which round differently (by a few units in the last place),
so they are compared to 1e-12; a format read wrongly (a lost carried state, a misplaced
optimizer entry) moves θ by the step size, many orders of magnitude more.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from metazoo.cli import main
from metazoo.core.tree import flatten

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "format2"
METHODS = ("reptile", "maml", "metasgd")


#: Float64 rounding on another CPU, far below what any change of computation moves.
RTOL, ATOL = 1e-12, 1e-12


def _close(first, second, where="") -> None:
    """Numbers of two JSON trees (or two tensors) equal to float64 rounding."""
    if isinstance(first, torch.Tensor):
        assert first.dtype == second.dtype and first.shape == second.shape, where
        assert torch.allclose(first, second, rtol=RTOL, atol=ATOL), where
    elif isinstance(first, dict):
        assert first.keys() == second.keys(), where
        for key in first:
            _close(first[key], second[key], f"{where}/{key}")
    elif isinstance(first, float):
        assert math.isclose(first, second, rel_tol=RTOL, abs_tol=ATOL), where
    else:
        assert first == second, where


def _predictions(path: Path) -> list[list[float]]:
    header, *rows = path.read_text().splitlines()
    assert header == "x,prediction"
    return [[float(value) for value in row.split(",")] for row in rows]


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.parametrize("name", METHODS)
def test_a_format2_run_resumes_to_the_same_theta_and_results(name, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / name / "partial", run)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    finished = FIXTURES / name / "finished"
    resumed, reference = _load(run / "checkpoint.pt"), _load(finished / "checkpoint.pt")
    assert resumed["format"] == 3 and reference["format"] == 2
    assert resumed["iteration"] == reference["iteration"] == 6
    carried = flatten(resumed["state"])
    # Format 2 held the carried state among the parameters under its flattened names.
    assert set(resumed["params"]) | set(carried) == set(reference["params"])
    assert not set(resumed["params"]) & set(carried)
    for key, value in {**resumed["params"], **carried}.items():
        _close(value, reference["params"][key], key)
    assert (name == "reptile") == bool(carried)
    written = json.loads((run / "results.json").read_text())["evaluation"]
    _close(written, json.loads((finished / "results.json").read_text())["evaluation"])


@pytest.mark.parametrize("name", METHODS)
def test_a_format2_run_evaluates_and_predicts_as_before(name, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / name / "finished", run)
    report = tmp_path / "eval.json"
    assert main(["eval", str(run), "--tasks", "3", "--steps", "0", "2", "--json",
                 str(report)]) == 0
    _close(json.loads(report.read_text()), json.loads((FIXTURES / name / "eval.json").read_text()))
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(run), "--support", str(FIXTURES / name / "support.csv"),
                 "--query", str(FIXTURES / name / "query.csv"), "--out", str(out)]) == 0
    ours, theirs = _predictions(out), _predictions(FIXTURES / name / "predictions.csv")
    assert len(ours) == len(theirs) > 0
    for row, (mine, written) in enumerate(zip(ours, theirs)):
        assert mine[0] == written[0], row  # the same query inputs, in the same order
        assert math.isclose(mine[1], written[1], rel_tol=RTOL, abs_tol=ATOL), row


def test_a_format2_optimizer_state_is_reindexed_without_the_carried_entries(tmp_path):
    """The outer Adam indexed its state over θ and the carried entries: after reading, its
    indices are θ's alone, each entry shaped like its parameter."""
    from metazoo.engine.run import rebuild_run

    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "reptile" / "partial", run)
    _, params, state, checkpoint = rebuild_run(run)
    groups = checkpoint.optimizer["param_groups"]
    assert groups[0]["params"] == list(range(len(params)))
    shapes = [p.shape for p in params.values()]
    for index, entry in checkpoint.optimizer["state"].items():
        assert entry["exp_avg"].shape == shapes[index]
    assert set(state) == {"inner_rms", "inner_rms_steps"}
    assert state["inner_rms_steps"].item() == 9  # 3 iterations of 3 inner steps
