"""A disk cache of decoded images, keyed by the content they were decoded from, verified on load.

Decoding thousands of images takes seconds to minutes, so every image task family decodes
once and keeps the pixels in one file per data set:
``<cache_dir>/<name>-<key[:16]>.pt``, holding ``{"format", "key", "sha256", "images",
"meta"}``. ``key`` is a digest of the *source* content and of the decoding settings (size,
channels), so a changed source or setting never reuses a stale file. ``sha256`` is a digest
of the decoded pixel bytes themselves, checked on every load: a file damaged on disk, or
edited, is rebuilt with a warning instead of silently training on wrong pixels.

The cache lives in the user's cache folder (:func:`resolve_cache_dir`), never in a data
folder unless the user points ``cache_dir`` (or ``$METAZOO_CACHE_DIR``) there. Files are
read with ``torch.load(weights_only=True)``: only tensors and plain containers, no code.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from metazoo.fileio import atomic_write_bytes
from metazoo.tasks.base import DataError

CACHE_ENV = "METAZOO_CACHE_DIR"
FORMAT = 2  # bump when this file layout changes; other formats are rebuilt without a word


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """Where decoded images go: ``cache_dir``, else ``$METAZOO_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/metazoo``, else ``~/.cache/metazoo``."""
    if cache_dir is None or str(cache_dir) == "":
        cache_dir = os.environ.get(CACHE_ENV) or None
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "metazoo"


def cache_file(cache_dir: str | Path, name: str, key: str) -> Path:
    """The cache file of data set ``name`` decoded from the content whose digest is ``key``."""
    return Path(cache_dir) / f"{name}-{key[:16]}.pt"


def pixels_digest(images: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes (C order)."""
    digest = hashlib.sha256(f"{images.dtype} {tuple(images.shape)}\n".encode())
    digest.update(images.contiguous().view(torch.uint8).numpy().data)
    return digest.hexdigest()


def load_cached(path: str | Path, key: str) -> tuple[torch.Tensor, dict[str, Any]] | None:
    """The images and metadata stored at ``path`` for ``key``, or None when they must be built.

    None, silently, when there is no file or it is of another format or key; None with a
    warning when the file is unreadable or its pixels do not match the digest stored with
    them (the caller rebuilds it either way).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        # Mapped, not copied: the pages come from the OS file cache, shared with any other
        # process reading the same set, and a gigabyte-sized set loads without a copy.
        saved = torch.load(path, weights_only=True, mmap=True)
        if saved.get("format") != FORMAT or saved.get("key") != key:
            return None
        images, meta, expected = saved["images"], saved["meta"], saved["sha256"]
        if not isinstance(images, torch.Tensor) or not isinstance(meta, dict):
            raise TypeError("not a tensor and a metadata dict")
    # Whatever makes a cache file unreadable (torch.load raises many kinds of errors for a
    # damaged or foreign file), it is rebuilt, never trusted.
    except Exception as error:  # noqa: BLE001
        warnings.warn(f"rebuilding unreadable cache {path} ({error!r})", stacklevel=2)
        return None
    if pixels_digest(images) != expected:
        warnings.warn(f"rebuilding {path}: its pixels do not match the digest stored with them "
                      "(the file was damaged or edited)", stacklevel=2)
        return None
    return images, meta


def save_cached(path: str | Path, key: str, images: torch.Tensor, meta: dict[str, Any]) -> None:
    """Store ``images`` (any dtype) and plain-data ``meta`` for ``key``, atomically.

    Raises:
        DataError: the folder cannot be written (one line naming it and the fix).
    """
    path = Path(path)
    images = images.contiguous()
    record = {"format": FORMAT, "key": key, "sha256": pixels_digest(images), "images": images,
              "meta": meta}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Straight into the temporary file: a set can take gigabytes, so no copy in memory.
        atomic_write_bytes(path, lambda file: torch.save(record, file))
    except OSError as error:
        raise DataError(
            f"cannot write the decoded-image cache in {path.parent} ({error.strerror or error}); "
            f"pass a writable cache_dir or set ${CACHE_ENV}"
        ) from error
