"""A finished run can always be finished again: ``--resume`` of a run whose final checkpoint
exists evaluates it and writes whatever results are missing, and changes nothing else."""

import json

import pytest

from tests.hostile.harness import OK, cli, digest

#: TINY with the strategy left to measurement (``auto``), as a run is started by default.
AUTO = ["--iterations", "2", "--eval-tasks", "2", "--meta-batch", "2", "--no-progress"]


def same_numbers(path, written):
    """Whether ``results.json`` at ``path`` holds the scores of ``written`` (its timings are
    read back from the log when it is written again, so they may differ)."""
    again, before = json.loads(path.read_text()), json.loads(written)
    keys = ("config", "evaluation", "iterations", "strategy", "train_seconds")
    return {key: again[key] for key in keys} == {key: before[key] for key in keys}


def resume(out):
    result = cli("train", "--resume", out, "--no-progress")
    assert result.code == OK, result.err
    assert result.err == ""
    return result


def test_killed_in_the_final_evaluation_of_an_auto_strategy_run(tmp_path):
    out = tmp_path / "run"
    assert cli("train", *AUTO, "--out", out).code == OK
    results = {name: (out / name).read_bytes() for name in ("results.json", "results.md")}
    for name in results:  # as a SIGKILL after the final checkpoint leaves the folder
        (out / name).unlink()
    before = digest(out)
    result = resume(out)
    assert (out / "results.md").read_bytes() == results["results.md"]
    assert same_numbers(out / "results.json", results["results.json"])
    after = digest(out)
    assert {path: after[path] for path in before} == before
    assert "results.json and results.md were missing: written again" in result.out


@pytest.mark.parametrize("missing", ["results.md", "results.json"])
def test_a_finished_run_missing_one_results_file(missing, run):
    kept = "results.json" if missing == "results.md" else "results.md"
    written = (run / missing).read_bytes()
    (run / missing).unlink()
    before = digest(run)
    result = resume(run)
    if missing == "results.md":
        assert (run / missing).read_bytes() == written
    else:
        assert same_numbers(run / missing, written)
    assert digest(run) == {**before, **digest(run / missing)}
    assert f"{missing} was missing: written again" in result.out
    assert (run / kept).exists()


def test_a_validation_point_cut_short_is_done_again_on_resume(tmp_path):
    out = tmp_path / "run"
    assert cli("train", *AUTO, "--strategy", "vmap", "--val-every", "1", "--val-tasks", "2",
               "--out", out).code == OK
    curve = (out / "validation.jsonl").read_text().splitlines()
    # As a stop during the last validation leaves the folder: its point and the results
    # missing, the final checkpoint whole.
    (out / "validation.jsonl").write_text(curve[0] + "\n")
    (out / "results.json").unlink()
    result = resume(out)
    assert "the last point of validation.jsonl and results.json were missing: written again" \
        in result.out
    again = (out / "validation.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in again] == [1, 2]
    assert [json.loads(line) for line in again] == [json.loads(line) for line in curve]
    assert (out / "results.json").exists()
