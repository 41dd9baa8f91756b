"""The whole Omniglot set, verified and decoded once: a disk cache and a per-process cache.

Decoded pixels are cached (:mod:`metazoo.tasks.cache`) as ``omniglot28-<digest[:16]>.pt``,
keyed by the archive's content digest, so a changed archive never reuses a stale cache, and
checked against the digest of their own bytes on every load. Characters are ordered
background set first, then evaluation set.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import torch

from metazoo.fileio import atomic_write_data
from metazoo.tasks.cache import (
    CACHE_ENV,
    cache_file,
    load_cached,
    resolve_cache_dir,
    save_cached,
)
from metazoo.tasks.omniglot.decode import DRAWINGS, IMAGE_SIZE, decode_images
from metazoo.tasks.omniglot.files import (
    ARCHIVES,
    Archive,
    OmniglotDataError,
    ensure_archives,
    resolve_root,
    verify_archive,
)

CACHE_FORMAT = 1  # bump when the decoding changes, so old cache files are rebuilt


class ArchiveImages(NamedTuple):
    """One archive decoded."""

    images: torch.Tensor  # [C, 20, 28, 28] uint8, strokes 255, background 0
    characters: tuple[str, ...]  # "Alphabet/characterNN", sorted
    digest: str  # content digest of the archive


def cache_path(cache_dir: str | Path, digest: str) -> Path:
    """The cache file of the archive whose content digest is ``digest``."""
    return cache_file(cache_dir, f"omniglot{IMAGE_SIZE}", digest)


def load_archive(
    path: str | Path, archive: Archive, cache_dir: str | Path, workers: int | None = None
) -> ArchiveImages:
    """Verify the zip at ``path`` and return its decoded images, from the cache when there.

    Verifying content means unzipping every image (about a second), so the cache folder
    also keeps ``omniglot-verified.json``: sha256 of archive *bytes* → content digest. A
    byte-identical archive is then recognised by one fast file hash; any other archive is
    verified in full. Either way the cache file is chosen by the content digest, and its
    pixels are checked against the digest stored with them (a damaged file is rebuilt).

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
    key = f"{archive.digest} decoding {CACHE_FORMAT}"
    cached = load_cached(target, key)
    if cached is not None:
        decoded, meta = cached
        characters = tuple(meta.get("characters", ()))
        if (decoded.dtype == torch.uint8 and len(characters) * DRAWINGS == archive.num_images
                and decoded.shape == (len(characters), DRAWINGS, IMAGE_SIZE, IMAGE_SIZE)):
            return ArchiveImages(decoded, characters, archive.digest)
    if images is None:
        images = verify_archive(path, archive)
    decoded, characters = decode_images(images, workers)
    save_cached(target, key, decoded, {"characters": list(characters)})
    return ArchiveImages(decoded, characters, archive.digest)


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
            f"cannot write the Omniglot cache in {path.parent} ({error.strerror or error}); "
            f"pass a writable cache_dir or set ${CACHE_ENV}"
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
    folder = resolve_root(root)
    key = (str(folder.resolve()), *(archive.digest for archive in ARCHIVES))
    with _LOADING:
        if key not in _LOADED:
            paths = ensure_archives(root, download, base_url)  # refuses a mistyped root
            cache_dir = resolve_cache_dir(cache_dir)
            parts = [load_archive(paths[a.name], a, cache_dir, workers) for a in ARCHIVES]
            _LOADED[key] = OmniglotData(
                images=torch.cat([part.images for part in parts]),
                characters=tuple(name for part in parts for name in part.characters),
                num_background=len(parts[0].characters),
            )
        return _LOADED[key]
