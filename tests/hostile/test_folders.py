"""Hostile folders and logs: a run is never lost or mixed up. Refusals change nothing; a
failed first run can be started again; a finished run resumed changes nothing; temporary
files of killed writes are cleared; every file gets the same mode."""

import json
import os
import stat

import pytest

from tests.helpers import rewrite_run
from tests.hostile.harness import FAILED, OK, REFUSED, TINY, cli, digest, refused


def test_folder_with_other_files_is_refused_and_kept(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    refused("train", *TINY, "--out", tmp_path, watch=tmp_path,
            message="already holds files that are not a metazoo run (notes.txt)")


def test_folder_with_a_run_is_refused_without_overwrite(run):
    refused("train", *TINY, "--out", run, watch=run, message="already holds a run")


OVERWRITE_REFUSED = [
    (["--algorithm", "anil", "--anil-head", "nope"], "nope"),
    (["--eval-seed", str(10**30)], "eval_seed must be an integer"),
    (["--eval-tasks", str(10**30)], "lower eval_tasks"),
    (["--eval-k-shot", str(10**30)], "lower eval_tasks, eval_k_shot"),
    (["--eval-steps", "1", str(10**30)], "eval_steps must be integers"),
    (["--device", "meta"], "device 'meta' is not available"),
]


@pytest.mark.parametrize("flags, message", OVERWRITE_REFUSED,
                         ids=[" ".join(f)[:30] for f, _ in OVERWRITE_REFUSED])
def test_overwrite_deletes_nothing_before_everything_is_checked(flags, message, run):
    refused("train", *TINY, *flags, "--overwrite", "--out", run, watch=run, message=message)


def test_overwrite_with_a_bad_config_value_deletes_nothing(run, tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"eval_steps": [True, 1]}))
    refused("train", *TINY, "--config", tmp_path / "c.json", "--overwrite", "--out", run,
            watch=run, message="eval_steps must be integers")


def test_overwrite_replaces_the_run_and_only_the_run(run):
    (run / "notes.txt").write_text("mine")
    before = (run / "checkpoint.pt").read_bytes()
    result = cli("train", *TINY, "--seed", "3", "--overwrite", "--out", run)
    assert result.code == OK, result.err
    assert (run / "checkpoint.pt").read_bytes() != before
    assert (run / "notes.txt").read_text() == "mine"
    assert json.loads((run / "config.json").read_text())["seed"] == 3


def test_a_run_that_failed_before_its_first_checkpoint_starts_again(run):
    (run / "checkpoint.pt").unlink()
    (run / "results.json").unlink()
    (run / "results.md").unlink()
    # --resume says what to do, and what it says works.
    result = refused("train", "--resume", run, watch=run,
                     message="stopped before writing the first one; start the run again")
    assert "--overwrite" not in result.line
    assert cli("train", *TINY, "--out", run).code == OK
    assert (run / "checkpoint.pt").is_file()


def test_stale_temporaries_of_a_killed_write_are_cleared(run):
    stale = [run / ".checkpoint.pt.abc123.tmp", run / ".log.jsonl.x.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    mine = run / ".notes.txt.abc.tmp"  # not one of the run's files: kept
    mine.write_text("mine")
    assert cli("train", "--resume", run, "--no-progress").code == OK
    assert not any(path.exists() for path in stale) and mine.read_text() == "mine"


def test_every_file_of_a_run_gets_the_same_mode(tmp_path):
    previous = os.umask(0o022)
    try:
        assert cli("train", *TINY, "--out", tmp_path / "run").code == OK
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode)
             for path in (tmp_path / "run").iterdir() if path.name != ".lock"}
    assert set(modes) == {"checkpoint.pt", "config.json", "log.jsonl", "results.json",
                          "results.md"}
    assert set(modes.values()) == {0o644}, modes


def test_resuming_a_finished_run_changes_nothing(run):
    before = digest(run)
    result = cli("train", "--resume", run, "--no-progress")
    assert result.code == OK and result.err == ""
    assert result.out.startswith(f"{run}: the run was already finished (2 meta-iterations)")
    assert "nan" not in result.out and "| test steps |" in result.out
    assert digest(run) == before


def test_resuming_a_finished_time_budget_run_changes_nothing(tmp_path):
    out = tmp_path / "budget"
    flags = [*TINY, "--iterations", "100000", "--time-budget", "0.05", "--out", out]
    assert cli("train", *flags).code == OK
    before = digest(out)
    for _ in range(2):
        result = cli("train", "--resume", out, "--no-progress")
        assert result.code == OK and "already finished" in result.out
        assert digest(out) == before


def unfinished(run, iterations=4):
    """The finished 2-iteration run, made a 4-iteration run stopped at its checkpoint at 2."""
    rewrite_run(run, __import__("torch").load(run / "checkpoint.pt", weights_only=True),
                iterations=iterations)
    for name in ("results.json", "results.md"):
        (run / name).unlink()
    return run


def test_a_torn_last_log_line_is_dropped_on_resume(run):
    unfinished(run)
    with open(run / "log.jsonl", "a") as log:
        log.write('{"iteration": 3, "seconds_per_itera')  # killed mid-write
    result = cli("train", "--resume", run, "--no-progress")
    assert result.code == OK, result.err
    iterations = [json.loads(line)["iteration"]
                  for line in (run / "log.jsonl").read_text().splitlines()]
    assert iterations == [2, 4]


def test_a_damaged_log_line_is_refused_naming_the_file(run):
    unfinished(run)
    (run / "log.jsonl").write_text("garbage\n" + (run / "log.jsonl").read_text())
    refused("train", "--resume", run, watch=run, message=f"{run / 'log.jsonl'} is damaged at "
            "line 1")


def test_a_run_file_that_is_a_folder_is_refused(tmp_path):
    (tmp_path / "run" / "results.json").mkdir(parents=True)
    refused("train", *TINY, "--out", tmp_path / "run", watch=tmp_path,
            message="results.json is a folder where the run writes a file")


def test_every_batch_skipped_is_a_failure(tmp_path):
    refused("train", *TINY, "--skip-nonfinite", "--inner-lr", "1e30", "--out", tmp_path / "run",
            watch=tmp_path / "nothing", status=FAILED,
            message="every one of the 2 meta-iterations had a non-finite meta-gradient")


def test_results_that_are_not_finite_are_a_failure(tmp_path):
    result = refused("train", *TINY, "--iterations", "1", "--outer-optimizer", "sgd",
                     "--outer-lr", "1e38", "--out", tmp_path / "run",
                     watch=tmp_path / "nothing", status=FAILED,
                     message="are not finite (query loss after 0 test steps is nan)")
    assert result.out == "" and (tmp_path / "run" / "results.json").is_file()
    assert REFUSED == 2


def test_a_run_leaves_no_lock_file_and_the_lock_stays_exclusive(tmp_path, monkeypatch):
    from metazoo import fileio
    from metazoo.fileio import FolderInUseError, exclusive_lock

    assert cli("train", *TINY, "--out", tmp_path / "run").code == OK
    assert not (tmp_path / "run" / ".lock").exists()  # finished: removed
    refused("train", *TINY, "--out", tmp_path / "run", watch=tmp_path, message="holds a run")
    assert not (tmp_path / "run" / ".lock").exists()  # refused: removed too
    lock = tmp_path / ".lock"
    # Another open file of the lock is refused, in this process too.
    with exclusive_lock(lock, "here", remove=True), pytest.raises(FolderInUseError), \
            exclusive_lock(lock, "here"):
        pass
    assert not lock.exists()
    # A process that opened the lock file just before its holder removed it, and locked it
    # after, holds a lock on a file no longer at the path: it takes the one there instead,
    # which the next holder now has.
    stale = tmp_path / "removed"
    stale.touch()
    opened = os.open

    def opens_the_removed_file_first(path, *args, **kwargs):
        monkeypatch.setattr(fileio.os, "open", opened)
        return opened(stale, *args, **kwargs)

    with exclusive_lock(lock, "here"), pytest.raises(FolderInUseError):
        monkeypatch.setattr(fileio.os, "open", opens_the_removed_file_first)
        with exclusive_lock(lock, "here"):
            pass
