"""Progress bars on stderr: training's, and the held-out evaluation's.

A bar is drawn when it is asked for (``progress``, off with ``--no-progress``) and stderr is
a terminal: a log file or a pipe would get a heap of carriage returns instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm import tqdm

from metazoo.engine.config import TrainConfig

#: Training's bar under a time budget: the budget's seconds, with the iterations as postfix.
BUDGET_FORMAT = ("{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of budget "
                 "[{elapsed}<{remaining}{postfix}]")


def progress_bar(progress: bool, **options: Any) -> tqdm:
    """A tqdm bar (``options`` are tqdm's), drawn only when ``progress`` and stderr is a
    terminal; a bar not drawn still counts, so callers update it either way."""
    shown = progress and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return tqdm(disable=not shown, **options)


def in_batches(read: Callable[[Sequence], torch.Tensor], items: Sequence, bar: tqdm,
               size: int = 2048) -> torch.Tensor:
    """``read(items)``, ``size`` items at a time (the rows concatenated), counting them on
    ``bar``: e.g. image files decoded."""
    parts = []
    for start in range(0, len(items), size):
        parts.append(read(items[start:start + size]))
        bar.update(len(parts[-1]))
    return torch.cat(parts)


def stage(bar: tqdm, name: str) -> None:
    """Name what ``bar``'s work is doing now; drawn at once if the bar is already shown (a
    bar with a ``delay`` shows only once its work has taken that long)."""
    bar.set_description_str(name, refresh=not bar.disable
                            and bar.format_dict["elapsed"] >= bar.delay)


def training_bar(config: TrainConfig, iteration: int, seconds: float, progress: bool) -> tqdm:
    """The bar of meta-training: it counts what bounds the run, the budget's seconds
    (``seconds`` spent so far) when there is a time budget, else the iterations (``iteration``
    done so far)."""
    desc = f"{config.algorithm} on {config.task}"
    if config.time_budget:
        bar = progress_bar(progress, desc=desc, total=config.time_budget,
                           initial=min(seconds, config.time_budget), bar_format=BUDGET_FORMAT)
        bar.set_postfix_str(f"iteration {iteration}", refresh=False)
        return bar
    return progress_bar(progress, desc=desc, total=config.iterations, initial=iteration,
                        unit="it")


def advance(bar: tqdm, config: TrainConfig, iteration: int, seconds: float,
            loss: float | None = None) -> None:
    """Move training's bar to ``iteration`` done and ``seconds`` of the budget spent, showing
    ``loss`` (the last one logged) when given."""
    shown = [f"iteration {iteration}"] if config.time_budget else []
    if loss is not None:
        shown.append(f"loss={loss:.4f}")
    if shown:
        bar.set_postfix_str(", ".join(shown), refresh=False)
    bar.update((min(seconds, config.time_budget) if config.time_budget else iteration) - bar.n)


__all__ = ["advance", "in_batches", "progress_bar", "stage", "training_bar"]
