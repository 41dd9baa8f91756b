"""Omniglot N-way K-shot classification (Lake, Salakhutdinov & Tenenbaum, Science 2015).

A task draws ``n_way`` classes from a split's class pool and ``k_shot + query_shots``
distinct drawings of each; a class is a character at one of four rotations (k·90°, the
augmentation of Santoro et al., 2016 and Vinyals et al., 2016). Loss: cross-entropy.

Data, from the two upstream zips (``images_background.zip``, ``images_evaluation.zip``):

* **located** by :func:`resolve_root`, and downloaded when absent (:func:`download_archive`:
  streamed to a hidden ``.part`` file beside the target, verified, then renamed);
* **verified by content**, not archive bytes: the digest is the sha256 of the sorted lines
  ``"<path in zip>\\t<sha256 of the PNG bytes>\\n"`` over every ``.png`` entry, so a repacked
  archive with the same images verifies and any missing, extra or altered image is refused;
* **decoded once** to uint8 ``[characters, 20, 28, 28]``: the 1-bit PNG → ``L`` → 28x28
  with ``Image.BOX``, then inverted so that **strokes are 255 and the background 0** (the
  sampler returns ``pixel / 255``: strokes 1.0, background 0.0, as most MAML code does).
  BOX averages each output pixel's exact 3.75x3.75 footprint, so a pixel's value is the
  fraction of it covered by ink: antialiased, with none of LANCZOS's ringing (which PIL
  would clip, unevenly, at 0 and 255). The MAML paper's ``resize_images.py`` asks for
  LANCZOS, but on mode ``1`` images Pillow silently resizes with NEAREST, so its images
  are binary. Cached as ``omniglot28-<digest[:16]>.pt``, keyed by the content digest, so a
  changed archive never reuses a stale cache.

Characters are ordered background set first, then evaluation set, each sorted by
``"Alphabet/characterNN"``; drawings are sorted by file name.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import pickle
import stat
import tempfile
import threading
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import torch

from metazoo.tasks.base import TaskBatch, check_counts

BASE_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
ROOT_ENV = "METAZOO_OMNIGLOT_DIR"
URL_ENV = "METAZOO_OMNIGLOT_URL"
CACHE_ENV = "METAZOO_CACHE_DIR"
IMAGE_SIZE = 28
DRAWINGS = 20  # drawings of every character
CACHE_FORMAT = 1  # bump when the decoding changes, so old cache files are rebuilt
BUILTIN_SEED = 1623  # seed of the "vinyals-builtin" character shuffle; never change it
BUILTIN_SIZES = (1100, 100, 423)  # train / val / test characters of "vinyals-builtin"
#: split name → the parts it has.
SPLITS: dict[str, tuple[str, ...]] = {
    "vinyals": ("train", "val", "test", "trainval"),
    "vinyals-builtin": ("train", "val", "test", "trainval"),
    "lake": ("train", "test"),
}
HOW_TO_FIX = (
    "Delete the file and run again to download a fresh copy, or point root (the CLI's "
    f"--data-dir, or ${ROOT_ENV}) at a folder holding verified copies of "
    "images_background.zip and images_evaluation.zip."
)


class OmniglotDataError(RuntimeError):
    """The Omniglot files are missing, could not be downloaded, or are not the expected ones."""


@dataclass(frozen=True)
class Archive:
    """One upstream zip and the content it must hold."""

    name: str  # file stem, also the top folder inside the zip
    digest: str  # content digest (see the module docstring)
    num_images: int

    @property
    def filename(self) -> str:
        return f"{self.name}.zip"


BACKGROUND = Archive(
    "images_background", "75288906d655255988a488b7e81923d9c2194356d17b82642d9c51b19bd58594", 19_280
)
EVALUATION = Archive(
    "images_evaluation", "8e90acd002099b58eaaf049e5d5d404f36553a151330c05a2c9c30cde54f4d42", 13_180
)
ARCHIVES = (BACKGROUND, EVALUATION)


# ----------------------------------------------------------------------------- locating


def resolve_root(root: str | Path | None = None) -> Path:
    """The Omniglot folder: ``root``, else ``$METAZOO_OMNIGLOT_DIR``, else a user cache folder."""
    if root is None or str(root) == "":
        root = os.environ.get(ROOT_ENV) or _user_cache() / "omniglot"
    return Path(root).expanduser()


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
    return _user_cache()


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "metazoo"


def _writable(folder: Path) -> bool:
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) and os.access(folder, os.W_OK)


# ----------------------------------------------------------------------------- verifying


def content_digest(images: Sequence[tuple[str, bytes]]) -> str:
    """sha256 over the sorted lines ``"<path>\\t<sha256 of bytes>\\n"`` of ``(path, png)`` pairs."""
    lines = sorted(f"{name}\t{hashlib.sha256(data).hexdigest()}\n" for name, data in images)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def verify_archive(path: str | Path, archive: Archive) -> list[tuple[str, bytes]]:
    """Check that the zip at ``path`` holds exactly ``archive``'s images.

    Returns:
        Its ``.png`` entries as ``(path in zip, bytes)``, sorted by path.

    Raises:
        OmniglotDataError: unreadable zip (truncated, corrupt, CRC error), wrong image
            count, or wrong content digest.
    """
    images, problem = _inspect(path, archive)
    if problem is not None:
        raise OmniglotDataError(f"{path}: {problem}. {HOW_TO_FIX}")
    return images


def _inspect(path: str | Path, archive: Archive) -> tuple[list[tuple[str, bytes]], str | None]:
    """The zip's PNG entries, and what is wrong with them (None when they verify)."""
    try:
        with zipfile.ZipFile(path) as opened:
            names = sorted(n for n in opened.namelist() if n.endswith(".png"))
            images = [(name, opened.read(name)) for name in names]
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as error:
        return [], f"not a readable zip archive ({error})"
    if len(images) != archive.num_images:
        return images, (f"it holds {len(images)} PNG images where {archive.filename} has "
                        f"{archive.num_images}")
    digest = content_digest(images)
    if digest != archive.digest:
        return images, (f"its content digest {digest[:16]}… is not the expected "
                        f"{archive.digest[:16]}… of {archive.filename} (an image is altered, "
                        "missing or replaced)")
    return images, None


# ----------------------------------------------------------------------------- downloading


def download_archive(
    archive: Archive, root: str | Path, base_url: str | None = None, timeout: float = 60.0
) -> Path:
    """Download ``archive`` into ``root``, verify it, and only then move it into place.

    The bytes stream to a hidden ``.<name>.zip.*.part`` file in ``root`` (never a name a later
    run trusts), which is deleted on any failure and renamed atomically on success.

    Args:
        archive: what to fetch and the content it must have.
        root: destination folder (created if needed).
        base_url: folder URL holding the zips; default ``$METAZOO_OMNIGLOT_URL`` or upstream.
        timeout: seconds of socket inactivity before giving up.

    Returns:
        The path of the verified zip.

    Raises:
        OmniglotDataError: HTTP error, interrupted transfer, unwritable ``root``, or content
            that fails :func:`verify_archive`.
    """
    base = (base_url or os.environ.get(URL_ENV) or BASE_URL).rstrip("/")
    url = f"{base}/{archive.filename}"
    target = Path(root).expanduser() / archive.filename
    manual = (
        f"Download it by hand from {url} into {target.parent}, or point root (the CLI's "
        f"--data-dir, or ${ROOT_ENV}) at a folder holding a local copy."
    )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, partial_name = tempfile.mkstemp(
            prefix=f".{archive.filename}.", suffix=".part", dir=target.parent
        )
    except OSError as error:
        raise OmniglotDataError(
            f"cannot write {archive.filename} to {target.parent} ({error}). {manual}"
        ) from error
    partial = Path(partial_name)
    try:
        with os.fdopen(handle, "wb") as out:
            received, expected = _stream(url, out, timeout, archive.filename, manual)
        if expected is not None and received != expected:
            raise OmniglotDataError(
                f"download of {archive.filename} from {url} was interrupted: received "
                f"{received} of {expected} bytes. Run again, or: {manual}"
            )
        _, problem = _inspect(partial, archive)
        if problem is not None:
            raise OmniglotDataError(
                f"downloaded {archive.filename} from {url} is not the expected archive: "
                f"{problem}; nothing was kept. {manual}"
            )
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


def _stream(url: str, out, timeout: float, filename: str, manual: str) -> tuple[int, int | None]:
    """Copy ``url`` into ``out``; return (bytes received, Content-Length or None)."""
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None else None
            while chunk := response.read(1 << 20):
                out.write(chunk)
                received += len(chunk)
    except urllib.error.HTTPError as error:
        what = "not found there" if error.code == 404 else "the server refused it"
        raise OmniglotDataError(
            f"could not download {filename} from {url}: HTTP {error.code} {error.reason} "
            f"({what}). {manual}"
        ) from error
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        raise OmniglotDataError(
            f"download of {filename} from {url} failed after {received} bytes: "
            f"{getattr(error, 'reason', None) or error!r}. {manual}"
        ) from error
    return received, expected


def ensure_archives(
    root: str | Path | None = None,
    download: bool = True,
    base_url: str | None = None,
    archives: Sequence[Archive] = ARCHIVES,
) -> dict[str, Path]:
    """Paths of ``archives`` in ``root``, downloading the missing ones when ``download``.

    Archives already present are not verified here (:func:`load_archive` does that).
    """
    root = resolve_root(root)
    paths = {}
    for archive in archives:
        path = root / archive.filename
        if not path.is_file():
            if not download:
                raise OmniglotDataError(
                    f"{path} is missing and downloading is disabled. Point root (the CLI's "
                    f"--data-dir, or ${ROOT_ENV}) at a folder holding {archive.filename}, or "
                    "allow the download."
                )
            download_archive(archive, root, base_url)
        paths[archive.name] = path
    return paths


# ----------------------------------------------------------------------------- decoding


class ArchiveImages(NamedTuple):
    """One archive decoded."""

    images: torch.Tensor  # [C, 20, 28, 28] uint8, strokes 255, background 0
    characters: tuple[str, ...]  # "Alphabet/characterNN", sorted
    digest: str  # content digest of the archive


def decode_images(
    images: Sequence[tuple[str, bytes]], workers: int | None = None
) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Decode ``(path, png)`` pairs laid out ``<top>/<Alphabet>/<characterNN>/<file>.png``.

    Args:
        images: the archive's PNG entries (any order).
        workers: decoding threads (Pillow releases the GIL while decoding and resizing:
            2 threads build the full set in 7 s instead of 10.5 s on 2 busy cores);
            default ``min(4, cpu count)``.

    Returns:
        uint8 ``[C, 20, 28, 28]`` (strokes 255) and the sorted character names.
    """
    drawings: dict[str, list[tuple[str, bytes]]] = {}
    for name, data in images:
        parts = name.split("/")
        if len(parts) != 4:
            raise OmniglotDataError(
                f"unexpected image path {name!r} (want top/Alphabet/characterNN/file.png)"
            )
        drawings.setdefault(f"{parts[1]}/{parts[2]}", []).append((parts[3], data))
    characters = tuple(sorted(drawings))
    for character in characters:
        if len(drawings[character]) != DRAWINGS:
            raise OmniglotDataError(
                f"character {character} has {len(drawings[character])} drawings, not {DRAWINGS}"
            )
    try:
        import PIL  # noqa: F401  (imported where used; checked here for a clear message)
    except ImportError as error:
        raise ImportError("decoding Omniglot needs Pillow: pip install pillow") from error
    pngs = [data for c in characters for _, data in sorted(drawings[c])]
    chunks = [pngs[start:start + 256] for start in range(0, len(pngs), 256)]
    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        pixels = b"".join(pool.map(_decode_chunk, chunks))
    decoded = torch.frombuffer(bytearray(pixels), dtype=torch.uint8)
    decoded = decoded.view(len(characters), DRAWINGS, IMAGE_SIZE, IMAGE_SIZE)
    return 255 - decoded, characters  # invert: strokes were black (0) on white (255)


def _decode_chunk(pngs: list[bytes]) -> bytes:
    from PIL import Image  # optional until Omniglot is used

    out = []
    for png in pngs:
        with Image.open(io.BytesIO(png)) as image:
            small = image.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX)
        out.append(small.tobytes())
    return b"".join(out)


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
        _write_atomic(index_path, json.dumps(index, indent=1, sort_keys=True).encode())
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
    _write_atomic(target, buffer.getvalue())
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
    # Whatever makes a cache file unreadable, it is rebuilt, never trusted.
    except (RuntimeError, OSError, EOFError, KeyError, TypeError, ValueError, AttributeError,
            pickle.UnpicklingError) as error:
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


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, then ``os.replace``: readers never see half."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise OmniglotDataError(
            f"cannot write the Omniglot cache in {path.parent} ({error}); pass a writable "
            f"cache_dir or set ${CACHE_ENV}"
        ) from error
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------- the whole set


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
        root: data folder (see :func:`resolve_root`).
        cache_dir: decoded-tensor folder (see :func:`resolve_cache_dir`).
        download: fetch missing archives; when False, a missing archive is an error.
        base_url: where to download from (see :func:`download_archive`).
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


# ----------------------------------------------------------------------------- splits


def class_pool(
    data: OmniglotData,
    split: str = "vinyals",
    part: str = "train",
    rotations: bool | None = None,
    split_dir: str | Path | None = None,
    root: str | Path | None = None,
) -> torch.Tensor:
    """The classes of one part of a split, as rows ``(character index, quarter turns)``.

    Splits:
        ``"vinyals"``: the files ``<split_dir or root/splits/vinyals>/<part>.txt`` of Vinyals
        et al. (2016), one class ``Alphabet/characterNN/rotDDD`` a line; train 1,028
        characters, val 172, test 423, each at 4 rotations.
        ``"vinyals-builtin"``: needs no file. All 1,623 characters are shuffled by
        ``torch.rand`` (float64) from a generator seeded with ``BUILTIN_SEED`` and cut into
        1,100 train / 100 val / 423 test characters (the MAML paper's 1,200 / 423, with 100 of
        the 1,200 held out), each at 4 rotations.
        ``"lake"``: the background set (964 characters, 30 alphabets) for train and the
        evaluation set (659, 20 other alphabets) for test; no rotations by default.
        ``"trainval"`` is train plus val.

    Args:
        rotations: True gives every character its 4 rotations, False only 0°; None keeps the
            split's own choice (the file's lines, 4 for "vinyals-builtin", 1 for "lake").

    Returns:
        int64 ``[P, 2]``: character row in ``data.images``, rotation ``k`` (``k·90°``).
    """
    check_split(split, part)
    if split == "vinyals":
        folder = Path(split_dir) if split_dir is not None else resolve_root(root) / "splits/vinyals"
        pool = _read_split_file(data, folder / f"{part}.txt")
        default_rotations = None
    elif split == "vinyals-builtin":
        count = len(data.characters)
        shuffled = torch.rand(count, generator=torch.Generator().manual_seed(BUILTIN_SEED),
                              dtype=torch.float64).argsort(stable=True)
        train, val, _ = BUILTIN_SIZES
        bounds = {"train": (0, train), "val": (train, train + val),
                  "trainval": (0, train + val), "test": (train + val, count)}[part]
        pool = _with_rotation(shuffled[slice(*bounds)], 0)
        default_rotations = True
    else:
        rows = (0, data.num_background) if part == "train" else (data.num_background,
                                                                  len(data.characters))
        pool = _with_rotation(torch.arange(*rows), 0)
        default_rotations = False
    if rotations is None:
        rotations = default_rotations
    if rotations is None:
        return pool
    characters = pool[:, 0].unique(sorted=True) if split == "vinyals" else pool[:, 0]
    if not rotations:
        return _with_rotation(characters, 0)
    # Character-major: (c0, 0), (c0, 1), (c0, 2), (c0, 3), (c1, 0), …
    return torch.stack([characters.repeat_interleave(4), torch.arange(4).repeat(len(characters))],
                       dim=1)


def check_split(split: str, part: str) -> None:
    """Raise a clear ``ValueError`` for an unknown split or part."""
    if split not in SPLITS:
        raise ValueError(f"unknown Omniglot split {split!r}; choose one of: {', '.join(SPLITS)}")
    if part not in SPLITS[split]:
        raise ValueError(
            f"split {split!r} has no part {part!r}; choose one of: {', '.join(SPLITS[split])}"
        )


def _with_rotation(characters: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    return torch.stack([characters, torch.full_like(characters, quarter_turns)], dim=1)  # [P, 2]


def _read_split_file(data: OmniglotData, path: Path) -> torch.Tensor:
    try:
        lines = path.read_text().split()
    except OSError as error:
        raise OmniglotDataError(
            f"cannot read the split file {path} ({error}). Pass split_dir= pointing at the "
            "folder holding train.txt/val.txt/test.txt, or use split='vinyals-builtin', "
            "which needs no file."
        ) from error
    rows = []
    for number, line in enumerate(lines, start=1):
        character, _, rotation = line.rpartition("/")
        degrees = rotation.removeprefix("rot")
        if character not in data.index or degrees not in ("000", "090", "180", "270"):
            raise OmniglotDataError(
                f"{path}:{number}: not a known Alphabet/characterNN/rotDDD: {line!r}"
            )
        rows.append((data.index[character], int(degrees) // 90))
    if not rows:
        raise OmniglotDataError(f"split file {path} is empty")
    return torch.tensor(rows, dtype=torch.int64)  # [P, 2]


# ----------------------------------------------------------------------------- sampler


class TaskIndices(NamedTuple):
    """What a batch of tasks is made of, before any pixel is gathered.

    Label ``n`` of task ``t`` is character ``characters[t, n]`` rotated by
    ``rotations[t, n]`` quarter turns; support position ``s`` shows drawing
    ``support_drawings[t, s]`` of the class labelled ``support_y[t, s]``.
    """

    characters: torch.Tensor  # [T, N] row in OmniglotData.images
    rotations: torch.Tensor  # [T, N] quarter turns
    support_drawings: torch.Tensor  # [T, N*K] drawing 0..19
    support_y: torch.Tensor  # [T, N*K] label 0..N-1
    query_drawings: torch.Tensor  # [T, N*Q]
    query_y: torch.Tensor  # [T, N*Q]


@dataclass(frozen=True)
class Omniglot:
    """N-way K-shot Omniglot tasks: images ``[1, 28, 28]`` float32, strokes 1.0.

    Building one loads the data (shared by every instance in the process), so missing or
    wrong data and impossible sizes fail here, not at the first batch.

    Attributes:
        n_way: classes per task.
        k_shot: support drawings per class.
        query_shots: query drawings per class (``k_shot + query_shots <= 20``).
        split: ``"vinyals"``, ``"vinyals-builtin"`` or ``"lake"`` (see :func:`class_pool`).
        part: ``"train"``, ``"val"``, ``"test"`` or ``"trainval"``.
        root: data folder (see :func:`resolve_root`).
        download: fetch the archives when they are missing.
        rotations: see :func:`class_pool`.
        split_dir: folder of the "vinyals" split files (default ``<root>/splits/vinyals``).
        cache_dir: folder of decoded tensors (see :func:`resolve_cache_dir`).
        base_url: where to download from (see :func:`download_archive`).
    """

    n_way: int = 5
    k_shot: int = 1
    query_shots: int = 15
    split: str = "vinyals"
    part: str = "train"
    root: str | Path | None = None
    download: bool = True
    rotations: bool | None = None
    split_dir: str | Path | None = None
    cache_dir: str | Path | None = None
    base_url: str | None = None
    loss: str = "cross_entropy"
    data: OmniglotData = field(init=False, repr=False, compare=False)
    pool: torch.Tensor = field(init=False, repr=False, compare=False)  # [P, 2]

    def __post_init__(self) -> None:
        check_counts(n_way=self.n_way, k_shot=self.k_shot, query_shots=self.query_shots)
        if self.k_shot + self.query_shots > DRAWINGS:
            raise ValueError(
                f"k_shot + query_shots = {self.k_shot + self.query_shots} distinct drawings per "
                f"class are asked for, but every Omniglot character has only {DRAWINGS}"
            )
        check_split(self.split, self.part)  # before loading anything
        data = load_omniglot(self.root, self.cache_dir, self.download, self.base_url)
        pool = class_pool(data, self.split, self.part, self.rotations, self.split_dir, self.root)
        if self.n_way > len(pool):
            raise ValueError(
                f"n_way={self.n_way} classes per task, but the {self.split}/{self.part} pool has "
                f"only {len(pool)} classes"
            )
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "pool", pool)

    def sample_indices(self, num_tasks: int, generator: torch.Generator) -> TaskIndices:
        """Draw ``num_tasks`` tasks as indices (every random number comes from ``generator``).

        Classes are distinct within a task and drawn in a uniformly random order, which is
        their label order; each class gets ``k_shot + query_shots`` distinct drawings. Within
        each shot the ``n_way`` examples come in a fresh random label order, so labels are a
        permutation of ``0..N-1`` repeated and position says nothing about the label.
        """
        check_counts(num_tasks=num_tasks)
        tasks, ways, shots, queries = num_tasks, self.n_way, self.k_shot, self.query_shots
        # The top n_way of uniform keys: n_way distinct pool rows in random order.
        picked = torch.rand((tasks, len(self.pool)), generator=generator).topk(ways).indices
        classes = self.pool[picked]  # [T, N, 2]
        drawings = torch.rand((tasks, ways, DRAWINGS), generator=generator).argsort(dim=-1)
        drawings = drawings[..., : shots + queries]  # [T, N, K+Q], distinct per class
        support_y = torch.rand((tasks, shots, ways), generator=generator).argsort(dim=-1)
        query_y = torch.rand((tasks, queries, ways), generator=generator).argsort(dim=-1)
        task = torch.arange(tasks)[:, None, None]
        # Shot k of the class labelled y uses drawing column k (support) or K + k (query).
        support_drawings = drawings[task, support_y, torch.arange(shots)[None, :, None]]
        query_drawings = drawings[task, query_y, shots + torch.arange(queries)[None, :, None]]
        return TaskIndices(
            classes[..., 0], classes[..., 1],
            support_drawings.reshape(tasks, -1), support_y.reshape(tasks, -1),  # [T, K*N]
            query_drawings.reshape(tasks, -1), query_y.reshape(tasks, -1),  # [T, Q*N]
        )

    def gather(self, indices: TaskIndices) -> TaskBatch:
        """The images and labels that ``indices`` name, rotated, as a :class:`TaskBatch`."""
        tasks, support = indices.support_y.shape
        labels = torch.cat([indices.support_y, indices.query_y], dim=1)  # [T, S+Q]
        drawings = torch.cat([indices.support_drawings, indices.query_drawings], dim=1)
        rows = indices.characters.gather(1, labels) * DRAWINGS + drawings  # [T, S+Q]
        turns = indices.rotations.gather(1, labels).view(-1)  # [T*(S+Q)]
        # One flat index_select (much faster than two-tensor advanced indexing), then one
        # batched rot90 per angle over the images that need it.
        flat = self.data.images.view(-1, IMAGE_SIZE, IMAGE_SIZE)  # [C*20, 28, 28]
        pixels = flat.index_select(0, rows.view(-1))  # [T*(S+Q), 28, 28] uint8, a copy
        for k in (1, 2, 3):
            where = (turns == k).nonzero().squeeze(1)
            if len(where):
                rotated = torch.rot90(pixels.index_select(0, where), k, dims=(-2, -1))
                pixels.index_copy_(0, where, rotated)
        images = pixels.view(tasks, -1, 1, IMAGE_SIZE, IMAGE_SIZE).float().div_(255)
        return TaskBatch(
            images[:, :support], indices.support_y, images[:, support:], indices.query_y
        )

    def sample(self, num_tasks: int, generator: torch.Generator) -> TaskBatch:
        """``num_tasks`` tasks: x float32 ``[T, N*K, 1, 28, 28]``, y int64 ``[T, N*K]``
        (query: ``N*Q``); the same generator state gives the same batch."""
        return self.gather(self.sample_indices(num_tasks, generator))
