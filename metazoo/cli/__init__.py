"""Command line: ``metazoo train``, ``eval``, ``compare``, ``tune``, ``presets``, ``predict``,
``plot`` and ``models``.

Modules by job: ``flags`` (options generated from the config and settings dataclasses, and a
run's options merged from a preset, a file and the flags), ``commands`` (each command's parser
and runner); here, ``main``: the parser, the one-line errors and the exit statuses.

Building the parser reads only the options' dataclasses, none of which loads torch; a runner
imports what its command needs. So ``--help``, ``presets``, ``plot --help`` and a usage error
answer at once (``tests/cli/test_startup.py``; ``benchmarks/cli_startup.py`` times them).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence

from metazoo.algorithms import ALGORITHMS
from metazoo.cli.commands import RUNNERS, add_parsers
from metazoo.cli.flags import describe_field
from metazoo.engine.stopping import Interrupted


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem and where help is."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="metazoo",
        description="Gradient-based meta-learning on one functional core. Methods "
                    f"(--algorithm): {', '.join(sorted(ALGORITHMS))}.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_parsers(subparsers)
    return parser


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
    128 + N for a stop by signal N (130 for Ctrl-C, 143 for SIGTERM), unless the run was
    finished when it came (0).
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
        return RUNNERS[args.command](args)
    except (ValueError, OSError) as error:  # data errors (DataError) are ValueErrors
        print(f"{prefix}: error: {describe_field(_one_line(error))}", file=sys.stderr)
        return REFUSED
    except _loaded("metazoo.engine.scoring", "NonFiniteError") as error:
        # The run started; its last good checkpoint is kept.
        print(f"{prefix}: stopped: {_one_line(error)}", file=sys.stderr)
        return FAILED
    except Interrupted as stop:
        if args.command in ("compare", "tune"):  # one run finished or not, the rest is left
            print(f"{prefix}: {stop} (run the same command again to continue)",
                  file=sys.stderr)
            return 128 + stop.signum
        resume = "" if stop.finished else f" (metazoo train --resume {stop.out})"
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


def _loaded(module: str, name: str) -> tuple[type[BaseException], ...]:
    """The error class ``module.name`` where that module has been imported (else no command
    raised it), for an ``except`` clause: importing it here would load torch for every error."""
    found = sys.modules.get(module)
    return (getattr(found, name),) if found is not None else ()


def _one_line(error: BaseException) -> str:
    """An error as one line (a message from below may hold line breaks), at most 2,000
    characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 2000 else text[:1999] + "…"


if __name__ == "__main__":
    sys.exit(main())
