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
import os
from pathlib import Path

import torch
from common import RESULTS, ROOT, Clock, command, table, write_results

from metazoo.algorithms import ALGORITHMS
from metazoo.analysis.grid import Evaluations, run_grid
from metazoo.engine import TrainConfig
from metazoo.stats import Difference, mean_ci, paired_by_seed
from metazoo.tasks import Faces

SHOTS = (1, 5)
QUERY = 5
EVAL_SEED = 12345
INNER_LR = 0.1
COMMON = {"task": "faces", "model": "conv4-32", "n_way": 5, "k_shot": 1, "query_shots": QUERY,
          "inner_lr": INNER_LR, "meta_batch": 8, "iterations": 1000000, "budget_clock": "cpu",
          "strategy": "loop", "eval_seed": EVAL_SEED, "eval_query_shots": QUERY,
          "log_every": 25, "checkpoint_every": 100}
#: The registered method that meta-learning is set against (joint training: no inner loop).
BASELINE = "joint"
#: A method's own settings, beyond the shared protocol (methods not named use none).
OWN = {"reptile": {"inner_steps": 5},
       "imaml": {"inner_steps": 5, "algorithm_options": {"cg_damping": 21.0}}}


def train_all(args, grid: list[tuple[str, int]]) -> list[dict]:
    """Train (or resume, or reuse) every method on every split seed, one thread each; test
    each at every K. Returns, per run, its accuracies ``{K: {steps: mean}}``."""
    steps = sorted({0, *args.report_steps})
    cells = {f"{algorithm}-seed{seed}": TrainConfig(
        **COMMON, **OWN.get(algorithm, {}), algorithm=algorithm, data_dir=str(args.data_dir),
        split_seed=seed, seed=seed, time_budget=args.time_budget, eval_steps=steps,
        eval_tasks=args.eval_tasks) for algorithm, seed in grid}
    score = Evaluations({str(shots): {"eval_k_shot": shots} for shots in SHOTS[1:]})
    records = run_grid(cells, args.runs, runs=args.runs, score=score, jobs=args.jobs,
                       threads=1, evaluate_at_end=True, desc="faces")
    runs = []
    for record in records:
        reports = {1: record["evaluation"], **{shots: record["extra"][str(shots)]
                                               for shots in SHOTS[1:]}}
        runs.append({"algorithm": record["algorithm"], "seed": record["seed"],
                     "accuracy": {shots: {int(s): v["accuracy"]["mean"]
                                          for s, v in report.items()}
                                  for shots, report in reports.items()},
                     "iterations": record["iterations"],
                     "train_seconds": record["train_seconds"]})
    return runs


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


def percent(by_seed: dict[int, float]) -> str:
    mean, half = mean_ci([100 * v for v in by_seed.values()])
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
    with Clock() as clock:
        runs = train_all(args, grid)
    neighbour = {shots: [nearest_neighbour(args.data_dir, seed, shots, args.eval_tasks)
                         for seed in args.seeds]
                 for shots in SHOTS}
    headline = args.report_steps[-1]
    steps = sorted({0, *args.report_steps})
    methods = sorted(ALGORITHMS)
    # Accuracy per method, K and test step count: {split seed: value}.
    accuracy = {(a, k, s): {r["seed"]: r["accuracy"][k][s] for r in runs if r["algorithm"] == a}
                for a in methods for k in SHOTS for s in steps}
    accuracy.update({(NEAREST, k, headline): dict(zip(args.seeds, neighbour[k]))
                     for k in SHOTS})

    trained = sum(r["train_seconds"] for r in runs)
    lines = ["# Faces: 5-way few-shot identification of people never seen in training", "",
             "Produced by:", "", f"    {command('faces.py')}", "",
             (f"{len(args.seeds)} split seeds ({', '.join(map(str, args.seeds))}) × "
              f"{len(methods)} methods, {args.time_budget:.0f} CPU seconds of meta-training "
              f"each, {args.eval_tasks} test tasks per K; {trained / 60:.0f} CPU minutes of "
              f"meta-training in all; this call {clock.wall / 60:.0f} min of wall-clock time on "
              f"{os.cpu_count()} shared CPU cores ({args.jobs} run(s) at a time)."), "",
             __doc__.split("\n\n", 2)[2].strip(), "",
             f"## Accuracy (%) after {headline} test steps, mean ± 95% CI over split seeds", ""]
    rows = []
    for algorithm in methods:
        iterations = [r["iterations"] for r in runs if r["algorithm"] == algorithm]
        rows.append([algorithm, f"{sum(iterations) / len(iterations):.0f}",
                     *(percent(accuracy[algorithm, k, headline]) for k in SHOTS)])
    rows.append([NEAREST, "–", *(percent(accuracy[NEAREST, k, headline]) for k in SHOTS)])
    lines += table(["method", "iterations (mean)", "5-way 1-shot", "5-way 5-shot"], rows)
    verdicts = []
    for reference in (BASELINE, NEAREST):
        gaps = paired_gaps(accuracy, [a for a in methods if a != BASELINE], reference, headline)
        name = "joint training" if reference == BASELINE else reference
        lines += ["", f"## Meta-learning against {name}, paired by split seed", ""]
        lines += table(["method", "1-shot: difference (points)", "5-shot: difference (points)"],
                       [[a, *(f"{gaps[a][k].mean:+.1f} ± {gaps[a][k].ci95:.1f}" for k in SHOTS)]
                        for a in gaps])
        verdicts.append(verdict(gaps, reference, name, accuracy, headline))
    lines += ["", "Does meta-learning beat joint training on faces? " + " ".join(verdicts), ""]
    lines += ["## Every test step count (mean over split seeds, %)", ""]
    lines += table(["method", "K", *(f"{s} steps" for s in steps)],
                   [[algorithm, shots, *(f"{100 * sum(accuracy[algorithm, shots, s].values()) / len(args.seeds):.1f}"
                                         for s in steps)]
                    for algorithm in methods for shots in SHOTS])
    write_results(RESULTS / "faces", lines, {"runs": runs, "nearest_neighbour": neighbour,
                                             "command": command("faces.py")}, indent=1)


def paired_gaps(accuracy, methods, reference, steps) -> dict[str, dict[int, Difference]]:
    """Per method and K: (method − reference) in points, paired by split seed (both are tested
    on the same tasks of the same people), with its 95% interval over split seeds."""
    def points(key):
        return {seed: 100 * value for seed, value in accuracy[key].items()}

    return {a: {k: paired_by_seed(points((a, k, steps)), points((reference, k, steps)))
                for k in SHOTS} for a in methods}


def verdict(gaps, reference: str, name: str, accuracy, steps) -> str:
    """One sentence per K, computed from the paired gaps to ``reference`` (called ``name``)."""
    sentences = []
    for shots in SHOTS:
        above = sorted(a for a, g in gaps.items() if g[shots].resolved and g[shots].mean > 0)
        below = sorted(a for a, g in gaps.items() if g[shots].resolved and g[shots].mean < 0)
        best = max(gaps, key=lambda a: gaps[a][shots].mean)
        gap = gaps[best][shots]
        values = accuracy[reference, shots, steps].values()
        level = 100 * sum(values) / len(values)
        found = (f"{len(above)} of {len(gaps)} methods beat {name} ({', '.join(above)}: "
                 "paired interval above zero)" if above else
                 f"no method resolves an advantage over {name}")
        sentences.append(
            f"**{shots}-shot against {name} ({level:.1f}%):** {found}; the largest mean "
            f"gain is {best}'s, {gap.mean:+.1f} ± {gap.ci95:.1f} points"
            + (f"; {', '.join(below)} {'is' if len(below) == 1 else 'are'} below it (paired "
               "interval below zero)" if below else "") + ".")
    return " ".join(sentences)


if __name__ == "__main__":
    main()
