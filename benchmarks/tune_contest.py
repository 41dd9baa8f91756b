"""A contest of tuned methods, from their finished ``metazoo tune`` study folders: each method's
search cost, its test score tuned and at its defaults (or preset), the best settings, the
ranking before and after tuning, and paired verdicts between methods.

The studies must share the task, the final budget and the final seeds, so that their final runs
are scored on the same test tasks (``eval_seed``) and pair task by task (one seed) or seed by
seed (several).

    python benchmarks/tune_contest.py runs/tune-sinusoid/{maml,fomaml,reptile} \\
        --contests maml:fomaml imaml:reptile --out results/tune-sinusoid

writes ``OUT.md`` and ``OUT.json`` (with ``--percent``, accuracies in percent).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import optuna
import torch
from common import command, table, write_results

from metazoo.analysis.grid import PER_TASK, RUNS
from metazoo.search.final import FINAL, FINAL_JSON
from metazoo.search.study import BEST, STUDY_JSON, spent_seconds, trials_of, used_seconds
from metazoo.stats import Difference, Estimate, mean_ci

#: What the test tasks are: the same for every study of a contest (training shots may differ,
#: as Reptile trains on more than it is tested with).
PROBLEM = ("task", "split", "split_seed", "n_way", "eval_k_shot", "eval_query_shots", "eval_seed")


def read_study(folder: Path) -> dict:
    """One finished study: its identity, search cost, best settings and final scores."""
    identity = json.loads((folder / STUDY_JSON).read_text())
    best = json.loads((folder / BEST).read_text())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=identity["study"], storage=identity["storage"])
    states = optuna.trial.TrialState
    final = None
    if (folder / FINAL_JSON).is_file():
        final = json.loads((folder / FINAL_JSON).read_text())
    elif not (study.best_trial.number == 0
              and study.trials[0].user_attrs.get("start") == "defaults"):
        raise SystemExit(f"{folder} has no final runs ({FINAL_JSON}): run its metazoo tune "
                         "command again with --final-budget")
    # else: its best settings are its baseline (the first trial won), whose score at the
    # final budget --untuned-from gives: the final run would train the same settings again.
    records = [json.loads(line) for line in
               (folder / FINAL / "runs.jsonl").read_text().splitlines() if line.strip()
               ] if final is not None else []
    per_task, trained = {}, {}
    for label in ("tuned", "defaults"):
        if final is None or label not in final:  # the untuned score comes from elsewhere
            continue
        runs = final[label].get("runs") or [f"{label}-seed{seed}" for seed in final["seeds"]]
        steps = final[label]["steps"]
        per_task[label] = {seed: torch.load(
            folder / FINAL / RUNS / run / PER_TASK, weights_only=True
        )[steps][final["metric"]].double() for seed, run in zip(final["seeds"], runs)}
        trained[label] = [(r["iterations"], r["train_seconds"]) for r in records
                          if r["name"] in runs]
    return {"folder": folder, "name": folder.name, "algorithm": identity["algorithm"],
            "final": final, "best": best, "trained": trained,
            "searched": dict(study.best_trial.params), "per_task": per_task,
            "search_seconds": spent_seconds(study), "search_used_seconds": used_seconds(study),
            "search_seed": int(study.user_attrs.get("search_seed", 0)),
            "complete": len(trials_of(study, states.COMPLETE)),
            "pruned": len(trials_of(study, states.PRUNED))}


def untuned_from(path: Path, study: dict, final_of_contest: dict) -> dict:
    """The untuned score of ``study``'s method from a protocols results file
    (``benchmarks/omniglot_protocols.py``'s JSON): the entry named as the method, checked to
    have the same test tasks, final budget and clock; its accuracy at its own test steps.

    Returns:
        ``{"estimate": Estimate, "steps", "iterations", "train_seconds"}``.
    """
    from metazoo.engine.config import TrainConfig
    from metazoo.engine.scoring import scored_steps

    entries = {entry["name"]: entry for entry in json.loads(path.read_text())}
    final = final_of_contest  # every study's final runs share it (checked in main)
    entry = entries.get(study["algorithm"])
    if entry is None:
        raise SystemExit(f"{path} has no run named {study['algorithm']!r} (it has "
                         f"{', '.join(entries)})")
    results = entry["results"]
    config = results["config"]
    for key in (*PROBLEM, "eval_tasks", "eval_transductive"):
        if config[key] != study["best"][key]:
            raise SystemExit(f"{path}: {entry['name']}'s {key} is {config[key]!r}, the study's "
                             f"{study['best'][key]!r}: not the same test tasks")
    if (config["time_budget"], config["budget_clock"]) != (final["final_seconds"], final["clock"]):
        raise SystemExit(f"{path}: {entry['name']} trained {config['time_budget']:g} "
                         f"{config['budget_clock']} s, the final runs {final['final_seconds']:g} "
                         f"{final['clock']} s: not equal compute")
    steps = scored_steps(TrainConfig.from_dict(config))
    score = results["evaluation"][str(steps)][final["metric"]]
    return {"estimate": Estimate(score["mean"], score["ci95"]), "steps": steps,
            "iterations": results["iterations"], "train_seconds": results["train_seconds"]}


def paired(first: dict[int, torch.Tensor], second: dict[int, torch.Tensor]) -> Difference:
    """first − second: over the test tasks with one seed (the same tasks for both), over the
    seeds' means with several (the same task stream and test tasks per seed)."""
    if len(first) == 1:
        (a,), (b,) = first.values(), second.values()
        differences = (a - b).tolist()
    else:
        differences = [(first[seed].mean() - second[seed].mean()).item() for seed in first]
    diverged = not all(math.isfinite(value) for value in differences)
    return Difference(*mean_ci(differences), diverged=diverged)


def score(values: dict[int, torch.Tensor]) -> Estimate:
    """Mean ± 95% CI: over tasks with one seed, over the seeds' means with several."""
    if len(values) == 1:
        return Estimate.of(next(iter(values.values())))
    return Estimate.of(torch.tensor([v.mean().item() for v in values.values()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="+", type=Path, help="finished study folders")
    parser.add_argument("--contests", nargs="*", default=[], metavar="A:B",
                        help="pairs of methods to judge, paired, with the tuned settings")
    parser.add_argument("--out", type=Path, required=True, help="results stem (OUT.md, OUT.json)")
    parser.add_argument("--percent", action="store_true", help="accuracies in percent")
    parser.add_argument("--label", default="defaults", help="what the untuned runs are called "
                        "(e.g. preset)")
    parser.add_argument("--untuned-from", type=Path, default=None, metavar="JSON",
                        help="for studies tuned with --no-final-defaults: the untuned scores, "
                             "from benchmarks/omniglot_protocols.py's JSON (same test tasks and "
                             "budget; the difference is then unpaired)")
    args = parser.parse_args()
    studies = {study["name"]: study for study in map(read_study, args.studies)}
    finished = [study for study in studies.values() if study["final"] is not None]
    if not finished:
        parser.error("no study has final runs: give at least one run with --final-budget")
    first = finished[0]
    for name, study in studies.items():
        for key in PROBLEM:
            if study["best"][key] != first["best"][key]:
                parser.error(f"{name}'s study has {key} {study['best'][key]!r}, "
                             f"{first['algorithm']}'s {first['best'][key]!r}: not one contest")
        for key in ("final_seconds", "clock", "seeds"):
            if study["final"] is not None and study["final"][key] != first["final"][key]:
                parser.error(f"{name}'s final runs have {key} {study['final'][key]!r}, "
                             f"{first['algorithm']}'s {first['final'][key]!r}: not equal compute")
    metric = first["final"]["metric"]
    accuracy = metric == "accuracy"
    scale = 100.0 if accuracy and args.percent else 1.0
    higher = accuracy
    unit = " (%)" if scale == 100 else ""

    def shown(estimate) -> str:
        return f"{estimate.mean * scale:.4g} ± {estimate.ci95 * scale:.2g}"

    rows, data = [], {}
    unpaired = []
    tuned_of: dict[str, Estimate] = {}
    for name, study in studies.items():
        elsewhere = None
        if study["final"] is None or "defaults" not in study["per_task"]:
            if args.untuned_from is None:
                parser.error(f"{name}'s study has no final run of its {args.label} "
                             "(--no-final-defaults, or its first trial won): give --untuned-from")
            elsewhere = untuned_from(args.untuned_from, study, first["final"])
            untuned_runs = [(elsewhere["iterations"], elsewhere["train_seconds"])]
            untuned = elsewhere["estimate"]
            unpaired.append(name)
        if study["final"] is None:  # its best is its baseline: the one score is both
            tuned, gain, steps = untuned, Difference(0.0, 0.0), elsewhere["steps"]
            study["trained"]["tuned"] = untuned_runs
        else:
            tuned = score(study["per_task"]["tuned"])
            steps = study["final"]["tuned"]["steps"]
            if elsewhere is None:
                untuned = score(study["per_task"]["defaults"])
                gain = paired(study["per_task"]["tuned"], study["per_task"]["defaults"])
                untuned_runs = study["trained"]["defaults"]
            else:  # independent runs: the half-widths add in quadrature
                gain = Difference(tuned.mean - untuned.mean, math.hypot(tuned.ci95, untuned.ci95))
        tuned_of[name] = tuned
        verdict = (f"the {args.label} itself" if study["final"] is None else
                   gain.winner("tuned", args.label, higher) or "no difference resolved")
        runs = " / ".join(
            f"{sum(i for i, _ in trained) / len(trained):.0f} it, "
            f"{sum(t for _, t in trained) / len(trained):.0f} s"
            for trained in (untuned_runs, study["trained"]["tuned"]))
        used = study["search_used_seconds"]
        rows.append([name, f"{study['search_seconds']:.0f} / "
                     + ("not recorded" if used is None else f"{used:.0f}"),
                     f"{study['complete']} + {study['pruned']}",
                     steps, shown(untuned), shown(tuned),
                     ("0 (best = " + args.label + ")" if study["final"] is None else
                      shown(gain) + (" (unpaired)" if name in unpaired else "")), verdict, runs,
                     ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in study["searched"].items())])
        data[name] = {"algorithm": study["algorithm"],
                      args.label: untuned.mean * scale, f"{args.label}_ci": untuned.ci95 * scale,
                      "tuned": tuned.mean * scale, "tuned_ci": tuned.ci95 * scale,
                      "difference": gain.mean * scale, "difference_ci": gain.ci95 * scale,
                      "difference_paired": name not in unpaired,
                      "search_cpu_seconds": study["search_seconds"],
                      "search_process_cpu_seconds": study["search_used_seconds"],
                      "search_seed": study["search_seed"],
                      "trials": {"complete": study["complete"], "pruned": study["pruned"]},
                      "best_is_" + args.label: study["final"] is None,
                      "test_steps": steps, "best": study["searched"],
                      "final_runs": {args.label: untuned_runs, "tuned": study["trained"]["tuned"]}}

    def ranking(label: str) -> list[str]:
        key = (lambda name: -data[name][label]) if higher else (lambda name: data[name][label])
        return sorted(data, key=key)

    seeds = first["final"]["seeds"]
    over = "test tasks (one seed)" if len(seeds) == 1 else f"the {len(seeds)} seeds' means"
    protocol = (
             f"Each method was searched by `metazoo tune` (its study folder below) and its best "
             f"settings and its {args.label} were each retrained for "
             f"{first['final']['final_seconds']:g} {first['final']['clock']} seconds on seeds "
             f"{', '.join(map(str, seeds))}, then scored on the same "
             f"{first['best']['eval_tasks']} test tasks (eval_seed {first['best']['eval_seed']}), "
             f"test {metric}{unit} after each method's own test steps; ± is a 95% t-interval over "
             f"{over}, and differences are paired"
             + (f" (except {', '.join(unpaired)}: its {args.label} score is from "
                f"`{args.untuned_from}`, an earlier run of the same protocol, so its difference "
                "is unpaired, the half-widths added in quadrature)" if unpaired else "") + ".")
    protocol += (" Search cost: the meta-training seconds the trials were given (equal for "
                 "every method), and the CPU seconds their processes used in all, with "
                 "validation and building (which differ: a method that runs more iterations "
                 "per second reaches more validation points).")
    ranked = (f"Ranking ({'higher' if higher else 'lower'} is better), {args.label}: "
              f"{' > '.join(ranking(args.label))}; tuned: {' > '.join(ranking('tuned'))}.")
    lines = [f"# Tuned against {args.label}: {first['best']['task']}", "", "```bash",
             command("tune_contest.py"), "```", "", protocol, "",
             *table(["method", "search: training / all CPU s", "trials (complete + pruned)",
                     "test steps",
                     args.label, "tuned", f"tuned − {args.label}", "verdict",
                     f"final runs ({args.label} / tuned): iterations, CPU s", "best settings"],
                    rows, align="lrrrrrrlrl"), "", ranked, ""]
    contests = {}
    for contest in args.contests:
        a, _, b = contest.partition(":")
        if a not in studies or b not in studies:
            parser.error(f"--contests {contest}: both must be among the studies")
        both = "tuned" in studies[a]["per_task"] and "tuned" in studies[b]["per_task"]
        if both:
            difference = paired(studies[a]["per_task"]["tuned"], studies[b]["per_task"]["tuned"])
        else:  # one score is from another run: independent, the half-widths in quadrature
            ta, tb = tuned_of[a], tuned_of[b]
            difference = Difference(ta.mean - tb.mean, math.hypot(ta.ci95, tb.ci95))
        winner = difference.winner(a, b, higher)
        lines.append(f"- **{a} or {b}?** Tuned, {a} − {b} = {shown(difference)}"
                     f"{'' if both else ' (unpaired)'}: "
                     + (f"{winner} better." if winner else "no difference resolved."))
        contests[f"{a}-{b}"] = {"difference": difference.mean * scale,
                                "ci95": difference.ci95 * scale, "winner": winner,
                                "paired": both}
    lines += ["", "Study folders: " + ", ".join(f"`{s['folder']}`" for s in studies.values()) + "."]
    write_results(args.out, lines, {
        "final_cpu_seconds": first["final"]["final_seconds"], "clock": first["final"]["clock"],
        "metric": metric + (" (percent)" if scale == 100 else ""), "seeds": seeds,
        "methods": data, "contests": contests})


if __name__ == "__main__":
    main()
