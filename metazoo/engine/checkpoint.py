"""Atomic checkpoint files: written to a temporary file in the same folder, flushed to disk,
then renamed over the old one, so an interrupted write never leaves a broken checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from metazoo.fileio import atomic_write_bytes, write_json

__all__ = ["atomic_write_bytes", "load_checkpoint", "save_checkpoint", "write_json"]


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Save ``state`` with ``torch.save``, atomically."""
    atomic_write_bytes(path, lambda file: torch.save(state, file))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, with a clear error if unusable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: was the run started with this --out?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # any unpickling failure means the file is unusable
        raise ValueError(f"checkpoint {path} is corrupt or not a metazoo checkpoint ({error})") from error
    required = {"format", "config", "iteration", "params", "optimizer", "scheduler", "generator"}
    if not isinstance(state, dict) or not required <= set(state):
        raise ValueError(f"checkpoint {path} is not a metazoo checkpoint (missing "
                         f"{', '.join(sorted(required - set(state or {})))})")
    return state
