"""The commands: each one's parser and the function that runs it."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from metazoo.algorithms import ALGORITHMS
from metazoo.cli.flags import (
    add_field,
    algorithm_flags,
    check_counts,
    config_from,
    field_default,
    path_argument,
)
from metazoo.engine.config import TrainConfig
from metazoo.engine.layout import RESULTS_TABLE


def _train_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="meta-train θ, then evaluate it on held-out tasks",
        description="Meta-train an initialization on a task family and evaluate it. Writes "
                    "config.json, log.jsonl, checkpoint.pt and results.{json,md} to --out "
                    "(and TensorBoard events to --out/tensorboard with --tensorboard), "
                    "holding its lock. Ctrl-C or SIGTERM saves the current iteration (while "
                    "θ is being scored, it stops at once); resume with --resume. Exit status: "
                    "0 done (also when a signal comes once the run is finished), 2 refused, "
                    "3 no usable result, 130/143 stopped by SIGINT/SIGTERM.",
    )
    parser.add_argument("--out", type=path_argument, default=None,
                        help="output folder (default: runs/<task>-<algorithm>-seed<seed>)")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help="start from a published protocol (see 'metazoo presets'); a "
                             "--config file and flags override its values")
    parser.add_argument("--config", type=path_argument, default=None,
                        help="JSON file of options (same names as the flags, with underscores); "
                             "flags given on the command line override it")
    parser.add_argument("--resume", type=path_argument, default=None, metavar="DIR",
                        help="continue the run in DIR from its checkpoint (a finished run only "
                             "gets the results it is missing); options given must match the "
                             "stored config, and a model of user code must be named again "
                             "(--model)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run in --out: its files are deleted once every option "
                             "has been checked (other files are kept)")
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress bars (shown only when stderr is a terminal)")
    group = parser.add_argument_group("run options")
    for spec in dataclasses.fields(TrainConfig):
        if spec.name != "algorithm_options":
            add_field(group, spec, field_default(spec))
    groups: dict[str, argparse._ArgumentGroup] = {}
    for dest, (algorithm, field_name, flags) in algorithm_flags().items():
        if algorithm not in groups:
            groups[algorithm] = parser.add_argument_group(
                f"{algorithm} options (only with --algorithm {algorithm})")
        spec = ALGORITHMS[algorithm].options()[field_name]
        add_field(groups[algorithm], spec, field_default(spec), flags=flags, dest=dest)


#: --model of the commands that read a run (on ``train --resume``, the option itself).
MODEL_HELP = ("a run whose model is user code: name it again to confirm that importing it is "
               "wanted (a run folder alone never imports code)")


def _eval_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a trained run on held-out tasks",
        description="Adapt the θ of a run on held-out tasks and report query loss (and accuracy "
                    "for classification) ± 95% CI after each number of test steps.",
    )
    parser.add_argument("run", type=path_argument, help="run folder holding checkpoint.pt")
    parser.add_argument("--tasks", type=int, default=None, help="held-out tasks (default: the run's eval_tasks)")
    parser.add_argument("--steps", type=int, nargs="+", default=None, metavar="N",
                        help="report after these test step counts (default: the run's eval_steps)")
    parser.add_argument("--k-shot", type=int, default=None,
                        help="support examples per held-out task (default: the run's eval_k_shot)")
    parser.add_argument("--out", type=path_argument, default=None, metavar="FILE",
                        help="write the results here as JSON: the run, its iteration, the "
                             "options evaluated with and the report, as train's results.json "
                             "(default: printed only)")
    parser.add_argument("--json", type=path_argument, default=None, metavar="FILE",
                        help="write the report alone as JSON here")
    parser.add_argument("--transductive", action=argparse.BooleanOptionalAction, default=None,
                        help="classify a task's queries together (BatchNorm statistics over all "
                             "of them), or each query with the support set alone "
                             "(--no-transductive); default: the run's eval_transductive")
    parser.add_argument("--model", default=None, metavar="MODULE:FACTORY", help=MODEL_HELP)
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress bar (shown only when stderr is a terminal)")


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
        config, out, resume = config_from(args, stored.to_dict()), args.resume, True
        check_same_config(stored, config)
    else:
        config = config_from(args)
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
              f"(median, strategy {summary['strategy']}"
              + (f", {summary['chunk_size']} task{'s' * (summary['chunk_size'] > 1)} at a time"
                 if summary["strategy"] == "vmap" and summary.get("chunk_size") else "")
              + f"); results in {out}\n")
    print((out / RESULTS_TABLE).read_text())
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from metazoo.engine.evaluate import format_table
    from metazoo.engine.folder import check_file_target
    from metazoo.engine.run import evaluate_params, rebuild_run, report_to_dict, results_title
    from metazoo.engine.setup import configure_process
    from metazoo.fileio import write_json

    for option, path in (("--out", args.out), ("--json", args.json)):
        if path is not None:  # checked before the evaluation, which may take a while
            check_file_target(path, option, run=args.run)
    if args.out is not None and args.json is not None and args.out.resolve() == args.json.resolve():
        raise ValueError(f"--out and --json both name {args.out}; name two files, or drop one")
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
    report = evaluate_params(setup, params, state, progress=not args.no_progress)
    print(format_table(report, results_title(config, report, checkpoint.iteration)))
    if args.json is not None:
        write_json(args.json, report_to_dict(report))
    if args.out is not None:
        write_json(args.out, {"run": str(args.run), "iteration": checkpoint.iteration,
                              "config": config.to_dict(), "evaluation": report_to_dict(report)})
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
    parser.add_argument("run", type=path_argument, help="run folder holding checkpoint.pt")
    parser.add_argument("--support", type=path_argument, required=True, metavar="DIR|CSV",
                        help="the new task's labelled examples")
    parser.add_argument("--query", type=path_argument, required=True, metavar="DIR|CSV",
                        help="the examples to predict")
    parser.add_argument("--steps", type=int, default=None, metavar="S",
                        help="test-time steps, 0 to 10,000 (default: the method's own "
                             "protocol, else the run's largest eval_steps)")
    parser.add_argument("--out", type=path_argument, default=Path("predictions.csv"),
                        help="CSV of the predictions: file, label, score [, true] for images; "
                             "the query's columns and prediction for tables "
                             "(default: predictions.csv)")
    parser.add_argument("--transductive", action=argparse.BooleanOptionalAction, default=None,
                        help="classify the queries together (BatchNorm statistics over all of "
                             "them), or each with the support set alone (--no-transductive); "
                             "default: the run's eval_transductive")
    parser.add_argument("--model", default=None, metavar="MODULE:FACTORY", help=MODEL_HELP)
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress bar (shown only when stderr is a terminal and "
                             "reading and adapting take more than a second)")


def _run_predict(args: argparse.Namespace) -> int:
    from metazoo.cli.predict import predict_files
    from metazoo.engine.config import check_steps
    from metazoo.engine.folder import check_file_target
    from metazoo.fileio import atomic_write_data
    from metazoo.predict import load_run

    check_file_target(args.out, "--out", run=args.run,
                      inputs={"--support": args.support, "--query": args.query})
    if args.steps is not None:
        check_steps("--steps", args.steps)
    table, summary = predict_files(load_run(args.run, model=args.model), args.support, args.query,
                                   steps=args.steps, transductive=args.transductive,
                                   progress=not args.no_progress)
    atomic_write_data(args.out, table.to_csv(index=False).encode())
    print(f"{summary}\npredictions: {args.out}")
    return 0


def _compare_parser(subparsers) -> None:
    from metazoo.analysis.config import CompareConfig

    parser = subparsers.add_parser(
        "compare", help="train algorithms × k × seeds and write the analysis report",
        description="Train every algorithm for every inner-step count and seed (resuming an "
                    "interrupted comparison), then answer: second vs first order as k grows; "
                    "low-loss vs easy-to-optimise θ; inner-path geometry; fidelity of cheap "
                    "meta-gradients; time and memory against k. Writes runs.jsonl, runs.csv "
                    "and report/index.{md,html} with figures to --out.",
    )
    parser.add_argument("--out", type=path_argument, default=None,
                        help="output folder (default: runs/compare-<task>)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    for spec in dataclasses.fields(CompareConfig):
        add_field(parser, spec, field_default(spec))


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
              "metazoo train --preset NAME [--time-budget S] runs it.")
        return 0
    preset = read_preset(args.name)
    print(f"{args.name}: {preset['description']}\n")
    flat = dict(preset["options"])
    flat.update({f"algorithm_options.{k}": v for k, v in flat.pop("algorithm_options", {}).items()})
    for key, value in flat.items():
        print(f"  {key} = {json.dumps(value)}\n      source: {preset['sources'].get(key, '?')}")
    return 0


def _plot_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot", help="draw the learning curves of runs in one PNG",
        description="Draw the meta-training loss (log.jsonl) and the validation score "
                    "(validation.jsonl: accuracy for classification, query loss for "
                    "regression, at the method's own test steps, else the largest recorded) "
                    "of one or more run folders, finished or still training, against "
                    "meta-iterations and against budget seconds (--budget-clock), overlaid in "
                    "one figure. Each run is labelled by the options in which its config.json "
                    "differs from the others'. A run trained without --val-every has no "
                    "validation curve. Exit status: 0 done, 2 refused.",
    )
    parser.add_argument("runs", type=path_argument, nargs="+", metavar="RUN",
                        help="run folder (holding config.json and log.jsonl)")
    parser.add_argument("--out", type=path_argument, default=Path("curves.png"),
                        metavar="FILE.png", help="the figure (default: curves.png)")


def _run_plot(args: argparse.Namespace) -> int:
    from metazoo.analysis.curves import plot_runs
    from metazoo.engine.folder import check_file_target

    if args.out.suffix.lower() != ".png":
        raise ValueError(f"--out {args.out}: the figure is a PNG; name a file ending in .png")
    seen: dict[Path, Path] = {}
    for run in args.runs:
        other = seen.setdefault(run.resolve(), run)
        if other is not run:
            twice = f"{run} is given twice" if str(other) == str(run) else \
                f"{other} and {run} are one run"
            raise ValueError(f"{twice}; name each run once")
    check_file_target(args.out, "--out")
    print(f"{plot_runs(args.runs, args.out)}: the curves of {len(args.runs)} "
          f"run{'s' if len(args.runs) > 1 else ''}")
    return 0


def _models_parser(subparsers) -> None:
    subparsers.add_parser(
        "models", help="list the built-in models that --model takes, and how to use your own",
        description="List the built-in models (--model NAME), with the tasks each is the "
                    "default of, and say how --model package.module:factory builds one from "
                    "your code.")


#: How ``--model`` takes the user's code (``metazoo models``; README, "Your own model").
OWN_MODEL = """Your own: --model package.module:factory (a dotted attribute, module:Nets.small, works too).
The module is imported as Python would (installed packages, PYTHONPATH), then from the current
folder; the factory is called as factory(input_shape=..., output_size=...), with one example's
shape, (D,) or (C, H, W), and n_way for classification or the target size for regression, and
returns an nn.Module whose forward maps [B, *input_shape] to [B, output_size]. A run folder
never imports code by itself: eval, predict and train --resume of such a run take --model
again. README, "Your own model", has examples."""


def _run_models(args: argparse.Namespace) -> int:
    from metazoo.engine.config import DEFAULT_MODEL
    from metazoo.models import MODELS

    for name, factory in MODELS.items():
        print(f"{name:13s} {(factory.__doc__ or '').strip().splitlines()[0]}")
        tasks = [task for task, model in DEFAULT_MODEL.items() if model == name]
        if tasks:
            print(f"{'':13s} the default of {', '.join(tasks)}")
    print(f"\n{OWN_MODEL}")
    return 0


def add_parsers(subparsers) -> None:
    """Every command's parser, in the order ``metazoo --help`` lists them."""
    _train_parser(subparsers)
    _eval_parser(subparsers)
    _compare_parser(subparsers)
    _presets_parser(subparsers)
    _predict_parser(subparsers)
    from metazoo.search.command import add_tune_parser

    add_tune_parser(subparsers)
    _plot_parser(subparsers)
    _models_parser(subparsers)


def _run_tune(args: argparse.Namespace) -> int:
    from metazoo.search.command import run_tune

    return run_tune(args)


#: What runs each command.
RUNNERS = {"train": _run_train, "eval": _run_eval, "compare": _run_compare,
           "presets": _run_presets, "predict": _run_predict, "tune": _run_tune,
           "plot": _run_plot, "models": _run_models}
