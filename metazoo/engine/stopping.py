"""Stopping a run on request: SIGINT (Ctrl-C) and SIGTERM (how schedulers and ``torchrun``
stop a job) finish the current meta-iteration, write a checkpoint, and end the run with the
conventional exit status 128 + signal number (130, 143).

While a run trains, :func:`deferred_signals` turns each of the two signals into a request
that the loop reads between iterations. A second signal of the same kind is not deferred:
it acts at once, as it would without metazoo (the checkpoint on disk is always whole, since
it is written atomically).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """The run stopped on a signal after writing a checkpoint it can resume from."""

    def __init__(self, signum: int, iteration: int | None, out: str | Path,
                 finished: bool = False):
        super().__init__(signum, iteration, str(out), finished)
        self.signum, self.iteration, self.out, self.finished = signum, iteration, str(out), finished

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        if self.finished:
            return f"stopped by {name}; the run is finished and its results are in {self.out}"
        if self.iteration is None:  # several runs: each saved its own
            return (f"stopped by {name}; the runs in flight saved their checkpoints in "
                    f"{self.out}")
        return (f"stopped by {name} after iteration {self.iteration}; its checkpoint is saved in "
                f"{self.out}; resume it to continue")


@contextlib.contextmanager
def deferred_signals() -> Iterator[Callable[[], int]]:
    """Within the block, SIGINT and SIGTERM only record a request.

    Yields:
        A function returning the number of the first signal received (0 if none).

    Outside the main thread signals cannot be handled, and they keep their usual effect.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: 0
        return
    received: list[int] = []
    # A handler installed from C reads as None: restore the default then.
    previous = {signum: signal.getsignal(signum) or signal.SIG_DFL for signum in SIGNALS}

    def request(signum, frame) -> None:
        if received:  # asked twice: act at once, as without metazoo
            signal.signal(signum, previous[signum])
            signal.raise_signal(signum)
            return
        received.append(signum)

    for signum in SIGNALS:
        signal.signal(signum, request)
    try:
        yield lambda: received[0] if received else 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
