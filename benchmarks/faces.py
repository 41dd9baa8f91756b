"""Few-shot face identification on the ORL faces: every registered algorithm, nearest neighbour
on pixels, and the question: does meta-learning beat joint training on real faces?

    nohup python benchmarks/faces.py --data-dir ../shared/data/orl_faces > faces.log &

Protocol (the same for every method, so that only the method differs): 40 people × 10 photos,
32×32 grey; each split seed splits the *people* at random into 24 train / 6 val / 10 test
(``--task faces``), so test tasks show only people never seen in training. Model: the Conv4
with 32 filters and max-pooling (``conv4-32``). Meta-training: 5-way 1-shot tasks with 5 query
photos per person, meta-batch 8, inner step size α = 0.1 (chosen on the validation people of
split seed 0 with MAML after 20 CPU s: 95.6% after 10 steps there, against 94.9% for α = 0.05
and 80.4% for 0.4, whose adaptation oscillates), Adam 1e-3, a budget of
``--time-budget`` CPU seconds of meta-training on 1 thread. Each method's own settings:
one inner step (MAML, first-order MAML, ANIL, Meta-SGD); 5 for Reptile (with 1 it is joint
training's direction) and iMAML (λ = 1, CG damping 21, as on Omniglot). Joint training
meta-trains with no inner loop and fine-tunes at test like the others.

Test: the same ``--eval-tasks`` tasks of the test people for every method of a split seed (drawn from the
evaluation seed), 5 query photos per person, at K = 1 and K = 5 support photos, accuracy after
``--report-steps`` test steps of size α (the 1-shot-trained θ is also tested at 5 shots;
training again per K would double the budget). Nearest neighbour: each query photo takes the
label of the closest support photo in pixel space (Euclidean), on the same tasks.
Results: mean over split seeds ± 95% Student-t interval over split seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from metazoo.algorithms import ALGORITHMS
from metazoo.stats import mean_ci
from metazoo.tasks import Faces

ROOT = Path(__file__).resolve().parent.parent
SHOTS = (1, 5)
QUERY = 5
EVAL_SEED = 12345
INNER_LR = 0.1
COMMON = ["--task", "faces", "--model", "conv4-32", "--n-way", "5", "--k-shot", "1",
          "--query-shots", str(QUERY), "--inner-lr", str(INNER_LR), "--meta-batch", "8",
          "--iterations", "1000000", "--budget-clock", "cpu", "--strategy", "loop",
          "--eval-seed", str(EVAL_SEED),
          "--eval-query-shots", str(QUERY), "--log-every", "25", "--checkpoint-every", "100",
          "--no-progress"]
#: The registered method that meta-learning is set against (joint training: no inner loop).
BASELINE = "joint"
#: A method's own settings, beyond the shared protocol (methods not named use none).
OWN = {"reptile": ["--inner-steps", "5"],
       "imaml": ["--inner-steps", "5", "--cg-damping", "21"]}


def run(args, algorithm: str, seed: int) -> dict:
    """Train (or resume) one method on one split seed; evaluate at every K; return accuracies."""
    out = args.runs / f"{algorithm}-seed{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    steps = [str(s) for s in sorted({0, *args.report_steps})]
    executed = not (out / "results.json").is_file()
    if executed:
        began = time.time()
        command = [sys.executable, "-m", "metazoo", "train", *COMMON, *OWN.get(algorithm, []),
                   "--algorithm", algorithm, "--data-dir", str(args.data_dir),
                   "--split-seed", str(seed), "--seed", str(seed),
                   "--time-budget", str(args.time_budget), "--eval-steps", *steps,
                   "--eval-tasks", str(args.eval_tasks),
                   "--overwrite", "--out", str(out)]
        _run_counted(command, env, out)
        print(f"{algorithm} seed {seed}: trained and tested at K=1 in {time.time() - began:.0f} s",
              flush=True)
    results = json.loads((out / "results.json").read_text())
    accuracy = {1: {int(s): v["accuracy"]["mean"] for s, v in results["evaluation"].items()}}
    for shots in SHOTS[1:]:
        report = out / f"eval-{shots}shot.json"
        if not report.is_file():
            _run_counted([sys.executable, "-m", "metazoo", "eval", str(out), "--k-shot",
                          str(shots), "--steps", *steps, "--json", str(report)], env, out)
        evaluation = json.loads(report.read_text())
        accuracy[shots] = {int(s): v["accuracy"]["mean"] for s, v in evaluation.items()}
    cpu = out / "cpu-seconds.json"
    return {"algorithm": algorithm, "seed": seed, "accuracy": accuracy,
            "iterations": results["iterations"], "train_seconds": results["train_seconds"],
            "cpu_seconds": sum(json.loads(cpu.read_text())) if cpu.is_file() else None,
            "executed": executed}


def _run_counted(command: list[str], env: dict, out: Path) -> None:
    """Run ``command``; add the CPU seconds it used to ``out/cpu-seconds.json``.

    Children's CPU time is read from ``getrusage`` before and after, so runs must not
    overlap for the count to be exact (``--jobs 1``).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    record = out / "cpu-seconds.json"
    spent = json.loads(record.read_text()) if record.is_file() else []
    record.write_text(json.dumps([*spent, used]) + "\n")


def nearest_neighbour(data_dir: Path, seed: int, shots: int, num_tasks: int) -> float:
    """Mean accuracy of 1-nearest-neighbour on pixels over the runs' own held-out tasks."""
    tasks = Faces(data_dir, part="test", split_seed=seed, k_shot=shots, query_shots=QUERY)
    batch = tasks.sample(num_tasks, torch.Generator().manual_seed(EVAL_SEED))
    support = batch.support_x.flatten(2)  # [T, N*K, pixels]
    query = batch.query_x.flatten(2)  # [T, N*Q, pixels]
    nearest = torch.cdist(query, support).argmin(-1)  # [T, N*Q]
    predicted = batch.support_y.gather(1, nearest)
    return (predicted == batch.query_y).float().mean().item()


NEAREST = "nearest neighbour on pixels"


def percent(values) -> str:
    mean, half = mean_ci([100 * v for v in values])
    return f"{mean:.1f} ± {half:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path,
                        default=os.environ.get("METAZOO_FACES_DIR") or ROOT.parent / "shared/data/orl_faces")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="split seeds")
    parser.add_argument("--time-budget", type=float, default=30.0,
                        help="CPU seconds of meta-training per run")
    parser.add_argument("--report-steps", type=int, nargs="+", default=[1, 5],
                        help="test steps to report (the last is the headline)")
    parser.add_argument("--eval-tasks", type=int, default=150, help="test tasks per K")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side (1 thread each)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "faces")
    args = parser.parse_args()
    torch.set_num_threads(1)
    grid = [(algorithm, seed) for seed in args.seeds for algorithm in sorted(ALGORITHMS)]
    started = time.time()
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda item: run(args, *item), grid))
    neighbour = {shots: [nearest_neighbour(args.data_dir, seed, shots, args.eval_tasks)
                         for seed in args.seeds]
                 for shots in SHOTS}
    headline = args.report_steps[-1]
    steps = sorted({0, *args.report_steps})
    methods = sorted(ALGORITHMS)
    # Accuracy per method, K and test step count: one value per split seed, in seed order.
    table = {(a, k, s): [r["accuracy"][k][s] for r in runs if r["algorithm"] == a]
             for a in methods for k in SHOTS for s in steps}
    table.update({(NEAREST, k, headline): neighbour[k] for k in SHOTS})

    command = "python benchmarks/faces.py " + " ".join(sys.argv[1:])
    cpu = [r["cpu_seconds"] for r in runs]
    executed = any(r["executed"] for r in runs)
    lines = ["# Faces: 5-way few-shot identification of people never seen in training", "",
             "Produced by:", "", f"    {command}", "",
             (f"{len(args.seeds)} split seeds ({', '.join(map(str, args.seeds))}) × "
              f"{len(methods)} methods, {args.time_budget:.0f} CPU seconds of meta-training "
              f"each, {args.eval_tasks} test tasks per K"
              + (f"; {sum(cpu) / 60:.0f} CPU minutes in all (training, testing, start-up)"
                 if args.jobs == 1 and all(c is not None for c in cpu) else "")
              + (f"; {(time.time() - started) / 60:.0f} min of wall-clock time on "
                 f"{os.cpu_count()} shared CPU cores ({args.jobs} run(s) at a time)"
                 if executed else "") + "."), "",
             __doc__.split("\n\n", 2)[2].strip(), "",
             f"## Accuracy (%) after {headline} test steps, mean ± 95% CI over split seeds", "",
             "| method | iterations (mean) | 5-way 1-shot | 5-way 5-shot |", "|---|---:|---:|---:|"]
    for algorithm in methods:
        iterations = [r["iterations"] for r in runs if r["algorithm"] == algorithm]
        lines.append(f"| {algorithm} | {sum(iterations) / len(iterations):.0f} | "
                     + " | ".join(percent(table[algorithm, k, headline]) for k in SHOTS) + " |")
    lines.append(f"| {NEAREST} | – | "
                 + " | ".join(percent(table[NEAREST, k, headline]) for k in SHOTS) + " |")
    verdicts = []
    for reference in (BASELINE, NEAREST):
        gaps = paired_gaps(table, [a for a in methods if a != BASELINE], reference, headline)
        name = "joint training" if reference == BASELINE else reference
        lines += ["", f"## Meta-learning against {name}, paired by split seed", "",
                  "| method | 1-shot: difference (points) | 5-shot: difference (points) |",
                  "|---|---:|---:|"]
        lines += [f"| {a} | " + " | ".join(f"{gaps[a][k][0]:+.1f} ± {gaps[a][k][1]:.1f}"
                                           for k in SHOTS) + " |" for a in gaps]
        verdicts.append(verdict(gaps, reference, name, table, headline))
    lines += ["", "Does meta-learning beat joint training on faces? " + " ".join(verdicts), ""]
    lines += ["## Every test step count (mean over split seeds, %)", "",
              "| method | K | " + " | ".join(f"{s} steps" for s in steps) + " |",
              "|---|---:|" + "---:|" * len(steps)]
    for algorithm in methods:
        for shots in SHOTS:
            cells = [f"{100 * sum(table[algorithm, shots, s]) / len(args.seeds):.1f}"
                     for s in steps]
            lines.append(f"| {algorithm} | {shots} | " + " | ".join(cells) + " |")
    lines.append("")
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "faces.md").write_text("\n".join(lines))
    (ROOT / "results" / "faces.json").write_text(json.dumps(
        {"runs": runs, "nearest_neighbour": neighbour, "command": command}, indent=1) + "\n")
    print("\n".join(lines))


def paired_gaps(table, methods, reference, steps) -> dict[str, dict[int, tuple[float, float]]]:
    """Per method and K: mean ± 95% CI over split seeds of (method − reference), in points.

    Paired by seed: both are tested on the same tasks of the same people.
    """
    return {a: {k: mean_ci([100 * (x - y) for x, y in zip(
        table[a, k, steps], table[reference, k, steps])]) for k in SHOTS} for a in methods}


def verdict(gaps, reference: str, name: str, table, steps) -> str:
    """One sentence per K, computed from the paired gaps to ``reference`` (called ``name``)."""
    sentences = []
    for shots in SHOTS:
        above = sorted(a for a, g in gaps.items() if g[shots][0] - g[shots][1] > 0)
        below = sorted(a for a, g in gaps.items() if g[shots][0] + g[shots][1] < 0)
        best = max(gaps, key=lambda a: gaps[a][shots][0])
        mean, half = gaps[best][shots]
        level = 100 * sum(table[reference, shots, steps]) / len(table[reference, shots, steps])
        found = (f"{len(above)} of {len(gaps)} methods beat {name} ({', '.join(above)}: "
                 "paired interval above zero)" if above else
                 f"no method resolves an advantage over {name}")
        sentences.append(
            f"**{shots}-shot against {name} ({level:.1f}%):** {found}; the largest mean "
            f"gain is {best}'s, {mean:+.1f} ± {half:.1f} points"
            + (f"; {', '.join(below)} {'is' if len(below) == 1 else 'are'} below it (paired "
               "interval below zero)" if below else "") + ".")
    return " ".join(sentences)


if __name__ == "__main__":
    main()
