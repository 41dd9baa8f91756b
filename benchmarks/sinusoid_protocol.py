"""Meta-train every algorithm on sinusoid regression with the MAML paper's protocol and
tabulate meta-test MSE ± 95% CI.

Protocol (Finn et al., 2017, section 5.1): K = 10 support points while training, inner step
size α = 0.01, one inner step, meta-batch 25, Adam with step 1e-3. Evaluation: the same 600
held-out tasks for every algorithm (seeded), K = 5 and K = 10 support points, 100 query points,
query MSE after 1, 5 and 10 test steps of size α.

    python benchmarks/sinusoid_protocol.py --iterations 30000 --jobs 2

Runs go to ``runs/sinusoid-protocol/<name>`` (resumed if interrupted); the table is written to
``results/sinusoid.md`` and ``results/sinusoid.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: name → extra train flags. The five algorithms use the protocol unchanged; Reptile with
#: k = 1 is (by construction) joint training's direction, so k = 5 is shown as well.
RUNS = {
    "joint": ["--algorithm", "joint"],
    "maml": ["--algorithm", "maml"],
    "fomaml": ["--algorithm", "fomaml"],
    "reptile": ["--algorithm", "reptile"],
    "reptile-k5": ["--algorithm", "reptile", "--inner-steps", "5"],
    "imaml": ["--algorithm", "imaml"],
}


def run(name: str, flags: list[str], iterations: int, runs: Path, threads: int) -> dict:
    out = runs / name
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "metazoo", "train", *flags, "--iterations", str(iterations),
               "--eval-steps", "0", "1", "5", "10", "--eval-k-shot", "5",
               "--eval-query-shots", "100", "--no-progress", "--out", str(out)]
    if (out / "results.json").is_file():
        pass  # finished earlier
    elif (out / "checkpoint.pt").is_file():
        subprocess.run(command[:3] + ["--resume", str(out), "--no-progress"], check=True, env=env)
    else:
        started = time.time()
        subprocess.run(command, check=True, env=env)
        print(f"{name}: trained in {time.time() - started:.0f} s", flush=True)
    k10 = out / "eval-k10.json"
    if not k10.is_file():
        subprocess.run([sys.executable, "-m", "metazoo", "eval", str(out), "--k-shot", "10",
                        "--steps", "0", "1", "5", "10", "--json", str(k10)],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    result = json.loads((out / "results.json").read_text())
    return {"name": name, "k5": result["evaluation"], "k10": json.loads(k10.read_text()),
            "config": result["config"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=30000)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "sinusoid-protocol")
    parser.add_argument("--only", nargs="+", default=list(RUNS), choices=list(RUNS))
    args = parser.parse_args()
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(
            lambda name: run(name, RUNS[name], args.iterations, args.runs, threads), args.only))

    def cell(entry, steps):
        return f"{entry[steps]['loss']['mean']:.3f} ± {entry[steps]['loss']['ci95']:.3f}"

    lines = [
        f"# Sinusoid regression, MAML paper protocol ({args.iterations} meta-iterations)",
        "",
        "Train: K = 10, α = 0.01, 1 inner step (Reptile-k5: 5), meta-batch 25, Adam 1e-3, seed 0.",
        "Test: the same 600 held-out tasks for every row, 100 query points, steps of size α.",
        "Query MSE ± 95% CI. Produced by:",
        "",
        f"    python benchmarks/sinusoid_protocol.py --iterations {args.iterations} --jobs {args.jobs}",
        "",
    ]
    for shots in ("k5", "k10"):
        lines += [f"## K = {shots[1:]} support points at test", "",
                  "| algorithm | 0 steps | 1 step | 5 steps | 10 steps |", "|---|---:|---:|---:|---:|"]
        for entry in results:
            lines.append(f"| {entry['name']} | " + " | ".join(
                cell(entry[shots], s) for s in ("0", "1", "5", "10")) + " |")
        lines.append("")
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "sinusoid.md").write_text("\n".join(lines))
    (ROOT / "results" / "sinusoid.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
