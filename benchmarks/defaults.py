"""Does every registered algorithm learn with its own defaults? ``metazoo train --algorithm A``
with no other option (sinusoid), for every A in the registry, then one table on the same
held-out tasks: query MSE after 0, 1, 5 and 10 test steps, against joint training and MAML.

    python benchmarks/defaults.py --jobs 2            # writes results/sinusoid-defaults.md
    python benchmarks/defaults.py --iterations 2000 --runs runs/defaults-2000
        # the small budget that tests/algorithms/test_defaults.py guards; writes
        # results/sinusoid-defaults-2000.md

A method "learns" here when, after 10 test steps, its loss is below joint training's and at
most 1.5× MAML's. The runs are the library's grid (:func:`metazoo.analysis.grid.run_grid`):
a finished run is reused, an interrupted one resumed, and a run that stops on a non-finite
meta-gradient is scored at its last good checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import ROOT, Clock, table, write_results

from metazoo.algorithms import ALGORITHMS
from metazoo.analysis.grid import Evaluations, run_grid
from metazoo.engine import TrainConfig

# The comparison this script makes: a method learns when, after 10 test steps, its loss is
# below the baseline's and at most WITHIN times the reference's.
BASELINE = "joint"  # joint training, which has no inner loop
REFERENCE = "maml"
WITHIN = 1.5


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
    extra = ["--iterations", str(args.iterations)] if args.iterations else []
    if args.out is None:
        suffix = f"-{args.iterations}" if args.iterations else ""
        args.out = ROOT / "results" / f"sinusoid-defaults{suffix}.md"
    names = sorted(ALGORITHMS)
    iterations = {"iterations": args.iterations} if args.iterations else {}
    with Clock() as clock:
        records = run_grid({name: TrainConfig(algorithm=name, **iterations) for name in names},
                           args.runs, runs=args.runs, score=Evaluations(), jobs=args.jobs,
                           threads=args.threads, evaluate_at_end=True, keep_diverged=True,
                           desc="defaults")
    results = dict(zip(names, records))

    def loss(name: str, step: str = "10") -> tuple[float, float]:
        entry = results[name]["evaluation"][step]["loss"]
        return entry["mean"], entry["ci95"]

    baseline, reference = loss(BASELINE)[0], loss(REFERENCE)[0]
    trained = sum(record["train_seconds"] for record in records)
    lines = [
        "# Every algorithm with its own defaults, on sinusoid",
        "",
        (f"`python benchmarks/defaults.py --jobs {args.jobs}"
         + "".join(f" {flag}" for flag in extra) + "`"
         f" (training: {trained / 60:.1f} min summed over the runs, one thread each; this "
         f"call {clock.wall / 60:.1f} min, reusing finished runs). Each run is "
         "`metazoo train "
         "--algorithm A` with no other flag but the iterations shown; all are scored on the "
         "same 600 held-out tasks."),
        "",
    ]
    rows, learns = [], []
    for name in names:
        config = results[name]["config"]
        cells = [f"{loss(name, s)[0]:.3f} ± {loss(name, s)[1]:.2g}" for s in ("0", "1", "5", "10")]
        ratio = loss(name)[0] / reference
        below = name == BASELINE or loss(name)[0] < baseline
        diverged = results[name].get("diverged")
        ok = name == BASELINE or (below and ratio <= WITHIN and diverged is None)
        learns.append((name, ok))
        options = ", ".join(f"{k}={v}" for k, v in sorted(config["algorithm_options"].items())) or "—"
        label = name if diverged is None else (
            f"{name} (diverged: {diverged}; scored at its last good checkpoint, iteration "
            f"{results[name]['iterations']})")
        rows.append([label, config["inner_steps"], f"{config['inner_lr']:g}", options, *cells,
                     f"{ratio:.2f}", "yes" if below else "no"])
    lines += table(["algorithm", "k", "α", "options", "loss at θ", "1 step", "5 steps",
                    "10 steps", f"÷ {REFERENCE}", f"below {BASELINE}"], rows, "lrrlrrrrrl")
    failing = [name for name, ok in learns if not ok]
    lines += ["", (f"Every algorithm learns: after 10 test steps each is below {BASELINE} and "
                   f"within {WITHIN:g}× {REFERENCE}." if not failing else
                   f"Not learning by that measure: {', '.join(failing)}.")]
    write_results(args.out.with_suffix(""), lines)


if __name__ == "__main__":
    main()
