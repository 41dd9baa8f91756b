"""Real processes: signals, two runs on one folder, a full disk, a read-only folder."""

import ctypes
import json
import os
import resource
import signal
import stat
import time

import pytest
import torch

from metazoo.engine import TrainConfig, train
from tests.hostile.harness import OK, REFUSED, SIGINT, SIGTERM, TINY, cli, digest, refused, spawn

LONG = ["--meta-batch", "2", "--eval-tasks", "2", "--strategy", "vmap", "--log-every", "1",
        "--checkpoint-every", "100000", "--no-progress"]


def wait_for_log(out, iterations, process, timeout=120):
    log, deadline = out / "log.jsonl", time.time() + timeout
    while time.time() < deadline:
        lines = log.read_text().splitlines() if log.exists() else []
        if len(lines) >= iterations:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError("the run did not start")


def finish(process, timeout=300):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def one_line(err):
    lines = err.splitlines()
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def logged(out):
    return [json.loads(line)["iteration"] for line in (out / "log.jsonl").read_text().splitlines()]


def theta(out):
    return torch.load(out / "checkpoint.pt", weights_only=True)


def uninterrupted(tmp_path, iterations):
    """θ of the same run, made in this process without a stop."""
    config = TrainConfig(iterations=iterations, meta_batch=2, eval_tasks=2, strategy="vmap")
    return train(config, tmp_path / f"whole{iterations}", progress=False,
                 evaluate_at_end=False)["params"]


@pytest.mark.slow
def test_ctrl_c_saves_the_iteration_and_the_run_resumes_bit_identically(tmp_path):
    out = tmp_path / "run"
    process = spawn("train", "--iterations", "100", *LONG, "--out", out)
    wait_for_log(out, 3, process)
    process.send_signal(signal.SIGINT)
    code, _, stderr = finish(process)
    assert code == SIGINT, stderr
    line = one_line(stderr)
    state = theta(out)
    done = state["iteration"]
    assert f"stopped by SIGINT after iteration {done};" in line
    assert f"metazoo train --resume {out}" in line and done < 100
    assert logged(out) == list(range(1, done + 1))  # the last iteration is saved and logged
    # Nothing since the start is lost: θ is that of an uninterrupted run of as many iterations.
    whole = uninterrupted(tmp_path, done)
    assert all(torch.equal(state["params"][name], whole[name]) for name in whole)
    # And what the line says works.
    code, _, stderr = finish(spawn("train", "--resume", out, "--no-progress"))
    assert code == OK and stderr == "", stderr
    whole = uninterrupted(tmp_path, 100)
    assert all(torch.equal(theta(out)["params"][name], whole[name]) for name in whole)
    assert logged(out) == list(range(1, 101))


def test_sigterm_saves_the_iteration_and_exits_143(tmp_path):
    out = tmp_path / "run"
    process = spawn("train", "--iterations", "100000", *LONG, "--out", out)
    wait_for_log(out, 3, process)
    process.send_signal(signal.SIGTERM)
    code, _, stderr = finish(process)
    assert code == SIGTERM
    done = theta(out)["iteration"]
    assert f"stopped by SIGTERM after iteration {done};" in one_line(stderr)
    assert logged(out) == list(range(1, done + 1))


def test_a_second_process_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "run"
    first = spawn("train", "--iterations", "100000", *LONG, "--out", out)
    try:
        wait_for_log(out, 1, first)
        for args in (["train", *TINY, "--overwrite", "--out", out],
                     ["train", "--resume", out, "--no-progress"]):
            result = cli(*args)
            assert result.code == REFUSED
            assert f"run folder {out} is in use by process {first.pid};" in result.line
    finally:
        first.send_signal(signal.SIGTERM)
    code, _, stderr = finish(first)
    assert code == SIGTERM, stderr
    assert json.loads((out / "config.json").read_text()) == theta(out)["config"]
    assert logged(out) == list(range(1, theta(out)["iteration"] + 1))


def test_two_runs_started_together_into_one_folder(tmp_path):
    out = tmp_path / "run"
    processes = [spawn("train", "--iterations", "30", *LONG, "--seed", seed, "--out", out)
                 for seed in ("1", "2")]
    results = [finish(process) for process in processes]
    codes = sorted(code for code, _, _ in results)
    assert codes == [OK, REFUSED], [r[2][-500:] for r in results]
    refusal = next(err for code, _, err in results if code == REFUSED)
    assert "is in use by process" in one_line(refusal) or "already holds a run" in refusal
    stored = json.loads((out / "config.json").read_text())
    assert stored == theta(out)["config"]
    assert logged(out) == list(range(1, 31))  # one run's log, whole: no interleaving


def limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (8000, 8000))


def test_a_full_disk_at_the_first_checkpoint(tmp_path):
    out = tmp_path / "run"
    code, _, stderr = finish(spawn("train", *TINY, "--out", out, preexec_fn=limit_file_size))
    assert code == REFUSED
    line = one_line(stderr)
    assert f"cannot write {out / 'checkpoint.pt'} (File too large)" in line, line
    assert sorted(path.name for path in out.iterdir()) == ["config.json"]  # its lock removed
    # No checkpoint, nothing lost: the same command starts it again, without --overwrite.
    assert cli("train", *TINY, "--out", out).code == OK


def without_root_override():
    if os.geteuid() == 0:  # root writes anywhere: drop that capability for this process
        ctypes.CDLL(None, use_errno=True).prctl(24, 1, 0, 0, 0)  # PR_CAPBSET_DROP, DAC_OVERRIDE


def test_a_read_only_run_folder_is_refused_on_resume(run):
    (run / "results.json").unlink()
    before = digest(run)
    run.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        code, _, stderr = finish(spawn("train", "--resume", run, "--no-progress",
                                       preexec_fn=without_root_override))
    finally:
        run.chmod(0o755)
    assert code == REFUSED
    assert f"{run} is not writable" in one_line(stderr)
    assert digest(run) == before
    assert refused  # the in-process refusals share the harness
