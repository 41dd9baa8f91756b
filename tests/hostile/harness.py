"""The hostile-input suite's harness: run the CLI, and prove that nothing was lost.

Every case ends in one line on stderr (or, for a run that is refused nothing, its usual
output) and a documented exit status (README, "Exit statuses"); :func:`digest` hashes every
file under a folder before and after, so that a refusal is shown to change nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from metazoo.cli import main
from tests.helpers import REPO

#: The documented exit statuses.
OK, REFUSED, FAILED, SIGINT, SIGTERM = 0, 2, 3, 130, 143

#: A run that takes well under a second.
TINY = ["--iterations", "2", "--eval-tasks", "2", "--meta-batch", "2", "--strategy", "vmap",
        "--no-progress"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def line(self) -> str:
        """The one line on stderr (fails the test if there are more, or none)."""
        lines = self.err.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{self.err[:3000]}"
        return lines[0]


def cli(*args) -> Result:
    """``metazoo ARGS`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


def digest(*folders: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folders``: its path → (SHA-256 of its bytes, its mode)."""
    found = {}
    for folder in folders:
        if folder.is_file():
            found[str(folder)] = (hashlib.sha256(folder.read_bytes()).hexdigest(),
                                  folder.stat().st_mode)
            continue
        for path in sorted(folder.rglob("*")) if folder.exists() else []:
            if path.is_file():
                found[str(path)] = (hashlib.sha256(path.read_bytes()).hexdigest(),
                                    path.stat().st_mode)
    return found


def refused(*args, message: str, watch: Path, status: int = REFUSED, absent=()) -> Result:
    """Run ``metazoo ARGS``; it must end with ``status`` and one line holding ``message``, and
    leave every file under ``watch`` as it was, and create none of ``absent``."""
    before = digest(watch)
    result = cli(*args)
    assert result.code == status, (result.code, result.err[-2000:])
    assert message in result.line, result.line
    assert digest(watch) == before, "a file under the watched folder changed"
    for path in absent:
        assert not Path(path).exists(), f"{path} was created"
    return result


def spawn(*args, preexec_fn=None, **kwargs) -> subprocess.Popen:
    """``python -m metazoo ARGS`` in its own process (one thread), for signals and locks.

    It starts as a foreground command does, with SIGINT at its default: a test run started in
    the background of a shell (``pytest &``) has SIGINT ignored, the shell's protection of
    background jobs from Ctrl-C, and a child would inherit that and never see the signal.
    """
    def start() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if preexec_fn is not None:
            preexec_fn()

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "metazoo", *map(str, args)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=start, **kwargs)  # noqa: PLW1509 - single-threaded test
