"""Scale and survive: torchrun data parallelism and resuming after a real SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from metazoo.engine import TrainConfig, build, train
from metazoo.models import initial_params

#: Processes killed and resumed, several runs side by side.
pytestmark = pytest.mark.slow

# float64: in float32 the all-reduce's different summation order alone moves θ by ~1e-6
# after a few Adam steps (Adam rescales tiny gradient entries), which would hide real errors.
COMMON = ["--iterations", "8", "--meta-batch", "6", "--eval-tasks", "5", "--inner-steps", "2",
          "--dtype", "float64", "--no-progress"]


def final_params(run_dir):
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["params"]


@pytest.mark.parametrize("algorithm", ["maml", "imaml"])
def test_two_processes_match_one(tmp_path, algorithm):
    """A 2-rank torchrun job gives the θ of a 1-process run with the same global batch."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "metazoo", "train", "--algorithm", algorithm,
               *COMMON, "--out", str(tmp_path / "two")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("| test steps |") == 1  # rank 0 alone reports
    config = TrainConfig(algorithm=algorithm, iterations=8, meta_batch=6, eval_tasks=5,
                         inner_steps=2, dtype="float64")
    single = train(config, tmp_path / "one", progress=False, evaluate_at_end=False)["params"]
    two = final_params(tmp_path / "two")
    for name in single:
        torch.testing.assert_close(two[name], single[name], rtol=0, atol=1e-10)
    # and the runs really moved θ (so agreement is not trivial)
    start = initial_params(build(config).model)
    moved = max((single[name].double() - start[name].double()).abs().max().item()
                for name in start)
    assert moved > 1e-3, f"θ moved by at most {moved:g} in 8 iterations"


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    options = ["--algorithm", "maml", "--iterations", "60", "--meta-batch", "4",
               "--checkpoint-every", "7", "--log-every", "1", "--eval-tasks", "5",
               "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "metazoo", "train", *options,
                                "--out", str(killed)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = killed / "log.jsonl"
    deadline = time.time() + 120
    # Kill at an arbitrary point past the first periodic checkpoint, between two checkpoints.
    while time.time() < deadline:
        lines = log.read_text().splitlines() if log.exists() else []
        if lines and json.loads(lines[-1])["iteration"] >= 17:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert 7 <= state["iteration"] < 60, "the kill should land mid-run"
    resumed = subprocess.run([sys.executable, "-m", "metazoo", "train", "--resume", str(killed),
                              "--no-progress"], check=False, env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # The uninterrupted run uses the strategy the killed run measured and kept (--strategy
    # auto times vmap against the loop; two runs can choose differently, and the two
    # strategies agree to rounding, not bit for bit).
    whole = tmp_path / "whole"
    subprocess.run([sys.executable, "-m", "metazoo", "train", *options, "--out", str(whole),
                    "--strategy", state["strategy"]],
                   env=env, check=True, capture_output=True, timeout=300)
    for name, value in final_params(whole).items():
        assert torch.equal(final_params(killed)[name], value)
    # the training records (the first, iteration 0, is the strategy auto chose)
    iterations = [record["iteration"] for record in map(json.loads, log.read_text().splitlines())
                  if "loss" in record]
    assert iterations == list(range(1, 61))  # the log has no gaps or duplicates after resume
