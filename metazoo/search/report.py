"""A study's report, ``<study>/report/index.{md,html}``: the search's history, each option's
importance (Optuna's), the best settings beside the defaults (or the preset), the final test scores, and one
sentence, computed from the numbers, on whether tuning changed the method's score."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from metazoo.analysis.report import (
    bar_figure,
    bullets,
    draw_figures,
    heading,
    line_figure,
    paragraph,
    table,
    title,
    to_html,
    to_markdown,
)
from metazoo.engine.config import TrainConfig
from metazoo.fileio import atomic_write_data
from metazoo.search.space import Space, describe
from metazoo.search.study import Search, shown_url, spent_seconds, trials_of, used_seconds

REPORT = "report"


def write_report(study: optuna.Study, base: TrainConfig, space: Space, search: Search,
                 summary: dict[str, Any]) -> Path:
    """Write the report of ``study`` into ``<out>/report``; returns the Markdown file."""
    folder = search.out / REPORT
    folder.mkdir(exist_ok=True)
    counts = {state.name.lower(): sum(not t.user_attrs.get("surplus")
                                      for t in trials_of(study, state))
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    processes = used_seconds(study)
    used = ("" if processes is None else f", and its processes {processes:.1f} CPU seconds in "
            "all (with validation and building)")
    blocks = [
        title(f"metazoo tune: {base.algorithm} on {base.task}"),
        paragraph(f"Study {study.study_name!r} in {shown_url(search.url)}, TPE sampler seeded "
                  f"{study.user_attrs.get('search_seed', search.search_seed)} (its first "
                  f"{search.startup_trials} trials drawn at random), median pruner "
                  f"on the validation curve (a point every {search.budget.val_every} "
                  f"iterations). Each trial trained for {search.budget.seconds:g} "
                  f"{search.budget.clock} seconds; the search's meta-training used "
                  f"{spent_seconds(study):.1f} {search.budget.clock} seconds{used}, over "
                  f"{counts['complete']} complete and {counts['pruned']} pruned trials "
                  f"({counts['fail']} failed, not counted). Trials were scored on validation "
                  f"tasks (seed {summary['validation_seed']}), never on the test split."),
    ]
    blocks += _history(study, summary["direction"])
    blocks += _importances(study)
    short, baseline = _baseline(summary)
    blocks += [heading(f"Best settings against the {baseline}"),
               table(["option", "best", short, "range", "why"],
                     [[entry["name"], _value(summary["best"].get(entry["name"], _UNUSED)),
                       _value(_default(base, entry["name"])), entry["range"]
                       + (f" when {entry['when']}" if entry["when"] else ""), entry["why"]]
                      for entry in _unique(describe(space))])]
    blocks += _final(summary)
    blocks = draw_figures(folder, blocks)
    (folder / "index.md").write_text(to_markdown(blocks) + "\n")
    atomic_write_data(folder / "index.html",
                      to_html(blocks, f"tune {base.algorithm} on {base.task}").encode())
    return folder / "index.md"


def _history(study: optuna.Study, direction: str) -> list:
    complete = sorted(trials_of(study, TrialState.COMPLETE), key=lambda t: t.number)
    if not complete:
        return []
    best, so_far = [], math.inf if direction == "minimize" else -math.inf
    for trial in complete:
        so_far = min(so_far, trial.value) if direction == "minimize" else max(so_far, trial.value)
        best.append(so_far)
    return [heading("Optimization history"), line_figure(
        "history.png", "validation score of each complete trial, and the best so far",
        [t.number for t in complete],
        {"trial": [t.value for t in complete], "best so far": best}, xlabel="trial",
        ylabel="validation accuracy" if direction == "maximize" else "validation loss")]


def _importances(study: optuna.Study) -> list:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as error:  # too few complete trials to fit the forest
        return [heading("Importance of each option"),
                paragraph(f"Not computed: {' '.join(str(error).split())[:200]}")]
    if not importances:
        return []
    return [heading("Importance of each option"), bar_figure(
        "importances.png", "each option's share of the variance of the validation score "
        "(Optuna's fANOVA)", list(importances), {"importance": list(importances.values())},
        ylabel="importance", title="importance of each option (Optuna's evaluator, fANOVA)")]


def _final(summary: dict[str, Any]) -> list:
    final = summary.get("final")
    short, baseline = _baseline(summary)
    if final is None:
        return [heading("Final runs"), paragraph(
            "No final runs (--final-budget 0): the test score of the best settings is not "
            f"known yet; retrain them with metazoo train --config {summary['best_json']}.")]
    metric, tuned = final["metric"], final["tuned"]
    trained = (f"trained for {final['final_seconds']:g} {final['clock']} seconds on the "
               f"train split, seeds {final['seeds']}, scored at the method's own test steps")
    if "defaults" not in final:
        return [heading("Final runs on the test split"),
                paragraph(f"The best settings, {trained}; the {short} "
                          f"{'was' if short == 'preset' else 'were'} "
                          "not retrained (--no-final-defaults)."),
                table(["settings", "test steps", f"test {metric} (± 95% CI)"],
                      [["tuned", str(tuned["steps"]),
                        f"{tuned['mean']:.4g} ± {tuned['ci95']:.2g}"]])]
    defaults, difference = final["defaults"], final["difference"]
    rows = [[label, str(values["steps"]), f"{values['mean']:.4g} ± {values['ci95']:.2g}"]
            for label, values in (("tuned", tuned), (short, defaults))]
    better = (difference["mean"] > 0) == (metric == "accuracy")
    changed = math.isfinite(difference["ci95"]) and abs(difference["mean"]) > difference["ci95"]
    if final.get("defaults_are_tuned"):
        itself = f"the {baseline} itself" if short == "preset" else "the defaults themselves"
        sentence = (f"The search's best settings are {itself} (trained once): tuning did not "
                    f"change the test {metric}")
    elif changed:
        sentence = (f"Tuning {'improved' if better else 'worsened'} the test {metric} by "
                    f"{abs(difference['mean']):.4g} ± {difference['ci95']:.2g} (95% CI)")
    else:
        sentence = (f"Tuning did not change the test {metric} detectably: the difference, "
                    f"{difference['mean']:.4g} ± {difference['ci95']:.2g} (95% CI), contains 0")
    return [heading("Final runs on the test split"),
            paragraph(f"Each {trained} on the same test tasks (so the difference is paired)."),
            table(["settings", "test steps", f"test {metric} (± 95% CI)"], rows),
            bullets([sentence + "."])]


def _baseline(summary: dict[str, Any]) -> tuple[str, str]:
    """What the study's base configuration is called: ("preset", "preset NAME") or
    ("defaults", "defaults")."""
    preset = summary.get("preset")
    return ("preset", f"preset {preset}") if preset else ("defaults", "defaults")


def _unique(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for entry in entries:
        seen.setdefault(entry["name"], entry)
    return list(seen.values())


def _default(base: TrainConfig, name: str) -> Any:
    return base.algorithm_options.get(name, getattr(base, name, None))


#: An option the best trial did not sample (its condition failed there).
_UNUSED = object()


def _value(value: Any) -> str:
    if value is _UNUSED:
        return "(not used)"
    return f"{value:.4g}" if isinstance(value, float) else json.dumps(value)


__all__ = ["REPORT", "write_report"]
