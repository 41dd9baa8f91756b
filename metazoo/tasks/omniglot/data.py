"""The whole Omniglot set, verified and decoded once: a disk cache and a per-process cache.

Decoded pixels are cached as ``omniglot28-<digest[:16]>.pt``, keyed by the archive's content
digest, so a changed archive never reuses a stale cache. Characters are ordered background
set first, then evaluation set.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import threading
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import torch

from metazoo.fileio import atomic_write_data
from metazoo.tasks.omniglot.decode import DRAWINGS, IMAGE_SIZE, decode_images
from metazoo.tasks.omniglot.files import (
    ARCHIVES,
    Archive,
    OmniglotDataError,
    ensure_archives,
    resolve_root,
    user_cache,
    verify_archive,
)

CACHE_ENV = "METAZOO_CACHE_DIR"
CACHE_FORMAT = 1  # bump when the decoding changes, so old cache files are rebuilt


def resolve_cache_dir(root: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Where decoded tensors go: ``cache_dir``, else ``$METAZOO_CACHE_DIR``, else
    ``<root>/cache`` when that can be written, else ``~/.cache/metazoo``.

    A folder without write permission bits counts as read-only even for root, so a shared
    read-only data folder is never written to.
    """
    if cache_dir is None or str(cache_dir) == "":
        cache_dir = os.environ.get(CACHE_ENV) or None
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = Path(root).expanduser()
    inside = root / "cache"
    if _writable(inside if inside.is_dir() else root):
        return inside
    return user_cache()


def _writable(folder: Path) -> bool:
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) and os.access(folder, os.W_OK)


class ArchiveImages(NamedTuple):
    """One archive decoded."""

    images: torch.Tensor  # [C, 20, 28, 28] uint8, strokes 255, background 0
    characters: tuple[str, ...]  # "Alphabet/characterNN", sorted
    digest: str  # content digest of the archive


def cache_path(cache_dir: str | Path, digest: str) -> Path:
    """The cache file of the archive whose content digest is ``digest``."""
    return Path(cache_dir) / f"omniglot28-{digest[:16]}.pt"


def load_archive(
    path: str | Path, archive: Archive, cache_dir: str | Path, workers: int | None = None
) -> ArchiveImages:
    """Verify the zip at ``path`` and return its decoded images, from the cache when there.

    Verifying content means unzipping every image (about a second), so the cache folder
    also keeps ``omniglot-verified.json``: sha256 of archive *bytes* → content digest. A
    byte-identical archive is then recognised by one fast file hash; any other archive is
    verified in full. Either way the cache file is chosen by the content digest.

    Raises:
        OmniglotDataError: the archive fails :func:`verify_archive`.
    """
    cache_dir = Path(cache_dir)
    file_hash = _file_sha256(path)
    index_path = cache_dir / "omniglot-verified.json"
    index = _read_json(index_path)
    images = None
    if index.get(file_hash) != archive.digest:
        images = verify_archive(path, archive)
        index[file_hash] = archive.digest
        _write(index_path, json.dumps(index, indent=1, sort_keys=True).encode())
    target = cache_path(cache_dir, archive.digest)
    cached = _read_cache(target, archive)
    if cached is not None:
        return cached
    if images is None:
        images = verify_archive(path, archive)
    decoded, characters = decode_images(images, workers)
    buffer = io.BytesIO()
    torch.save({"format": CACHE_FORMAT, "digest": archive.digest, "images": decoded,
                "characters": list(characters)}, buffer)
    _write(target, buffer.getvalue())
    return ArchiveImages(decoded, characters, archive.digest)


def _read_cache(path: Path, archive: Archive) -> ArchiveImages | None:
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, weights_only=True)
        images, characters = saved["images"], tuple(saved["characters"])
        valid = (
            saved["format"] == CACHE_FORMAT and saved["digest"] == archive.digest
            and images.dtype == torch.uint8
            and images.shape == (len(characters), DRAWINGS, IMAGE_SIZE, IMAGE_SIZE)
            and len(characters) * DRAWINGS == archive.num_images
        )
    # Whatever makes a cache file unreadable (torch.load raises many kinds of errors for a
    # damaged or foreign file), it is rebuilt, never trusted.
    except Exception as error:  # noqa: BLE001
        warnings.warn(f"rebuilding unreadable Omniglot cache {path} ({error!r})", stacklevel=3)
        return None
    return ArchiveImages(images, characters, archive.digest) if valid else None


def _file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: bytes) -> None:
    """Write a cache file atomically, or say in one line which folder to use instead."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_data(path, data)
    except OSError as error:
        raise OmniglotDataError(
            f"cannot write the Omniglot cache in {path.parent} ({error}); pass a writable "
            f"cache_dir or set ${CACHE_ENV}"
        ) from error


@dataclass(frozen=True, eq=False)
class OmniglotData:
    """All 1,623 characters: the background set's 964, then the evaluation set's 659."""

    images: torch.Tensor  # [1623, 20, 28, 28] uint8, strokes 255, background 0
    characters: tuple[str, ...]  # "Alphabet/characterNN"
    num_background: int

    @cached_property
    def index(self) -> dict[str, int]:
        """Character name → row of ``images``."""
        return {name: row for row, name in enumerate(self.characters)}


_LOADED: dict[tuple[str, ...], OmniglotData] = {}
_LOADING = threading.Lock()


def load_omniglot(
    root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
    base_url: str | None = None,
    workers: int | None = None,
) -> OmniglotData:
    """Locate (or download), verify, decode and cache both archives; once per process.

    The result is kept per process, keyed by the data folder and the expected digests, so
    every sampler built on the same folder shares one tensor.

    Args:
        root: data folder (see :func:`~.files.resolve_root`).
        cache_dir: decoded-tensor folder (see :func:`resolve_cache_dir`).
        download: fetch missing archives; when False, a missing archive is an error.
        base_url: where to download from (see :func:`~.files.download_archive`).
        workers: decoding threads for a first build.
    """
    root = resolve_root(root)
    key = (str(root.resolve()), *(archive.digest for archive in ARCHIVES))
    with _LOADING:
        if key not in _LOADED:
            paths = ensure_archives(root, download, base_url)
            cache_dir = resolve_cache_dir(root, cache_dir)
            parts = [load_archive(paths[a.name], a, cache_dir, workers) for a in ARCHIVES]
            _LOADED[key] = OmniglotData(
                images=torch.cat([part.images for part in parts]),
                characters=tuple(name for part in parts for name in part.characters),
                num_background=len(parts[0].characters),
            )
        return _LOADED[key]
