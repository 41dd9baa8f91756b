"""Signals outside the training steps: SIGTERM or SIGINT during validation or the final
evaluation stops the run at once (the checkpoint on disk is already whole; an evaluation not
finished is done again on resume), instead of waiting for it to end; one that comes once the
run is finished leaves nothing to do (exit status 0)."""

import importlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.hostile.harness import OK, SIGINT, SIGTERM, TINY, cli, spawn

#: Held-out scoring that takes minutes: many tasks, many test steps.
SLOW_SCORING = ["--meta-batch", "2", "--strategy", "vmap", "--log-every", "1",
                "--eval-steps", "0", "3000", "--no-progress"]


def stop_while_scoring(out, args, signum):
    """Start ``metazoo train ARGS``, signal it once iteration 1 is logged (it is then
    scoring), and return (exit status, stderr, seconds from the signal to the exit)."""
    process = spawn("train", *args, "--out", out)
    deadline = time.time() + 120
    while not ((out / "log.jsonl").exists() and (out / "log.jsonl").read_text()):
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.02)
    time.sleep(0.5)
    return signal_and_wait(process, signum)


def signal_and_wait(process, signum):
    """Send ``signum`` to ``process`` while it scores; return (exit status, stderr, seconds
    from the signal to the exit), failing if it is still scoring 30 s later."""
    process.send_signal(signum)
    sent = time.time()
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("still scoring 30 s after the signal") from None
    return process.returncode, err, time.time() - sent


def test_sigterm_during_validation_stops_at_once(tmp_path):
    out = tmp_path / "run"
    code, err, seconds = stop_while_scoring(
        out, ["--iterations", "1000", "--eval-tasks", "2", "--val-every", "1",
              "--val-tasks", "2000", *SLOW_SCORING], signal.SIGTERM)
    assert code == SIGTERM and seconds < 5, (code, seconds, err[-2000:])
    assert err.splitlines() == [(f"metazoo train: stopped by SIGTERM after iteration 1; its "
                                 f"checkpoint is saved in {out}; resume it to continue "
                                 f"(metazoo train --resume {out})")]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["iteration"] == 1
    assert not (out / "validation.jsonl").exists() or \
        (out / "validation.jsonl").read_text() == ""  # no point of a second validation


def test_sigint_during_the_final_evaluation_stops_at_once(tmp_path):
    out = tmp_path / "run"
    code, err, seconds = stop_while_scoring(
        out, ["--iterations", "1", "--eval-tasks", "2000", *SLOW_SCORING], signal.SIGINT)
    assert code == SIGINT and seconds < 5, (code, seconds, err[-2000:])
    assert len(err.splitlines()) == 1 and "stopped by SIGINT" in err, err[-2000:]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["iteration"] == 1 and json.loads((out / "config.json").read_text())
    assert not (out / "results.json").exists()


def test_sigterm_once_the_run_is_finished_exits_0(tmp_path, monkeypatch):
    training = importlib.import_module("metazoo.engine.train")
    scored = training.final_evaluation

    def then_terminated(*args, **kwargs):  # the signal comes once the results are written
        scored(*args, **kwargs)
        signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(training, "final_evaluation", then_terminated)
    out = tmp_path / "run"
    result = cli("train", *TINY, "--out", out)
    assert result.code == OK, result.err
    assert result.err.splitlines() == [(f"metazoo train: SIGTERM came once the run had "
                                        f"finished; its results are in {out}")]
    assert (out / "results.json").is_file()


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) that process ``pid`` has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize(("signum", "status", "name"), [(signal.SIGINT, SIGINT, "SIGINT"),
                                                        (signal.SIGTERM, SIGTERM, "SIGTERM")])
def test_a_signal_during_metazoo_eval_stops_it_at_once(run, tmp_path, signum, status, name):
    report = tmp_path / "report.json"
    # Once the long evaluation has used more CPU than a whole short one (imports, rebuilding
    # the run, scoring one task), it is scoring.
    short = spawn("eval", run, "--tasks", "1", "--steps", "0", "1")
    _, _, usage = os.wait4(short.pid, 0)
    short.communicate()
    started = usage.ru_utime + usage.ru_stime
    process = spawn("eval", run, "--tasks", "2000", "--steps", "0", "3000", "--json", report)
    deadline = time.time() + 120
    while cpu_seconds(process.pid) < started + 1:
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.05)
    code, err, seconds = signal_and_wait(process, signum)
    assert code == status and seconds < 5, (code, seconds, err)
    assert err.splitlines() == [f"metazoo eval: stopped by {name}"]
    assert not report.exists()
