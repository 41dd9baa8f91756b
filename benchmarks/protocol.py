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

Runs go to ``runs/<suite>-protocol/<name>``, the library's grid (an interrupted run is resumed, a
finished one reused); the table goes to ``results/<suite>.md`` and ``results/<suite>.json``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from common import RESULTS, ROOT, command, table, write_results

from metazoo.algorithms import ALGORITHMS
from metazoo.analysis.grid import Evaluations, run_grid
from metazoo.engine import TrainConfig

SUITES = {
    "sinusoid": {
        "options": {"task": "sinusoid", "eval_steps": [0, 1, 5, 10], "eval_k_shot": 5,
                    "eval_query_shots": 100},
        # Every registered algorithm, each with its own inner-loop defaults.
        "runs": {name: {"algorithm": name} for name in sorted(ALGORITHMS)},
        "extra_eval": {"eval_k_shot": 10},  # also report K = 10 at test
        "metric": "loss", "steps": ["0", "1", "5", "10"],
    },
}


def entries(suite: dict, names: list[str], args) -> list[dict]:
    """Train (or resume, or reuse) every run of the suite; one entry per run."""
    cells = {name: TrainConfig(**suite["options"], **suite["runs"][name],
                               iterations=args.iterations, time_budget=args.time_budget)
             for name in names}
    score = Evaluations({"extra_eval": suite["extra_eval"]} if suite["extra_eval"] else {})
    records = run_grid(cells, args.runs, runs=args.runs, score=score, jobs=args.jobs,
                       threads=args.threads, evaluate_at_end=True, desc=args.suite)
    return [{"name": r["name"], "main": r["evaluation"], "config": r["config"],
             "iterations": r["iterations"], "train_seconds": r["train_seconds"],
             "median_seconds_per_iteration": r["ms_per_iteration"] / 1e3,
             **({"extra": r["extra"]["extra_eval"]} if suite["extra_eval"] else {})}
            for r in records]


def results_table(entries, key, suite, metric) -> list[str]:
    rows = [[entry["name"], entry["iterations"],
             f"{1e3 * entry['median_seconds_per_iteration']:.1f}",
             *(f"{entry[key][s][metric]['mean']:.3f} ± {entry[key][s][metric]['ci95']:.3f}"
               for s in suite["steps"])] for entry in entries]
    return table(["algorithm", "iterations", "ms / iteration",
                  *(f"{s} steps" for s in suite["steps"])], rows)


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
    found = entries(suite, args.only or list(suite["runs"]), args)

    budget = (f"{args.time_budget:.0f} s of meta-training per algorithm, at most "
              if args.time_budget else "")
    lines = [f"# {args.suite}: all algorithms under the MAML paper's protocol", "",
             (f"Budget: {budget}{args.iterations} meta-iterations; {args.jobs} runs in parallel, "
             f"{args.threads} thread(s) each, on this machine "
             f"({os.cpu_count()} cores). Mean ± 95% CI over the held-out tasks "
             f"(the same tasks for every row). Produced by:"), "",
             f"    {command('protocol.py')}", "",
             (__doc__.split(f"``{args.suite}``")[1].split("\n\n")[0]).strip(), ""]
    metric = suite["metric"]
    lines += [f"## {metric} at test" + (" (K = 5)" if args.suite == "sinusoid" else ""), ""]
    lines += results_table(found, "main", suite, metric) + [""]
    if suite["extra_eval"]:
        lines += ["## loss at test with K = 10 support points", ""]
        lines += results_table(found, "extra", suite, metric)
        lines.append("")
    write_results(RESULTS / args.suite, lines, found)


if __name__ == "__main__":
    main()
