"""The ``metazoo tune`` command line: its options, and the call of :func:`~.tune.tune`.

The run options are ``metazoo train``'s (generated the same way), less ``--time-budget``,
which the trial and final budgets replace; a run option given on the command line is fixed,
so it leaves the space. Nothing heavy is imported until the command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

#: Destinations of tune's own options (the rest are run options, as ``metazoo train``'s).
_OWN = "tune_"
#: Validation curve of the trials when ``--val-every`` is not given.
DEFAULT_VAL_EVERY = 100


def add_tune_parser(subparsers) -> None:
    """Add ``metazoo tune`` to the ``metazoo`` parser."""
    from metazoo.algorithms import ALGORITHMS
    from metazoo.cli.flags import add_field, algorithm_flags, field_default, path_argument
    from metazoo.engine.config import TrainConfig

    parser = subparsers.add_parser(
        "tune", help="search a method's settings with Optuna, on validation tasks",
        description="Search one method's space on one task family: every trial is a run in "
                    "OUT/trials/<number>, trained for --trial-budget seconds and scored on "
                    "validation tasks at the method's own test steps (the test split is never "
                    "read); hopeless trials are pruned on their validation curve. The study "
                    "lives in OUT/study.db or --storage; the same command continues it, on any "
                    "number of machines sharing the storage. Writes OUT/best.json (a config "
                    "for 'metazoo train --config'), with --final-budget retrains it beside the "
                    "defaults and scores both on the test split, then OUT/report/index.{md,"
                    "html}. Exit status: 0 done, 2 refused, 3 no trial completed, 130/143 "
                    "stopped by SIGINT/SIGTERM (the same command resumes).")
    own = parser.add_argument_group("search options")
    own.add_argument("--trials", dest=_OWN + "trials", type=int, default=0, metavar="N",
                     help="trials to finish (complete or pruned; a failed one is retried, not "
                          "counted); the same for every method of a contest")
    own.add_argument("--trial-budget", dest=_OWN + "trial_budget", type=float, default=0.0,
                     metavar="S", help="seconds of meta-training per trial (--budget-clock)")
    own.add_argument("--budget", dest=_OWN + "budget", type=float, default=0.0, metavar="S",
                     help="total seconds shared by the trials: trials start until it is spent "
                          "(with --trials, whichever ends first; 0: none)")
    own.add_argument("--final-budget", dest=_OWN + "final_budget", type=float, default=0.0,
                     metavar="S", help="retrain the best config and the defaults for this many "
                                       "seconds and score both on the test split (0: no)")
    own.add_argument("--final-seeds", dest=_OWN + "final_seeds", type=int, nargs="+",
                     default=None, metavar="SEED",
                     help="seeds of the final runs (default: --seed)")
    own.add_argument("--no-final-defaults", dest=_OWN + "no_final_defaults", action="store_true",
                     help="retrain only the best config, not the defaults beside it (their "
                          "score at the final budget is known from another run)")
    own.add_argument("--storage", dest=_OWN + "storage", default="", metavar="URL",
                     help="SQLAlchemy URL of the study's storage, e.g. postgresql://user:pw@host"
                          "/db to share it across machines (default: sqlite in --out)")
    own.add_argument("--study", dest=_OWN + "study", default="", metavar="NAME",
                     help="study name in the storage (default: <algorithm>-<task>)")
    own.add_argument("--out", dest=_OWN + "out", type=path_argument, default=None, metavar="DIR",
                     help="study folder (default: runs/tune-<algorithm>-<task>)")
    own.add_argument("--space", dest=_OWN + "space", type=path_argument, default=None, metavar="FILE",
                     help='JSON file narrowing or widening the space: {"lam": {"low": 5, '
                          '"high": 80, "log": true}, "inner_solver": {"choices": ["newton"]}, '
                          '"cg_damping": null}; null drops an option')
    own.add_argument("--search-seed", dest=_OWN + "search_seed", type=int, default=0,
                     metavar="SEED", help="seed of the TPE sampler (default: 0)")
    own.add_argument("--startup-trials", dest=_OWN + "startup_trials", type=int, default=10,
                     metavar="N", help="trials drawn at random before TPE models the ones "
                                       "done (Optuna's n_startup_trials; the first trial, the "
                                       "defaults, counts among them; default: 10)")
    own.add_argument("--jobs", dest=_OWN + "jobs", type=int, default=1, metavar="J",
                     help="trials run side by side in worker processes of this machine "
                          "(default: 1)")
    own.add_argument("--heartbeat", dest=_OWN + "heartbeat", type=int, default=10, metavar="S",
                     help="seconds between a trial's heartbeats; a trial silent for twice as "
                          "long is taken as dead and retried from its checkpoint (default: 10; "
                          "the same for every process of a study)")
    own.add_argument("--no-report", dest=_OWN + "no_report", action="store_true",
                     help="do not write OUT/report")
    own.add_argument("--no-progress", dest=_OWN + "no_progress", action="store_true",
                     help="print nothing per trial")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help="start every trial (and the defaults) from a published protocol")
    parser.add_argument("--config", type=path_argument, default=None,
                        help="JSON file of run options every trial starts from")
    group = parser.add_argument_group(
        "run options (as metazoo train's; one given here is fixed, not searched; "
        f"--budget-clock defaults to cpu, --val-every to {DEFAULT_VAL_EVERY}; trials and "
        "final runs stop at their budgets, and --iterations caps them only when given)")
    for spec in dataclasses.fields(TrainConfig):
        if spec.name not in ("algorithm_options", "time_budget"):
            add_field(group, spec, field_default(spec))
    for dest, (algorithm, field_name, flags) in algorithm_flags().items():
        spec = ALGORITHMS[algorithm].options()[field_name]
        add_field(group, spec, field_default(spec), flags=flags, dest=dest)


def run_tune(args: argparse.Namespace) -> int:
    """Run ``metazoo tune`` with parsed ``args``; returns the exit status."""
    from metazoo.cli.flags import config_from
    from metazoo.engine.merge import ALGORITHM_DEST, algorithm_flags
    from metazoo.search.study import NoTrialComplete, Search
    from metazoo.search.trial import Budget
    from metazoo.search.tune import Final, tune

    given = vars(args)
    own = {key[len(_OWN):]: value for key, value in given.items() if key.startswith(_OWN)}
    run = {key: value for key, value in given.items() if not key.startswith(_OWN)}
    run.setdefault("budget_clock", "cpu")
    run.setdefault("val_every", DEFAULT_VAL_EVERY)
    base = config_from(argparse.Namespace(out=None, **run))
    if "iterations" not in given:
        # Equal compute: trials and final runs stop at their budgets, and a default or a
        # preset's iteration count would stop a fast method first. --iterations caps them.
        from metazoo.analysis.config import UNBOUNDED

        base = dataclasses.replace(base, iterations=UNBOUNDED)
    flags = algorithm_flags()
    fixed = frozenset(key for key in given if not key.startswith((_OWN, ALGORITHM_DEST))) | {
        flags[key][1] for key in given if key.startswith(ALGORITHM_DEST)}
    if base.val_every < 1:
        raise ValueError("val_every must be a positive integer for a search: trials are "
                         "scored and pruned on their validation curve")
    if own["jobs"] < 1:
        raise ValueError(f"--jobs must be a positive integer, got {own['jobs']}")
    out = own["out"] or Path("runs") / f"tune-{base.algorithm}-{base.task}"
    search = Search(out=out, budget=Budget(own["trial_budget"], base.budget_clock,
                                           base.val_every),
                    trials=own["trials"], total_seconds=own["budget"], storage=own["storage"],
                    study=own["study"], search_seed=own["search_seed"],
                    startup_trials=own["startup_trials"],
                    heartbeat=own["heartbeat"], progress=not own["no_progress"])
    final = Final(own["final_budget"], tuple(own["final_seeds"] or (base.seed,)),
                  defaults=not own["no_final_defaults"])
    try:
        summary = tune(base, search, space_file=own["space"], fixed=fixed, final=final,
                       report=not own["no_report"], jobs=own["jobs"],
                       preset=given.get("preset"))
    except NoTrialComplete as error:  # the search ran, but found nothing usable
        print(f"metazoo tune: stopped: {error}", file=sys.stderr)
        return 3
    _print_summary(summary, out)
    return 0


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    best = ", ".join(f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in summary["best"].items())
    print(f"\nbest: trial {summary['best_trial']}, validation {summary['best_value']:.4g} "
          f"({best})\nconfig: {summary['best_json']} (metazoo train --config "
          f"{summary['best_json']})")
    if "final" in summary:
        final = summary["final"]
        scores = ", ".join(f"{label} {final[label]['mean']:.4g} ± {final[label]['ci95']:.2g}"
                           for label in ("tuned", "defaults") if label in final)
        print(f"final runs on the test split ({final['metric']}, seeds {final['seeds']}): "
              f"{scores}")
    if "report" in summary:
        print(f"report: {summary['report']}")


__all__ = ["add_tune_parser", "run_tune"]
