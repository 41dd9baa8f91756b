"""Air quality: does meta-learning help on a real few-shot regression problem?

Every registered algorithm, meta-trained on Beijing station-months (``--task air-quality``,
see ``metazoo/tasks/air_quality.py``) for the same CPU-time budget, against what a
practitioner would do instead, all scored on the same held-out tasks:

* **joint + fine-tuning**: the registered ``joint`` algorithm (one network trained on every
  task's hours), then SGD on the task's K support hours;
* **from scratch**: the same network from a random initialisation, trained by SGD on the
  support hours alone;
* **ridge**: a per-task linear regression of PM2.5 on the 13 inputs, in closed form on the
  support hours (intercept unpenalised).

Protocol, for each split (``years``: later years held out; ``stations``: three stations and
the later years held out) and each K (support hours; 10 query hours per task while training):

1. α (the inner step size of every meta-learner) is chosen once: MAML is meta-trained at
   K = 10 on the ``years`` split for ``--pilot-budget`` CPU seconds per candidate, and the
   candidate with the lowest RMSE on the *validation* year wins.
2. Each algorithm is meta-trained with ``metazoo``'s ``train`` for ``--budget`` CPU seconds
   (one thread), ``--inner-steps`` inner steps of size α, meta-batch 25, Adam 1e-3.
3. Test-time settings are chosen on validation tasks (the val year of the training
   stations: 600 tasks, their own seed), never on the test tasks: for every method the number
   of SGD steps; for joint and scratch also the step size (they were not trained for one);
   for ridge λ. Meta-learners adapt as their method prescribes (Meta-SGD with its learned
   step sizes, ANIL its head only, iMAML with its proximal term).
4. Scored on 600 test tasks (``eval_seed`` 12345, the same tasks for every method), 50 query
   hours each: per-task query RMSE in µg/m³. The 95% intervals are cluster-robust over
   station-months (600 tasks are drawn from only 144, or 36, station-months, and tasks of one
   month are not independent), with Student's t at (months − 1) degrees of freedom. A
   difference between two methods is the same estimator on the per-task differences.
5. The answer compares the best meta-learner with the best baseline, each family's best
   chosen on the validation tasks, not on the test tasks.

    PYTHONPATH=. OMP_NUM_THREADS=1 nohup python benchmarks/air_quality.py \\
        --data-dir ../shared/data/beijing_air_quality > runs/air-quality.log 2>&1 &

Runs go to ``runs/air-quality/<split>-k<K>/<algorithm>``, trained by the library's grid runner
(a finished run is reused, an interrupted one resumed, one made with other options refused);
the report to ``results/air-quality.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import torch
from common import ROOT, table

from metazoo.algorithms import ALGORITHMS, get_algorithm
from metazoo.analysis.grid import run_grid
from metazoo.engine import TrainConfig, rebuild_run
from metazoo.engine.evaluate import per_task_metrics
from metazoo.models import initial_params, make_model
from metazoo.stats import Difference, mean_ci, t_quantile
from metazoo.tasks.air_quality import AirQuality

BASELINE_ALGORITHM = "joint"  # the registered multi-task baseline; every other one meta-learns
PILOT_ALGORITHM = "maml"  # whose pilot runs choose α for every meta-learner
PER_TASK = ("scratch", "ridge")  # baselines that learn from the task's support hours alone
SPLITS = {"years": "held-out years", "stations": "held-out stations"}
STEPS = [0, 1, 2, 5, 10, 20, 50, 100]  # test-time SGD steps tried on validation
SCRATCH_STEPS = [10, 30, 100, 300, 1000]
JOINT_RATES = [0.001, 0.003, 0.01, 0.03, 0.1]  # test-time step sizes tried for joint
SCRATCH_RATES = [0.01, 0.03, 0.1]  # and from scratch (1000 steps each: the costliest part)
RIDGE = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4]  # 1e4: nearly the support mean


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="folder of the PRSA_Data_*.csv files")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "air-quality")
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "air-quality",
                        help="report path without suffix (.md and .json are written)")
    parser.add_argument("--budget", type=float, default=30.0, help="CPU seconds of meta-training")
    parser.add_argument("--pilot-budget", type=float, default=10.0)
    parser.add_argument("--pilot-rates", type=float, nargs="+", default=[0.01, 0.03, 0.1])
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    parser.add_argument("--inner-steps", type=int, default=5)
    parser.add_argument("--query-shots", type=int, default=10)
    parser.add_argument("--eval-query-shots", type=int, default=50)
    parser.add_argument("--eval-tasks", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seed-check", type=int, default=2,
                        help="further training seeds for the baseline and the best "
                             "meta-learner at the middle K of the years split (0: none)")
    return parser.parse_args(argv)


def clustered(values: torch.Tensor, clusters: torch.Tensor) -> tuple[float, float]:
    """Mean of ``values`` and the half-width of its cluster-robust 95% interval.

    Var(mean) = Σ_g (Σ_{i∈g} (v_i − v̄))² / n² (the sandwich estimator with one cluster per
    station-month), scaled by G/(G − 1), with t at G − 1 degrees of freedom.
    """
    values = values.double()
    n = values.numel()
    centred = values - values.mean()
    groups = torch.zeros(int(clusters.max()) + 1, dtype=torch.float64).index_add_(
        0, clusters, centred)
    count = int(torch.unique(clusters).numel())
    variance = (groups**2).sum() / n**2 * count / max(count - 1, 1)
    return values.mean().item(), t_quantile(count - 1) * math.sqrt(variance.item())


def rmse_per_task(loss_values: torch.Tensor, tasks: AirQuality) -> torch.Tensor:
    """Per-task query MSE on the standardised target → RMSE in µg/m³."""
    return loss_values.double().sqrt() * tasks.target_std


def config_for(args, split: str, k_shot: int, algorithm: str, inner_lr: float,
               budget: float) -> TrainConfig:
    return TrainConfig(
        algorithm=algorithm, task="air-quality", data_dir=str(args.data_dir), split=split,
        k_shot=k_shot, query_shots=args.query_shots, inner_steps=args.inner_steps,
        inner_lr=inner_lr, iterations=10**7, time_budget=budget, budget_clock="cpu",
        strategy="vmap", seed=args.seed, log_every=500, checkpoint_every=10**6,
        eval_tasks=args.eval_tasks, eval_query_shots=args.eval_query_shots, eval_steps=[0],
    )


def trained(args, name: str, config: TrainConfig):
    """Train ``config`` into ``args.out / name`` through the library's grid runner (a finished
    run of the same configuration is reused, an interrupted one resumed, one made with other
    options refused); return (setup, (θ, the method's carried state))."""
    run_grid({name: config}, args.out, runs=args.out, jobs=1, evaluate_at_end=True,
             progress=False)
    setup, params, state, _ = rebuild_run(args.out / name)
    return setup, (params, state)


def sample(tasks: AirQuality, count: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    periods, _ = tasks.sample_indices(count, generator)
    batch = tasks.sample(count, torch.Generator().manual_seed(seed))  # the same draws
    return batch, periods


def adapted_rmse(setup, learned, tasks: AirQuality, batch, steps, inner_lr=None):
    """{steps: per-task RMSE [T]} after the method's own test-time adaptation (the library's
    evaluation) from ``learned`` = (θ, carried state), or, given ``inner_lr``, with that step
    size instead of its own."""
    method = setup.method
    if inner_lr is not None:
        method = get_algorithm(method.name).bind(
            dataclasses.replace(method.settings, inner_lr=inner_lr))
    params, state = learned
    report = per_task_metrics(setup.loss, params, batch, steps=steps, method=method,
                              state=state, strategy="vmap")
    return {step: rmse_per_task(values["loss"], tasks) for step, values in report.items()}


def ridge_rmse(batch, tasks: AirQuality, penalty: float) -> torch.Tensor:
    """Per-task ridge regression on the support hours, scored on the query hours ([T])."""
    x, y = batch.support_x.double(), batch.support_y.double()  # [T, K, D], [T, K, 1]
    x_mean, y_mean = x.mean(1, keepdim=True), y.mean(1, keepdim=True)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.transpose(1, 2) @ xc + penalty * torch.eye(x.shape[-1], dtype=torch.float64)
    weights = torch.linalg.solve(gram, xc.transpose(1, 2) @ yc)  # [T, D, 1]
    prediction = (batch.query_x.double() - x_mean) @ weights + y_mean
    return ((prediction - batch.query_y.double()) ** 2).mean((1, 2)).sqrt() * tasks.target_std


def choose(candidates: dict) -> tuple:
    """The key whose validation RMSE (mean over tasks) is lowest."""
    return min(candidates, key=lambda key: candidates[key].mean().item())


def pilot(args) -> tuple[float, dict[str, float]]:
    """α for every meta-learner: MAML at K = 10 on the years split, scored on validation."""
    scores = {}
    for rate in args.pilot_rates:
        config = config_for(args, "years", 10, PILOT_ALGORITHM, rate, args.pilot_budget)
        setup, params = trained(args, f"pilot/{PILOT_ALGORITHM}-lr{rate}", config)
        val = AirQuality(k_shot=10, query_shots=args.eval_query_shots, root=args.data_dir,
                         split="years", part="val")
        batch, _ = sample(val, args.eval_tasks, config.eval_seed + 1)
        scores[str(rate)] = adapted_rmse(setup, params, val, batch, [args.inner_steps])[
            args.inner_steps].mean().item()
        print(f"pilot: α = {rate}: validation RMSE {scores[str(rate)]:.2f} µg/m³", flush=True)
    best = min(scores, key=scores.get)
    return float(best), scores


class Held:
    """The validation and test tasks of one (split, K), the same for every method."""

    def __init__(self, args, split: str, k_shot: int, inner_lr: float) -> None:
        config = config_for(args, split, k_shot, BASELINE_ALGORITHM, inner_lr, args.budget)
        self.test = AirQuality(**config.task_options(evaluation=True))  # what train() scores
        self.val = AirQuality(**{**config.task_options(evaluation=True), "part": "val"})
        self.test_batch, self.periods = sample(self.test, args.eval_tasks, config.eval_seed)
        self.val_batch, _ = sample(self.val, args.eval_tasks, config.eval_seed + 1)


def score(setup, params, algorithm: str, held: Held) -> dict:
    """One trained run: its test-time setting chosen on validation, its per-task test RMSE."""
    rates = JOINT_RATES if algorithm == BASELINE_ALGORITHM else [None]
    on_val = {(rate, step): rmse for rate in rates for step, rmse in
              adapted_rmse(setup, params, held.val, held.val_batch, STEPS, rate).items()}
    rate, step = choose(on_val)
    return {"family": "baseline" if algorithm == BASELINE_ALGORITHM else "meta-learning",
            "choice": {"steps": step, "lr": rate}, "val": on_val[(rate, step)].mean().item(),
            "test": adapted_rmse(setup, params, held.test, held.test_batch, [step], rate)[step]}


def one_setting(args, split: str, k_shot: int, inner_lr: float) -> dict:
    """Every method at one (split, K): validation choices and per-task test RMSE."""
    held = Held(args, split, k_shot, inner_lr)
    test_tasks, test_batch, val, val_batch = held.test, held.test_batch, held.val, held.val_batch
    methods: dict[str, dict] = {}
    setups = {}
    for algorithm in sorted(ALGORITHMS):
        config = config_for(args, split, k_shot, algorithm, inner_lr, args.budget)
        setup, params = setups[algorithm] = trained(args, f"{split}-k{k_shot}/{algorithm}",
                                                    config)
        methods[algorithm] = score(setup, params, algorithm, held)
    # From scratch: the same network from a seeded random initialisation, adapted as joint's
    # θ is (plain SGD, no proximal term, no learned step sizes; its meta-parameters are θ).
    setup = setups[BASELINE_ALGORITHM][0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed + 1)
        scratch = initial_params(make_model(setup.config.model_name, test_tasks))
    on_val = {(rate, step): rmse for rate in SCRATCH_RATES for step, rmse in
              adapted_rmse(setup, (scratch, {}), val, val_batch, SCRATCH_STEPS, rate).items()}
    rate, step = choose(on_val)
    methods["scratch"] = {"family": "baseline", "choice": {"steps": step, "lr": rate},
                          "val": on_val[(rate, step)].mean().item(),
                          "test": adapted_rmse(setup, (scratch, {}), test_tasks, test_batch,
                                               [step], rate)[step]}
    on_val = {penalty: ridge_rmse(val_batch, val, penalty) for penalty in RIDGE}
    penalty = choose(on_val)
    methods["ridge"] = {"family": "baseline", "choice": {"lambda": penalty},
                        "val": on_val[penalty].mean().item(),
                        "test": ridge_rmse(test_batch, test_tasks, penalty)}
    return {"methods": methods, "periods": held.periods,
            "months": len(test_tasks.periods), "target_std": test_tasks.target_std}


def summarise(result: dict) -> dict:
    """Test RMSE ± CI per method and the best meta-learner against the best baseline."""
    periods, methods = result["periods"], result["methods"]
    rows = {}
    for name, method in methods.items():
        mean, ci = clustered(method["test"], periods)
        rows[name] = {"family": method["family"], "choice": method["choice"],
                      "val_rmse": method["val"], "rmse": mean, "ci95": ci}
    best = {family: min((n for n in rows if rows[n]["family"] == family),
                        key=lambda n: rows[n]["val_rmse"])
            for family in ("meta-learning", "baseline")}
    difference = methods[best["baseline"]]["test"] - methods[best["meta-learning"]]["test"]
    mean, ci = clustered(difference, periods)
    return {"rows": rows, "best": best, "advantage": {"mean": mean, "ci95": ci},
            "months": result["months"], "tasks": int(periods.numel())}


def seed_check(args, inner_lr: float, summaries: dict) -> dict:
    """Training-seed variation of the headline difference, at the middle K of the years split.

    The main table has one training run per method, so its intervals say nothing about how
    much the difference between two methods moves with the training seed. Here the baseline
    algorithm and the meta-learner chosen on validation are retrained with further seeds and
    scored exactly as above; the spread of their difference over seeds is the answer.
    """
    split, k_shot = "years", args.k[len(args.k) // 2]
    meta = summaries[split][k_shot]["best"]["meta-learning"]
    held = Held(args, split, k_shot, inner_lr)
    differences, rows = [], []
    for seed in range(args.seed, args.seed + 1 + args.seed_check):
        scores = {}
        for algorithm in (BASELINE_ALGORITHM, meta):
            config = dataclasses.replace(
                config_for(args, split, k_shot, algorithm, inner_lr, args.budget), seed=seed)
            name = (f"{split}-k{k_shot}/{algorithm}" if seed == args.seed
                    else f"seeds/{split}-k{k_shot}-{algorithm}-seed{seed}")
            setup, params = trained(args, name, config)
            scores[algorithm] = score(setup, params, algorithm, held)["test"]
        difference = (scores[BASELINE_ALGORITHM] - scores[meta]).mean().item()
        differences.append(difference)
        rows.append({"seed": seed, **{name: values.mean().item() for name, values in
                                      scores.items()}, "difference": difference})
    mean, ci = mean_ci(differences)
    return {"split": split, "k_shot": k_shot, "meta": meta, "rows": rows,
            "difference": {"mean": mean, "ci95": ci}}


def describe_seeds(check: dict) -> list[str]:
    meta, rows = check["meta"], check["rows"]
    lines = [f"## Training seeds ({SPLITS[check['split']]}, K = {check['k_shot']})", "",
             (f"The tables above hold one training run per method. Retraining {BASELINE_ALGORITHM} "
              f"and {meta} (the meta-learner chosen on validation here) with {len(rows)} seeds, "
              "each scored as above on the same test tasks (mean RMSE, µg/m³):"), "",
             *table(["seed", f"{BASELINE_ALGORITHM} + fine-tuning", meta, "difference"],
                    [[row["seed"], f"{row[BASELINE_ALGORITHM]:.2f}", f"{row[meta]:.2f}",
                      f"{row['difference']:+.2f}"] for row in rows], "rrrr")]
    d = check["difference"]
    lines += ["", (f"Mean difference over seeds: {d['mean']:+.2f} ± {d['ci95']:.2f} µg/m³ (95% "
                   f"t-interval over {len(rows)} seeds); it is {seed_signs(rows)}."), ""]
    return lines


def seed_signs(rows: list[dict]) -> str:
    if all(row["difference"] > 0 for row in rows):
        return "positive (meta-learning better) for every seed"
    if all(row["difference"] < 0 for row in rows):
        return "negative (the baseline better) for every seed"
    return "of either sign, depending on the seed"


def describe_choice(choice: dict) -> str:
    if "lambda" in choice:
        return f"λ = {choice['lambda']:g}"
    lr = "own α" if choice["lr"] is None else f"α = {choice['lr']:g}"
    return f"{choice['steps']} steps, {lr}"


def answer(summaries: dict, ks: list[int]) -> list[str]:
    """Sentences computed from the numbers: does meta-learning help, and up to which K."""
    lines = []
    for split, by_k in summaries.items():
        verdicts, parts = {}, []
        for k in ks:
            s = by_k[k]
            mean, ci = s["advantage"]["mean"], s["advantage"]["ci95"]
            winner = Difference(mean, ci).winner("meta", "baseline", higher_is_better=True)
            verdicts[k] = {"meta": "better", "baseline": "worse", None: "tied"}[winner]
            relative = 100 * mean / s["rows"][s["best"]["baseline"]]["rmse"]
            parts.append(f"K = {k}: {s['best']['meta-learning']} vs {s['best']['baseline']}, "
                         f"{mean:+.2f} ± {ci:.2f} µg/m³, {relative:+.1f}% ({verdicts[k]})")
        helped = [k for k in ks if verdicts[k] == "better"]
        if len(helped) == len(ks):
            verdict = (f"meta-learning helps at every K tried; its advantage does not vanish up "
                       f"to K = {ks[-1]}")
        elif helped and helped == ks[: len(helped)]:
            gone = ks[len(helped)]
            verdict = (f"meta-learning helps up to K = {helped[-1]}, and its advantage vanishes "
                       f"at K = {gone} (the best baseline is then {verdicts[gone]} "
                       f"{'than' if verdicts[gone] != 'tied' else 'with'} it)")
        elif helped:
            verdict = f"meta-learning helps only at K = {', '.join(map(str, helped))}"
        else:
            worse = [k for k in ks if verdicts[k] == "worse"]
            verdict = ("meta-learning does not help at any K tried: the best baseline is "
                       + (f"better at K = {', '.join(map(str, worse))}" if worse else "as good")
                       + (" and as good elsewhere" if worse and len(worse) < len(ks) else ""))
        lines.append(f"**{SPLITS[split].capitalize()}**: {verdict}. Best meta-learner against "
                     "best baseline (each chosen on validation), as the baseline's RMSE minus "
                     "the meta-learner's (positive: meta-learning is better; % of the "
                     "baseline's RMSE), with the 95% interval of the paired difference over "
                     "test tasks: " + "; ".join(parts) + ".")
        # What sharing across tasks buys at all: the per-task baselines learn from one task.
        per_task = {k: min(by_k[k]["rows"][n]["rmse"] for n in PER_TASK) for k in ks}
        meta = {k: by_k[k]["rows"][by_k[k]["best"]["meta-learning"]]["rmse"] for k in ks}
        lines.append("Learning from other station-months is what matters most: the best "
                     "per-task baseline (ridge or from scratch) has "
                     + ", ".join(f"{per_task[k]:.1f}" for k in ks) + " µg/m³ at K = "
                     + ", ".join(map(str, ks)) + ", against "
                     + ", ".join(f"{meta[k]:.1f}" for k in ks) + " for the best meta-learner.")
    return lines


def report(args, inner_lr: float, pilot_scores: dict, summaries: dict, seconds: float,
           training: dict, seeds: dict | None) -> str:
    command = " ".join(["PYTHONPATH=. OMP_NUM_THREADS=1 nohup python benchmarks/air_quality.py",
                        *sys.argv[1:],
                        "> runs/air-quality.log 2>&1 &"])
    lines = [
        "# Air quality: few-shot PM2.5 regression on Beijing station-months", "",
        "```bash", command, "```", "",
        (f"Generated by `benchmarks/air_quality.py`, one thread: {training['runs']} "
         f"meta-training runs took {training['seconds'] / 60:.1f} CPU minutes in all "
         f"({args.budget:g} CPU s each, {args.pilot_budget:g} for the α pilot); the last "
         f"invocation (evaluating every method and baseline, and training the runs not yet "
         f"there) took {seconds / 60:.1f} CPU minutes. {args.inner_steps} "
         f"inner steps while training, α = {inner_lr:g} chosen on the validation year from "
         + ", ".join(f"{r} ({v:.2f} µg/m³)" for r, v in pilot_scores.items())
         + f". A task: one station-month, K support hours, {args.eval_query_shots} query "
         "hours; inputs CO, NO2, SO2, O3, weather, wind direction and hour (not PM10; see "
         "`metazoo/tasks/air_quality.py`)."), "",
        (f"Cells: query RMSE in µg/m³ on the same {args.eval_tasks} test tasks for every "
         "method, ± the 95% interval, cluster-robust over station-months. In brackets: the "
         "test-time setting chosen on validation tasks (test steps, and for the baselines step "
         "size or ridge λ). Lower is better."), "",
    ]
    for split, by_k in summaries.items():
        first = by_k[args.k[0]]
        lines += [f"## {SPLITS[split].capitalize()} ({first['months']} test station-months)", ""]
        rows = []
        for name in first["rows"]:
            cells = []
            for k in args.k:
                row = by_k[k]["rows"][name]
                cells.append(f"{row['rmse']:.2f} ± {row['ci95']:.2f} "
                             f"({describe_choice(row['choice'])})")
            label = {BASELINE_ALGORITHM: f"{BASELINE_ALGORITHM} + fine-tuning",
                     "scratch": "from scratch",
                     "ridge": "ridge (per task)"}.get(name, name)
            rows.append([label, first["rows"][name]["family"], *cells])
        lines += table(["method", "family", *(f"K = {k}" for k in args.k)], rows,
                       "ll" + "r" * len(args.k)) + [""]
    if seeds is not None:
        lines += describe_seeds(seeds)
    lines += ["## Answer", "", *answer(summaries, args.k), ""]
    if seeds is not None:
        d = seeds["difference"]
        resolved = Difference(d["mean"], d["ci95"]).resolved
        lines += [(f"**Training seeds** ({SPLITS[seeds['split']]}, K = {seeds['k_shot']}): the "
                   f"difference between {BASELINE_ALGORITHM} and {seeds['meta']} is "
                   f"{seed_signs(seeds['rows'])}, {d['mean']:+.2f} ± {d['ci95']:.2f} µg/m³ over "
                   f"{len(seeds['rows'])} seeds: "
                   + ("its 95% interval over seeds excludes 0." if resolved else
                      "its 95% interval over seeds includes 0, so at this budget the advantage "
                      "is not resolved from run-to-run variation; the per-cell verdicts above "
                      "account for the sampling of test tasks only.")), ""]
    lines += [
              ("Caveats: one training seed per method in the main tables (their intervals cover "
               "the sampling of test tasks, not of training runs; the seed check covers one "
               "cell); each method had the same CPU budget, so a slower "
               "method took fewer meta-iterations; the stations split's validation tasks are "
               "the training stations' validation year, not held-out stations."), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    began = time.process_time()
    inner_lr, pilot_scores = pilot(args)
    summaries: dict[str, dict[int, dict]] = {}
    for split in args.splits:
        summaries[split] = {}
        for k in args.k:
            print(f"{split}, K = {k}", flush=True)
            summaries[split][k] = summarise(one_setting(args, split, k, inner_lr))
    seeds = None
    if args.seed_check and "years" in summaries:
        print("training seeds", flush=True)
        seeds = seed_check(args, inner_lr, summaries)
    seconds = time.process_time() - began
    # Training CPU time as each run recorded it (runs are reused when this script is rerun).
    stored = [json.loads(path.read_text()) for path in sorted(args.out.rglob("results.json"))]
    training = {"runs": len(stored), "seconds": sum(run["train_seconds"] for run in stored)}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.with_suffix(".md").write_text(report(args, inner_lr, pilot_scores, summaries,
                                                      seconds, training, seeds))
    args.results.with_suffix(".json").write_text(json.dumps({
        "inner_lr": inner_lr, "pilot": pilot_scores, "evaluation_cpu_seconds": seconds,
        "training": training, "seeds": seeds,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": {split: {str(k): s for k, s in by_k.items()} for split, by_k in summaries.items()},
    }, indent=2) + "\n")
    print(args.results.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
