"""Stopping a run on request: SIGINT (Ctrl-C) and SIGTERM (how schedulers and ``torchrun``
stop a job) finish the current meta-iteration, write a checkpoint, and end the run with the
conventional exit status 128 + signal number (130, 143). A run that had finished (trained and
scored) when the signal came has nothing left to do: it ends with status 0.

While a run trains, :func:`deferred_signals` turns each of the two signals into a request
that the loop reads between iterations. A second signal of the same kind is not deferred:
it acts at once, as it would without metazoo (the checkpoint on disk is always whole, since
it is written atomically).

Scoring θ (a validation point, the final evaluation) may take minutes and writes nothing
until it ends, so it is not waited for: within :meth:`Requests.at_once` a signal raises
:class:`Stopped` at once, and the run stops with the checkpoint it has; what was being
scored is scored again on resume. Schedulers send SIGKILL soon after SIGTERM (30 s by
default for Slurm and Kubernetes).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
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
        """0 for a run that was finished when the signal came, else 128 + the signal."""
        return 0 if self.finished else 128 + self.signum

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        if self.finished:
            return f"{name} came once the run had finished; its results are in {self.out}"
        if self.iteration is None:  # several runs: each saved its own
            return (f"stopped by {name}; the runs in flight saved their checkpoints in "
                    f"{self.out}")
        return (f"stopped by {name} after iteration {self.iteration}; its checkpoint is saved in "
                f"{self.out}; resume it to continue")


class Stopped(BaseException):
    """A signal received within :meth:`Requests.at_once`: stop now. A ``BaseException``, so
    that no ``except Exception`` on the way (user code, a library) holds it up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Requests:
    """The stop requests of :func:`deferred_signals`: call it for the number of the first
    signal received (0 if none)."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.immediate = False

    def __call__(self) -> int:
        return self.received[0] if self.received else 0

    @contextlib.contextmanager
    def at_once(self) -> Iterator[None]:
        """Within the block a signal is not deferred: it raises :class:`Stopped`, as does
        entering it with a request already received.

        Raises:
            Stopped: on a signal.
        """
        if self.received:
            raise Stopped(self.received[0])
        self.immediate = True
        try:
            yield
        finally:
            self.immediate = False


@contextlib.contextmanager
def deferred_signals() -> Iterator[Requests]:
    """Within the block, SIGINT and SIGTERM only record a request (or, within
    :meth:`Requests.at_once`, stop at once).

    Yields:
        The requests, :class:`Requests`.

    Outside the main thread signals cannot be handled, and they keep their usual effect.
    """
    requests = Requests()
    if threading.current_thread() is not threading.main_thread():
        yield requests
        return
    # A handler installed from C reads as None: restore the default then.
    previous = {signum: signal.getsignal(signum) or signal.SIG_DFL for signum in SIGNALS}

    def request(signum, frame) -> None:
        if requests.received:  # asked twice: act at once, as without metazoo
            signal.signal(signum, previous[signum])
            signal.raise_signal(signum)
            return
        requests.received.append(signum)
        if requests.immediate:
            raise Stopped(signum)

    for signum in SIGNALS:
        signal.signal(signum, request)
    try:
        yield requests
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
