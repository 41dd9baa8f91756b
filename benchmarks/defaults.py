"""Does every registered algorithm learn with its own defaults? ``metazoo train --algorithm A``
with no other flag (sinusoid), for every A in the registry, then one table on the same
held-out tasks: query MSE after 0, 1, 5 and 10 test steps, against joint training and MAML.

    python benchmarks/defaults.py --jobs 2            # writes results/sinusoid-defaults.md
    python benchmarks/defaults.py --iterations 2000 --runs runs/defaults-2000
        # the small budget that tests/algorithms/test_defaults.py guards; writes
        # results/sinusoid-defaults-2000.md

A method "learns" here when, after 10 test steps, its loss is below joint training's and at
most 1.5× MAML's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from metazoo.algorithms import ALGORITHMS

# The comparison this script makes: a method learns when, after 10 test steps, its loss is
# below the baseline's and at most WITHIN times the reference's.
BASELINE = "joint"  # joint training, which has no inner loop
REFERENCE = "maml"
WITHIN = 1.5
#: ``metazoo train``'s exit status when it stops on a non-finite meta-gradient or loss.
NONFINITE = 3


def run(algorithm: str, args) -> dict:
    out = args.runs / algorithm
    if not (out / "results.json").is_file():
        command = [sys.executable, "-m", "metazoo", "train", "--algorithm", algorithm,
                   "--no-progress", "--overwrite", "--out", str(out), *args.extra]
        began = time.time()
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        done = subprocess.run(command, check=False, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=env)
        print(f"{algorithm}: {time.time() - began:.0f} s", flush=True)
        if done.returncode == NONFINITE:
            return last_good(out, env, int(re.search(r"at iteration (\d+)", done.stderr).group(1)))
        if done.returncode:
            raise SystemExit(f"{algorithm}: metazoo train failed:\n{done.stderr}")
    return json.loads((out / "results.json").read_text())


def last_good(out: Path, env: dict, diverged: int) -> dict:
    """A run stopped on a non-finite meta-gradient: its last good checkpoint, scored on the
    same held-out tasks, with the iteration it stopped at (the divergence is named in the
    table, never shown as nan or inf)."""
    scored = out / "last-good.json"
    printed = subprocess.run([sys.executable, "-m", "metazoo", "eval", str(out), "--json",
                              str(scored)], check=True, capture_output=True, text=True,
                             env=env).stdout
    kept = int(re.search(r"after (\d+) iterations", printed).group(1))
    return {"config": json.loads((out / "config.json").read_text()),
            "evaluation": json.loads(scored.read_text()), "diverged": diverged, "kept": kept}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "defaults")
    parser.add_argument("--out", type=Path, default=None,
                        help="report (default: results/sinusoid-defaults.md, or "
                        "sinusoid-defaults-N.md with --iterations N)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=0,
                        help="meta-iterations of every run (0: the default, 10,000)")
    args = parser.parse_args()
    args.extra = ["--iterations", str(args.iterations)] if args.iterations else []
    if args.out is None:
        suffix = f"-{args.iterations}" if args.iterations else ""
        args.out = ROOT / "results" / f"sinusoid-defaults{suffix}.md"
    began = time.time()
    names = sorted(ALGORITHMS)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(names, pool.map(lambda a: run(a, args), names)))

    def loss(name: str, step: str = "10") -> tuple[float, float]:
        entry = results[name]["evaluation"][step]["loss"]
        return entry["mean"], entry["ci95"]

    baseline, reference = loss(BASELINE)[0], loss(REFERENCE)[0]
    # A diverged run's entry has no training time; its own run folder's results do not exist.
    trained = sum(entry.get("train_seconds", 0.0) for entry in results.values())
    lines = [
        "# Every algorithm with its own defaults, on sinusoid",
        "",
        (f"`python benchmarks/defaults.py --jobs {args.jobs}"
         + "".join(f" {flag}" for flag in args.extra) + "`"
         f" (training: {trained / 60:.1f} min summed over the runs, one thread each; this "
         f"call {(time.time() - began) / 60:.1f} min, reusing finished runs). Each run is "
         "`metazoo train "
         "--algorithm A` with no other flag but the iterations shown; all are scored on the "
         "same 600 held-out tasks."),
        "",
        ("| algorithm | k | α | options | loss at θ | 1 step | 5 steps | 10 steps | "
         f"÷ {REFERENCE} | below {BASELINE} |"),
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    learns = []
    for name in names:
        config = results[name]["config"]
        cells = [f"{loss(name, s)[0]:.3f} ± {loss(name, s)[1]:.2g}" for s in ("0", "1", "5", "10")]
        ratio = loss(name)[0] / reference
        below = name == BASELINE or loss(name)[0] < baseline
        diverged = results[name].get("diverged")
        ok = name == BASELINE or (below and ratio <= WITHIN and diverged is None)
        learns.append((name, ok))
        options = ", ".join(f"{k}={v}" for k, v in config["algorithm_options"].items()) or "—"
        label = name if diverged is None else (
            f"{name} (diverged: non-finite at iteration {diverged}; scored at its last good "
            f"checkpoint, iteration {results[name]['kept']})")
        lines.append(f"| {label} | {config['inner_steps']} | {config['inner_lr']:g} | {options} | "
                     + " | ".join(cells) + f" | {ratio:.2f} | {'yes' if below else 'no'} |")
    failing = [name for name, ok in learns if not ok]
    lines += ["", (f"Every algorithm learns: after 10 test steps each is below {BASELINE} and "
                   f"within {WITHIN:g}× {REFERENCE}." if not failing else
                   f"Not learning by that measure: {', '.join(failing)}.")]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
