"""Hostile use of `metazoo compare`: it never reuses runs made with other options, never
writes into a folder that is not a comparison's, and checks every option before training."""

import json
import os

from metazoo.analysis.compare import CompareConfig, train_grid
from tests.hostile.harness import refused

GRID = ["--algorithms", "maml", "fomaml", "--train-steps", "1", "--seeds", "0",
        "--meta-batch", "2", "--eval-tasks", "2", "--analysis-tasks", "2", "--test-steps", "0",
        "1", "--fidelity-steps", "1", "--cost-steps", "1", "--toy-iterations", "0", "--jobs", "1",
        "--no-progress"]


def small_grid(tmp_path, iterations=2):
    out = tmp_path / "cmp"
    config = CompareConfig(algorithms=["maml", "fomaml"], train_steps=[1], seeds=[0],
                           iterations=iterations, meta_batch=2, eval_tasks=2, jobs=1,
                           test_steps=[0, 1])
    train_grid(config, out, progress=False)
    return out


def test_runs_made_with_other_options_are_never_reused(tmp_path):
    out = small_grid(tmp_path, iterations=2)
    result = refused("compare", *GRID, "--iterations", "3", "--out", out, watch=out,
                     message="holds run maml-k1-seed0 made with other options (iterations;")
    assert "iterations 2 there, 3 now" in result.line


def test_a_folder_that_is_not_a_comparison_is_never_written(tmp_path):
    (tmp_path / "runs.csv").write_text("mine\n")
    refused("compare", *GRID, "--out", tmp_path, watch=tmp_path,
            message="holds files that are not a comparison (runs.csv)")


def test_out_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("mine")
    refused("compare", *GRID, "--out", tmp_path / "file", watch=tmp_path, message="is a file")


def test_foreign_records_are_refused_naming_the_line(tmp_path):
    out = small_grid(tmp_path)
    with open(out / "runs.jsonl", "a") as file:
        file.write(json.dumps({"name": "someone else's"}) + "\n")
    refused("compare", *GRID, "--iterations", "2", "--out", out, watch=out,
            message=f"{out / 'runs.jsonl'} is damaged at line 3 (not a run record)")


def test_a_bad_option_of_one_algorithm_is_refused_before_any_training(tmp_path):
    refused("compare", *GRID, "--algorithms", "maml", "imaml", "--algorithm-options",
            '{"imaml": {"cg_damping": -1}}', "--out", tmp_path / "cmp", watch=tmp_path,
            absent=[tmp_path / "cmp"], message="cg_damping")


def test_a_comparison_in_use_is_refused_naming_the_holder(tmp_path):
    from metazoo.fileio import exclusive_lock

    out = small_grid(tmp_path)
    with exclusive_lock(out / ".lock", "test"):  # held by this process, on its own descriptor
        refused("compare", *GRID, "--iterations", "2", "--out", out, watch=out,
                message=f"is in use by process {os.getpid()}")
