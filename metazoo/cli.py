"""Command line: ``metazoo train``, ``eval``, ``compare``, ``tune``, ``presets`` and ``predict``.

Flags are generated from :class:`~metazoo.engine.config.TrainConfig` and from every
registered algorithm's settings, so a new option or algorithm needs no edit here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metazoo.algorithms import ALGORITHMS
from metazoo.engine.config import TrainConfig
from metazoo.engine.evaluate import format_table
from metazoo.engine.layout import RESULTS_TABLE
from metazoo.engine.stopping import Interrupted
from metazoo.engine.train import NonFiniteError
from metazoo.tasks import TASKS
from metazoo.tasks.omniglot import OmniglotDataError


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


#: argparse destinations of algorithm options: ``algorithm:<name>:<field>``.
_ALGORITHM_DEST = "algorithm:"


def _add_field(parser: argparse.ArgumentParser, spec: dataclasses.Field, default: Any,
               flags: Sequence[str] | None = None, dest: str | None = None) -> None:
    help_text = f"{spec.metadata.get('help', '')} (default: {default!r})"
    flags = list(flags or [_flag(spec.name)])
    common: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text}
    if dest is not None:
        common["dest"] = dest
    if isinstance(default, bool):
        parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
    elif isinstance(default, dict):
        parser.add_argument(*flags, type=_json_object, metavar="JSON", **common)
    elif isinstance(default, list):
        kind = type(default[0]) if default else spec.metadata.get("items", int)
        parser.add_argument(*flags, type=kind, nargs="+", metavar="X", **common)
    else:
        if dest is not None:
            common["metavar"] = spec.name.upper()
        if spec.name == "algorithm":
            common["choices"] = sorted(ALGORITHMS)
        elif spec.name == "task":
            common["choices"] = sorted(TASKS)
        parser.add_argument(*flags, type=type(default), **common)


def _path(text: str) -> Path:
    """A path argument; an empty one would silently mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; name a file or folder")
    return Path(text)


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error}); write e.g. '{{\"cg_steps\": 5}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"cg_steps\": 5}}', got {text[:80]!r}")
    return value


def algorithm_flags() -> dict[str, tuple[str, str, list[str]]]:
    """Every algorithm option's command-line spellings, in one place.

    Each option gets its own namespace, ``--<algorithm>-<field>`` (``--imaml-cg-steps``), so
    two algorithms may share a field name. The flag an option had before namespacing (from its
    field's former name, e.g. ``--imaml-lambda``, or its bare name, ``--cg-steps``) stays as an
    alias where it is unambiguous.

    Returns:
        ``{dest: (algorithm, field, [flags])}``.
    """
    found: dict[str, tuple[str, str, list[str]]] = {}
    old: dict[str, list[str]] = {}
    for name, algorithm in sorted(ALGORITHMS.items()):
        for field_name, spec in algorithm.options().items():
            dest = f"{_ALGORITHM_DEST}{name}:{field_name}"
            found[dest] = (name, field_name, [_flag(f"{name}_{field_name}")])
            old.setdefault(_flag(spec.metadata.get("formerly") or field_name), []).append(dest)
    taken = {_flag(spec.name) for spec in dataclasses.fields(TrainConfig)}
    for alias, dests in old.items():
        if len(dests) == 1 and alias not in taken and alias not in found[dests[0]][2]:
            found[dests[0]][2].append(alias)
    return found


def describe_field(message: str) -> str:
    """Add the flag to an error that starts with an option's field name (``outer_lr must…``).

    Errors below the command line name fields; only here do they meet their flags.
    """
    head = message.split(" ", 1)[0]
    names = {spec.name for spec in dataclasses.fields(TrainConfig)}
    if head in names and _flag(head) not in message:
        return f"{message} ({_flag(head)})"
    spellings = [flags[0] for algorithm, field_name, flags in algorithm_flags().values()
                 if field_name == head]
    if spellings and not any(flag in message for flag in spellings):
        return f"{message} ({' or '.join(spellings)})"
    return message


def _train_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="meta-train θ, then evaluate it on held-out tasks",
        description="Meta-train an initialization on a task family and evaluate it. Writes "
                    "config.json, log.jsonl, checkpoint.pt and results.{json,md} to --out, "
                    "holding its lock. Ctrl-C or SIGTERM saves the current iteration (while "
                    "θ is being scored, it stops at once); resume with --resume. Exit status: "
                    "0 done, 2 refused, 3 no usable result, "
                    "130/143 stopped by SIGINT/SIGTERM.",
    )
    parser.add_argument("--out", type=_path, default=None,
                        help="output folder (default: runs/<task>-<algorithm>-seed<seed>)")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help="start from a published protocol (see 'metazoo presets'); a "
                             "--config file and flags override its values")
    parser.add_argument("--config", type=_path, default=None,
                        help="JSON file of options (same names as the flags, with underscores); "
                             "flags given on the command line override it")
    parser.add_argument("--resume", type=_path, default=None, metavar="DIR",
                        help="continue the run in DIR from its checkpoint (a finished run only "
                             "gets the results it is missing); options given must match the "
                             "stored config, and a model of user code must be named again "
                             "(--model)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run in --out: its files are deleted once every option "
                             "has been checked (other files are kept)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    group = parser.add_argument_group("run options")
    defaults = TrainConfig()
    for spec in dataclasses.fields(TrainConfig):
        if spec.name != "algorithm_options":
            _add_field(group, spec, getattr(defaults, spec.name))
    groups: dict[str, argparse._ArgumentGroup] = {}
    for dest, (algorithm, field_name, flags) in algorithm_flags().items():
        if algorithm not in groups:
            groups[algorithm] = parser.add_argument_group(
                f"{algorithm} options (only with --algorithm {algorithm})")
        spec = ALGORITHMS[algorithm].options()[field_name]
        _add_field(groups[algorithm], spec, spec.default if spec.default is not dataclasses.MISSING
                   else spec.default_factory(), flags=flags, dest=dest)


#: --model of the commands that read a run (on ``train --resume``, the option itself).
_MODEL_HELP = ("a run whose model is user code: name it again to confirm that importing it is "
               "wanted (a run folder alone never imports code)")


def _eval_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a trained run on held-out tasks",
        description="Adapt the θ of a run on held-out tasks and report query loss (and accuracy "
                    "for classification) ± 95%% CI after each number of test steps.",
    )
    parser.add_argument("run", type=_path, help="run folder holding checkpoint.pt")
    parser.add_argument("--tasks", type=int, default=None, help="held-out tasks (default: the run's eval_tasks)")
    parser.add_argument("--steps", type=int, nargs="+", default=None, metavar="N",
                        help="report after these test step counts (default: the run's eval_steps)")
    parser.add_argument("--k-shot", type=int, default=None,
                        help="support examples per held-out task (default: the run's eval_k_shot)")
    parser.add_argument("--json", type=_path, default=None, help="also write the report as JSON here")
    parser.add_argument("--transductive", action=argparse.BooleanOptionalAction, default=None,
                        help="classify a task's queries together (BatchNorm statistics over all "
                             "of them), or each query with the support set alone "
                             "(--no-transductive); default: the run's eval_transductive")
    parser.add_argument("--model", default=None, metavar="MODULE:FACTORY", help=_MODEL_HELP)


def _config_from(args: argparse.Namespace, stored: dict[str, Any] | None = None) -> TrainConfig:
    """Merge, in order: defaults (or a stored run's config), a config file, explicit flags.

    One rule for another algorithm's options, wherever they come from: refused.
    """
    given = {k: v for k, v in vars(args).items()
             if k not in ("command", "out", "config", "resume", "overwrite", "no_progress",
                          "preset")}
    options: dict[str, Any] = dict(stored or {})
    if getattr(args, "preset", None) is not None:  # an empty name is refused, not ignored
        from metazoo.presets import preset_options

        options.update(preset_options(args.preset))
    if args.config is not None:
        options.update(_read_config(args.config))
    flags = algorithm_flags()
    by_alias = {flag.lstrip("-").replace("-", "_"): dest for dest, (_, _, spellings) in
                flags.items() for flag in spellings}
    # Algorithm options as flags, or as top-level keys of a config file in their flag spelling.
    chosen: dict[str, tuple[str, str, Any]] = {}
    for key in list(options):
        if key in by_alias:
            algorithm, field_name, _ = flags[by_alias[key]]
            chosen[_flag(key)] = (algorithm, field_name, options.pop(key))
    options.update({k: v for k, v in given.items() if not k.startswith(_ALGORITHM_DEST)})
    for key, value in given.items():
        if key.startswith(_ALGORITHM_DEST):
            algorithm, field_name, spellings = flags[key]
            chosen[spellings[0]] = (algorithm, field_name, value)
    algorithm = options.get("algorithm", TrainConfig.algorithm)
    if stored and algorithm != stored.get("algorithm") and "algorithm_options" in stored \
            and options["algorithm_options"] is stored["algorithm_options"]:
        # The stored options are the stored algorithm's: another algorithm given on resume
        # is a difference to name (check_same_config), not an option of the wrong algorithm.
        options["algorithm_options"] = {}
    algorithm_options = options.get("algorithm_options", {})
    if not isinstance(algorithm_options, dict):
        raise ValueError(  # noqa: TRY004 - bad input, reported in one line (exit 2)
                         f"algorithm_options must be a JSON object, got {str(algorithm_options)[:80]}")
    algorithm_options = dict(algorithm_options)
    for spelling, (owner, field_name, value) in chosen.items():
        if owner != algorithm:
            raise ValueError(f"{spelling} is an option of {owner}, not of {algorithm} "
                             f"(--algorithm); drop it or use --algorithm {owner}")
        algorithm_options[field_name] = value
    options["algorithm_options"] = algorithm_options
    unknown = set(options) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        names = sorted(unknown)
        listed = ", ".join(name[:40] for name in names[:5])
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        raise ValueError(f"unknown option(s) in --config: {listed}{more}")
    return TrainConfig(**options)


#: The most a count option takes (what a 64-bit integer holds with room to spare).
MAX_COUNT = 2**62


def check_counts(settings: type, options: dict[str, Any]) -> None:
    """Every count has a bound that its message states: an integer option of ``settings``
    (a dataclass) whose default is 0 or more is a count, from 0 to :data:`MAX_COUNT`. The
    settings' own checks (e.g. at least 1) come after.

    Raises:
        ValueError: naming the option, its bound and the value.
    """
    for spec in dataclasses.fields(settings):
        default = spec.default
        if spec.name not in options or isinstance(default, bool) or not isinstance(default, int) \
                or default < 0:
            continue
        value = options[spec.name]
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= MAX_COUNT:
            shown = str(value) if len(str(value)) <= 20 else f"{str(value)[:19]}…"
            raise ValueError(f"{spec.name} must be an integer from 0 to 2**62, got {shown} "
                             f"({_flag(spec.name)})")


def _read_config(path: Path) -> dict[str, Any]:
    """A ``--config`` file: one JSON object of options."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"--config {path}: cannot read it as JSON ({str(error)[:120]})") from error
    if not isinstance(data, dict):
        raise ValueError(  # noqa: TRY004 - bad input, reported in one line (exit 2)
                         f"--config {path}: expected a JSON object of options, got "
                         f"{type(data).__name__}")
    return data


def _run_train(args: argparse.Namespace) -> int:
    from metazoo.engine.run import check_model_named, check_same_config, read_run
    from metazoo.engine.train import train

    if args.resume is not None:
        if args.out is not None and args.out.absolute() != args.resume.absolute():
            raise ValueError(f"--resume {args.resume} continues the run in its own folder; "
                             f"drop --out {args.out}, or start a new run there without --resume")
        stored = read_run(args.resume).config
        # --model is the flag of train itself here: given, it is the run's own or refused.
        check_model_named(stored, getattr(args, "model", None), args.resume)
        # The stored config plus whatever was given; any difference is refused, here,
        # before anything is built.
        config, out, resume = _config_from(args, stored.to_dict()), args.resume, True
        check_same_config(stored, config)
    else:
        config = _config_from(args)
        out = args.out or Path("runs") / f"{config.task}-{config.algorithm}-seed{config.seed}"
        resume = False
    summary = train(config, out, resume=resume, overwrite=args.overwrite,
                    progress=not args.no_progress)
    if summary["rank"] != 0:  # a torchrun job: rank 0 reports
        return 0
    rewritten = summary.get("rewritten")
    if rewritten:
        print(f"{out}: the run was already finished ({summary['iterations']} meta-iterations); "
              f"{' and '.join(rewritten)} {'were' if len(rewritten) > 1 else 'was'} missing: "
              "written again\n")
    elif summary.get("finished_before"):
        print(f"{out}: the run was already finished ({summary['iterations']} meta-iterations); "
              "nothing was changed\n")
    else:
        print(f"\n{config.algorithm} on {config.task}: "
              f"{summary['median_seconds_per_iteration'] * 1e3:.2f} ms per meta-iteration "
              f"(median, strategy {summary['strategy']}); results in {out}\n")
    print((out / RESULTS_TABLE).read_text())
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from metazoo.engine.folder import check_file_target
    from metazoo.engine.run import evaluate_params, protocol_name, rebuild_run, report_to_dict
    from metazoo.engine.setup import configure_process
    from metazoo.fileio import write_json

    if args.json is not None:  # checked before the evaluation, which may take a while
        check_file_target(args.json, "--json", run=args.run)
    if args.k_shot is not None and args.k_shot < 1:  # 0 would mean "as the run's"
        raise ValueError(f"--k-shot must be a positive integer, got {args.k_shot}")
    evaluation = {name: value for name, value in (("eval_tasks", args.tasks),
                                                  ("eval_steps", args.steps),
                                                  ("eval_k_shot", args.k_shot),
                                                  ("eval_transductive", args.transductive))
                  if value is not None}
    setup, params, state, checkpoint = rebuild_run(args.run, model=args.model, **evaluation)
    configure_process(setup.config)
    config = setup.config
    report = evaluate_params(setup, params, state)
    title = (f"{config.algorithm} on {config.task} after {checkpoint.iteration} iterations: "
             f"{config.eval_tasks} held-out tasks, K={config.eval_k_shot or config.k_shot}"
             f"{protocol_name(config, report)}")
    print(format_table(report, title))
    if args.json is not None:
        write_json(args.json, report_to_dict(report))
    return 0


def _predict_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="adapt a trained run to a new task and predict its queries",
        description="Adapt the θ of a run on a new task's support set, with its method's own "
                    "test-time adaptation and its task's own preprocessing, then predict the "
                    "queries. Images (classification runs): --support is a class-per-folder "
                    "tree, --query a folder of images (those in sub-folders named after support "
                    "classes are labelled, and accuracy is printed). Tables (regression runs): "
                    "CSV files with a header row, the inputs then the targets (--query may omit "
                    "the targets). Writes a CSV of the predictions to --out. Exit status: 0 "
                    "done, 2 refused.",
    )
    parser.add_argument("run", type=_path, help="run folder holding checkpoint.pt")
    parser.add_argument("--support", type=_path, required=True, metavar="DIR|CSV",
                        help="the new task's labelled examples")
    parser.add_argument("--query", type=_path, required=True, metavar="DIR|CSV",
                        help="the examples to predict")
    parser.add_argument("--steps", type=int, default=None, metavar="S",
                        help="test-time steps, 0 to 10,000 (default: the method's own "
                             "protocol, else the run's largest eval_steps)")
    parser.add_argument("--out", type=_path, default=Path("predictions.csv"),
                        help="CSV of the predictions: file, label, score [, true] for images; "
                             "the query's columns and prediction for tables "
                             "(default: predictions.csv)")
    parser.add_argument("--transductive", action=argparse.BooleanOptionalAction, default=None,
                        help="classify the queries together (BatchNorm statistics over all of "
                             "them), or each with the support set alone (--no-transductive); "
                             "default: the run's eval_transductive")
    parser.add_argument("--model", default=None, metavar="MODULE:FACTORY", help=_MODEL_HELP)


def _run_predict(args: argparse.Namespace) -> int:
    from metazoo.engine.config import check_steps
    from metazoo.engine.folder import check_file_target
    from metazoo.fileio import atomic_write_data
    from metazoo.predict import load_run, predict_files

    check_file_target(args.out, "--out", run=args.run,
                      inputs={"--support": args.support, "--query": args.query})
    if args.steps is not None:
        check_steps("--steps", args.steps)
    table, summary = predict_files(load_run(args.run, model=args.model), args.support, args.query,
                                   steps=args.steps, transductive=args.transductive)
    atomic_write_data(args.out, table.to_csv(index=False).encode())
    print(f"{summary}\npredictions: {args.out}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem and where help is."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _compare_parser(subparsers) -> None:
    from metazoo.analysis.compare import CompareConfig

    parser = subparsers.add_parser(
        "compare", help="train algorithms × k × seeds and write the analysis report",
        description="Train every algorithm for every inner-step count and seed (resuming an "
                    "interrupted comparison), then answer: second vs first order as k grows; "
                    "low-loss vs easy-to-optimise θ; inner-path geometry; fidelity of cheap "
                    "meta-gradients; time and memory against k. Writes runs.jsonl, runs.csv "
                    "and report/index.{md,html} with figures to --out.",
    )
    parser.add_argument("--out", type=_path, default=None,
                        help="output folder (default: runs/compare-<task>)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    defaults = CompareConfig()
    for spec in dataclasses.fields(CompareConfig):
        _add_field(parser, spec, getattr(defaults, spec.name))


def _run_compare(args: argparse.Namespace) -> int:
    from metazoo.analysis.compare import CompareConfig, compare

    options = {k: v for k, v in vars(args).items() if k not in ("command", "out", "no_progress")}
    check_counts(CompareConfig, options)
    config = CompareConfig(**options)
    out = args.out or Path("runs") / f"compare-{config.task}"
    index = compare(config, out, progress=not args.no_progress)
    print(index.read_text())
    print(f"\nreport: {index} and {index.with_suffix('.html')}")
    return 0


def _presets_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "presets", help="list the published protocols that --preset takes",
        description="List the shipped presets, or show one with the source of every value.")
    parser.add_argument("name", nargs="?", default=None, help="show this preset in full")


def _run_presets(args: argparse.Namespace) -> int:
    from metazoo.presets import preset_names, read_preset

    if args.name is None:
        for name in preset_names():
            print(f"{name:28s} {read_preset(name)['description']}")
        print("\nmetazoo presets NAME shows one with its sources; "
              "metazoo train --preset NAME [--time-budget S --budget-clock cpu] runs it.")
        return 0
    preset = read_preset(args.name)
    print(f"{args.name}: {preset['description']}\n")
    flat = dict(preset["options"])
    flat.update({f"algorithm_options.{k}": v for k, v in flat.pop("algorithm_options", {}).items()})
    for key, value in flat.items():
        print(f"  {key} = {json.dumps(value)}\n      source: {preset['sources'].get(key, '?')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="metazoo",
        description="Gradient-based meta-learning on one functional core. Methods "
                    f"(--algorithm): {', '.join(sorted(ALGORITHMS))}.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _train_parser(subparsers)
    _eval_parser(subparsers)
    _compare_parser(subparsers)
    _presets_parser(subparsers)
    _predict_parser(subparsers)
    from metazoo.search.command import add_tune_parser

    add_tune_parser(subparsers)
    return parser


def _run_tune(args: argparse.Namespace) -> int:
    from metazoo.search.command import run_tune

    return run_tune(args)


#: Exit statuses (README, "Exit statuses"): 128 + N for a stop by signal N.
OK, REFUSED, FAILED = 0, 2, 3


class _Terminated(BaseException):
    """SIGTERM outside a training loop (which defers it to the end of an iteration)."""


def _terminate(signum, frame):
    raise _Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``metazoo`` with ``argv``; returns the exit status.

    Every failure ends in one line on stderr: 2 for input that is refused (nothing was
    changed) or a file that cannot be written, 3 for a run that produced no usable result,
    128 + N for a stop by signal N (130 for Ctrl-C, 143 for SIGTERM).
    """
    parser = build_parser()
    # `--model package.module:factory` may name a module in the current folder, as it would
    # under `python -m`; appended, so it never shadows an installed module.
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # usage errors (status 2) and --help (status 0)
        return int(exit_.code or 0)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    prefix = f"metazoo {args.command}"
    try:
        return {"train": _run_train, "eval": _run_eval, "compare": _run_compare,
                "presets": _run_presets, "predict": _run_predict,
                "tune": _run_tune}[args.command](args)
    except (ValueError, OSError, OmniglotDataError) as error:
        print(f"{prefix}: error: {describe_field(_one_line(error))}", file=sys.stderr)
        return REFUSED
    except NonFiniteError as error:  # the run started; its last good checkpoint is kept
        print(f"{prefix}: stopped: {_one_line(error)}", file=sys.stderr)
        return FAILED
    except Interrupted as stop:
        again = args.command in ("compare", "tune")
        resume = ("" if stop.finished else " (run the same command again to continue)"
                  if again else f" (metazoo train --resume {stop.out})")
        print(f"{prefix}: {stop}{resume}", file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt:
        print(f"{prefix}: stopped by SIGINT", file=sys.stderr)
        return 128 + signal.SIGINT
    except _Terminated:
        print(f"{prefix}: stopped by SIGTERM", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _one_line(error: BaseException) -> str:
    """An error as one line (a message from below may hold line breaks), at most 2,000
    characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 2000 else text[:1999] + "…"


if __name__ == "__main__":
    sys.exit(main())
