"""Atomic checkpoint files: written to a temporary file in the same folder, flushed to disk,
then renamed over the old one, so an interrupted write never leaves a broken checkpoint."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(path, lambda file: file.write(text.encode()))
