"""Peak memory of ``metazoo eval`` against the number of held-out tasks.

Trains a tiny Omniglot run (2 meta-iterations, meta-batch 2: the held-out tasks are drawn
and scored 2 at a time), then runs ``metazoo eval RUN --tasks N --steps 0 1`` in a fresh
process for each N and reads its peak resident memory (``ru_maxrss`` of that process).
``--checkout DIR`` runs the evals with another copy of the package (e.g. an older commit,
exported with ``git archive``), so that two versions can be compared on the same run.

    python benchmarks/eval_memory.py                              # this checkout
    python benchmarks/eval_memory.py --checkout /tmp/old --tasks 10 600
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, command, table


def peak_mib(args: list[str], checkout: Path) -> float:
    """Peak resident memory (MiB) of ``python -m metazoo ARGS`` run from ``checkout``."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "metazoo", *args], cwd=checkout, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    error = process.stderr.read()
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"metazoo {' '.join(args)} failed ({process.returncode}): {error}")
    return usage.ru_maxrss / 1024  # Linux reports kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[10, 150, 600, 1200])
    parser.add_argument("--checkout", type=Path, default=ROOT,
                        help="the copy of metazoo whose eval is measured (default: this one)")
    parser.add_argument("--run", type=Path, default=None,
                        help="a trained Omniglot run to evaluate (default: train a tiny one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run = args.run or Path(scratch) / "run"
        if args.run is None:
            peak_mib(["train", "--task", "omniglot", "--iterations", "2", "--meta-batch", "2",
                      "--eval-tasks", "2", "--strategy", "vmap", "--out", str(run)], ROOT)
        rows = []
        for count in args.tasks:
            peak = peak_mib(["eval", str(run), "--tasks", str(count), "--steps", "0", "1"],
                            args.checkout)
            rows.append((count, f"{peak:.0f}"))
    print(f"{command('eval_memory.py')}\n")
    print("\n".join(table(["held-out tasks", "peak RSS (MiB)"], rows)))


if __name__ == "__main__":
    main()
