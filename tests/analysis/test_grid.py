"""The library's grid runner: named runs trained, scored, recorded, and reused or resumed."""

import json

import pytest
import torch

from metazoo.analysis.grid import RECORDS, Evaluations, PerTask, run_grid
from metazoo.engine import NonFiniteError, TrainConfig


def tiny(seed: int, **changes) -> TrainConfig:
    return TrainConfig(**{"algorithm": "maml", "iterations": 3, "meta_batch": 2,
                          "eval_tasks": 4, "eval_steps": [0, 1], "log_every": 1,
                          "checkpoint_every": 3, "seed": seed, **changes})


def stamps(runs):
    return {path.parent.name: path.stat().st_mtime_ns for path in runs.glob("*/checkpoint.pt")}


def test_a_finished_run_is_reused_and_a_changed_one_refused(tmp_path):
    cells = {f"maml-seed{seed}": tiny(seed) for seed in (0, 1)}
    score = Evaluations({"k5": {"eval_k_shot": 5}})
    records = run_grid(cells, tmp_path, runs=tmp_path, score=score, jobs=1,
                       evaluate_at_end=True, progress=False)
    assert [r["name"] for r in records] == list(cells)
    first = records[0]
    assert first["iterations"] == 3 and first["seed"] == 0
    stored = json.loads((tmp_path / "maml-seed0" / "results.json").read_text())
    assert first["evaluation"] == stored["evaluation"]  # the run's own report
    assert set(first["extra"]["k5"]) == {"0", "1"}
    assert first["extra"]["k5"] != first["evaluation"]  # 5 support points, not 10
    before = stamps(tmp_path)

    # Recorded: nothing is trained or scored again.
    assert run_grid(cells, tmp_path, runs=tmp_path, score=score, jobs=1,
                    evaluate_at_end=True, progress=False) == records
    # Not recorded (e.g. a run folder of an earlier script), but finished: resumed, which
    # changes nothing, then scored to the same numbers.
    (tmp_path / RECORDS).unlink()
    again = run_grid(cells, tmp_path, runs=tmp_path, score=score, jobs=1,
                     evaluate_at_end=True, progress=False)
    assert stamps(tmp_path) == before
    assert [r["evaluation"] for r in again] == [r["evaluation"] for r in records]
    assert [r["extra"] for r in again] == [r["extra"] for r in records]
    for key in ("iterations", "train_seconds", "ms_per_iteration"):  # as the run recorded them
        assert [r[key] for r in again] == [r[key] for r in records]

    changed = {name: tiny(config.seed, iterations=4) for name, config in cells.items()}
    with pytest.raises(ValueError, match="made with other options"):
        run_grid(changed, tmp_path, runs=tmp_path, score=score, jobs=1, progress=False)


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    # A run stopped after 3 of 6 iterations (its checkpoint there) is continued, and ends
    # where an uninterrupted run ends.
    short, full = tiny(0), tiny(0, iterations=6)
    run_grid({"a": short}, tmp_path / "stopped", jobs=1, progress=False)
    (tmp_path / "stopped" / RECORDS).unlink()
    checkpoint = tmp_path / "stopped" / "runs" / "a" / "checkpoint.pt"
    config = tmp_path / "stopped" / "runs" / "a" / "config.json"
    # What a stopped run of the full length looks like: its config, a checkpoint midway.
    config.write_text(json.dumps(full.to_dict()))
    state = torch.load(checkpoint, weights_only=False)
    state["config"] = full.to_dict()
    torch.save(state, checkpoint)
    resumed = run_grid({"a": full}, tmp_path / "stopped", score=PerTask(), jobs=1,
                       progress=False)
    fresh = run_grid({"a": full}, tmp_path / "fresh", score=PerTask(), jobs=1, progress=False)
    assert resumed[0]["iterations"] == fresh[0]["iterations"] == 6
    assert resumed[0]["loss@1"] == fresh[0]["loss@1"]


def test_a_diverged_run_is_kept_at_its_last_good_checkpoint(tmp_path):
    exploding = tiny(0, inner_lr=1e30, iterations=5)
    with pytest.raises(NonFiniteError, match="non-finite"):
        run_grid({"boom": exploding}, tmp_path / "strict", jobs=1, progress=False)
    (record,) = run_grid({"boom": exploding}, tmp_path / "kept", score=Evaluations(), jobs=1,
                         keep_diverged=True, progress=False)
    assert record["diverged"].startswith("non-finite meta-gradient or loss at iteration 1")
    assert record["iterations"] == 0
    assert set(record["evaluation"]) == {"0", "1"}
