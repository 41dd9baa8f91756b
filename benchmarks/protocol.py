"""Meta-train every algorithm under a published protocol and tabulate meta-test results.

Suites:

``sinusoid`` (Finn et al., 2017, section 5.1): K = 10 support points while training,
meta-batch 25, Adam 1e-3, each algorithm with its own inner-loop defaults (MAML's: α = 0.01,
one inner step). Test: the same 600 held-out
tasks for every algorithm, K = 5 and K = 10 support points, 100 query points, MSE after 1, 5
and 10 steps of each method's own test-time rule (gradient steps of size α; iMAML's Newton–CG
steps; Meta-SGD's learned step sizes, for the steps they were learned for).

Omniglot, each method under its own published protocol, is ``benchmarks/omniglot_protocols.py``.

    python benchmarks/protocol.py sinusoid --iterations 30000 --jobs 2

Runs go to ``runs/<suite>-protocol/<name>`` (an interrupted run is resumed); the table goes to
``results/<suite>.md`` and ``results/<suite>.json``.
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

from metazoo.algorithms import ALGORITHMS

ROOT = Path(__file__).resolve().parent.parent
SUITES = {
    "sinusoid": {
        "flags": ["--task", "sinusoid", "--eval-steps", "0", "1", "5", "10",
                  "--eval-k-shot", "5", "--eval-query-shots", "100"],
        # Every registered algorithm, each with its own inner-loop defaults.
        "runs": {name: ["--algorithm", name] for name in sorted(ALGORITHMS)},
        "extra_eval": ["--k-shot", "10"],  # also report K = 10 at test
        "metric": "loss", "steps": ["0", "1", "5", "10"],
    },
}


def run(suite: dict, name: str, args) -> dict:
    out = args.runs / name
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    command = [sys.executable, "-m", "metazoo", "train", *suite["flags"], *suite["runs"][name],
               "--iterations", str(args.iterations), "--time-budget", str(args.time_budget),
               "--no-progress", "--out", str(out)]
    if not (out / "results.json").is_file():
        began = time.time()
        if (out / "checkpoint.pt").is_file():
            command = [sys.executable, "-m", "metazoo", "train", "--resume", str(out),
                       "--no-progress"]
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        print(f"{name}: done in {time.time() - began:.0f} s", flush=True)
    result = json.loads((out / "results.json").read_text())
    entry = {"name": name, "main": result["evaluation"], "config": result["config"],
             # results written before the field existed ran exactly the configured count
             "iterations": result.get("iterations") or result["config"]["iterations"],
             "train_seconds": result.get("train_seconds"),
             "median_seconds_per_iteration": result["median_seconds_per_iteration"]}
    if suite["extra_eval"]:
        extra = out / "eval-extra.json"
        if not extra.is_file():
            subprocess.run([sys.executable, "-m", "metazoo", "eval", str(out),
                            *suite["extra_eval"], "--json", str(extra)],
                           check=True, env=env, stdout=subprocess.DEVNULL)
        entry["extra"] = json.loads(extra.read_text())
    return entry


def table(entries, key, suite, metric) -> list[str]:
    lines = ["| algorithm | iterations | ms / iteration | "
             + " | ".join(f"{s} steps" for s in suite["steps"]) + " |",
             "|---|---:|---:|" + "---:|" * len(suite["steps"])]
    for entry in entries:
        cells = [f"{entry[key][s][metric]['mean']:.3f} ± {entry[key][s][metric]['ci95']:.3f}"
                 for s in suite["steps"]]
        lines.append(f"| {entry['name']} | {entry['iterations']} | "
                     f"{1e3 * entry['median_seconds_per_iteration']:.1f} | "
                     + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--iterations", type=int, default=30000, help="at most")
    parser.add_argument("--time-budget", type=float, default=0.0,
                        help="seconds of meta-training per algorithm (0: none)")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    parser.add_argument("--runs", type=Path, default=None)
    parser.add_argument("--only", nargs="+", default=None)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads per run (0: cores / jobs)")
    args = parser.parse_args()
    suite = SUITES[args.suite]
    args.runs = args.runs or ROOT / "runs" / f"{args.suite}-protocol"
    args.threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    names = args.only or list(suite["runs"])
    with ThreadPoolExecutor(args.jobs) as pool:
        entries = list(pool.map(lambda name: run(suite, name, args), names))

    budget = (f"{args.time_budget:.0f} s of meta-training per algorithm, at most "
              if args.time_budget else "")
    command = " ".join(["python", "benchmarks/protocol.py", *sys.argv[1:]])
    lines = [f"# {args.suite}: all algorithms under the MAML paper's protocol", "",
             (f"Budget: {budget}{args.iterations} meta-iterations; {args.jobs} runs in parallel, "
             f"{args.threads} thread(s) each, on this machine "
             f"({os.cpu_count()} cores). Mean ± 95% CI over the held-out tasks "
             f"(the same tasks for every row). Produced by:"), "", f"    {command}", "",
             (__doc__.split(f"``{args.suite}``")[1].split("\n\n")[0]).strip(), ""]
    metric = suite["metric"]
    lines += [f"## {metric} at test" + (" (K = 5)" if args.suite == "sinusoid" else ""), ""]
    lines += table(entries, "main", suite, metric) + [""]
    if suite["extra_eval"]:
        lines += ["## loss at test with K = 10 support points", ""]
        lines += table([{**e, "main": e["extra"]} for e in entries], "main", suite, metric)
        lines.append("")
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / f"{args.suite}.md").write_text("\n".join(lines))
    (ROOT / "results" / f"{args.suite}.json").write_text(json.dumps(entries, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
