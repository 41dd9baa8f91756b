"""The two upstream Omniglot zips: where they are, what they must hold, and how to fetch them.

An archive is **verified by content**, not by its bytes: the digest is the sha256 of the
sorted lines ``"<path in zip>\\t<sha256 of the PNG bytes>\\n"`` over every ``.png`` entry, so
a repacked archive with the same images verifies and any missing, extra or altered image is
refused. A missing archive is downloaded into memory, verified, and only then written
(atomically) into the data folder.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from metazoo.fileio import atomic_write_data
from metazoo.tasks.base import DataError

BASE_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
ROOT_ENV = "METAZOO_OMNIGLOT_DIR"
URL_ENV = "METAZOO_OMNIGLOT_URL"
HOW_TO_FIX = (
    "Delete the file and run again to download a fresh copy, or point data_dir (or "
    f"${ROOT_ENV}) at a folder holding verified copies of images_background.zip and "
    "images_evaluation.zip."
)


class OmniglotDataError(DataError):
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


def user_cache() -> Path:
    """``$XDG_CACHE_HOME/metazoo``, else ``~/.cache/metazoo``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "metazoo"


def resolve_root(root: str | Path | None = None) -> Path:
    """The Omniglot folder: ``root``, else ``$METAZOO_OMNIGLOT_DIR``, else a user cache folder."""
    if root is None or str(root) == "":
        root = os.environ.get(ROOT_ENV) or user_cache() / "omniglot"
    return Path(root).expanduser()


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
    images, problem = inspect_archive(path, archive)
    if problem is not None:
        raise OmniglotDataError(f"{path}: {problem}. {HOW_TO_FIX}")
    return images


def inspect_archive(
    path: str | Path | IO[bytes], archive: Archive
) -> tuple[list[tuple[str, bytes]], str | None]:
    """The zip's PNG entries (``path`` may be an open file), and what is wrong with them
    (None when they verify)."""
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
    """Download ``archive`` into ``root``, verify it, and only then write it there.

    The bytes are held in memory (each archive is under 10 MB) until they verify, then
    written atomically (:func:`metazoo.fileio.atomic_write_data`), so no partial or wrong
    file ever lies under a name a later run trusts.

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
        f"Download it by hand from {url} into {target.parent}, or point data_dir (or "
        f"${ROOT_ENV}) at a folder holding a local copy."
    )
    data, expected = _fetch(url, timeout, archive.filename, manual)
    if expected is not None and len(data) != expected:
        raise OmniglotDataError(
            f"download of {archive.filename} from {url} was interrupted: received "
            f"{len(data)} of {expected} bytes. Run again, or: {manual}"
        )
    _, problem = inspect_archive(io.BytesIO(data), archive)
    if problem is not None:
        raise OmniglotDataError(
            f"downloaded {archive.filename} from {url} is not the expected archive: "
            f"{problem}; nothing was kept. {manual}"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_data(target, data)
    except OSError as error:
        raise OmniglotDataError(
            f"cannot write {archive.filename} to {target.parent} ({error}). {manual}"
        ) from error
    return target


def _fetch(url: str, timeout: float, filename: str, manual: str) -> tuple[bytes, int | None]:
    """The bytes at ``url``, and its Content-Length (None when not sent)."""
    received = bytearray()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None else None
            while chunk := response.read(1 << 20):
                received += chunk
    except urllib.error.HTTPError as error:
        what = "not found there" if error.code == 404 else "the server refused it"
        raise OmniglotDataError(
            f"could not download {filename} from {url}: HTTP {error.code} {error.reason} "
            f"({what}). {manual}"
        ) from error
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        raise OmniglotDataError(
            f"download of {filename} from {url} failed after {len(received)} bytes: "
            f"{getattr(error, 'reason', None) or error!r}. {manual}"
        ) from error
    return bytes(received), expected


def ensure_archives(
    root: str | Path | None = None,
    download: bool = True,
    base_url: str | None = None,
    archives: Sequence[Archive] = ARCHIVES,
) -> dict[str, Path]:
    """Paths of ``archives`` in ``root``, downloading the missing ones when ``download``.

    Archives already present are not verified here (:func:`~.data.load_archive` does that).

    Raises:
        OmniglotDataError: ``root`` (or ``$METAZOO_OMNIGLOT_DIR``) names a folder that does
            not exist: a mistyped path is refused rather than created. Only the default
            folder in the user cache is created.
    """
    folder = resolve_root(root)
    if not folder.is_dir():
        given = "data_dir" if root is not None and str(root) != "" else (
            f"${ROOT_ENV}" if os.environ.get(ROOT_ENV) else None)
        if given is not None or folder.exists():
            raise OmniglotDataError(
                f"{given or 'data_dir'} {folder} "
                f"{'is not a folder' if folder.exists() else 'does not exist'}; correct the "
                "path, create the folder to download Omniglot into it, or leave data_dir "
                f"empty to use {user_cache() / 'omniglot'}"
            )
    root = folder
    paths = {}
    for archive in archives:
        path = root / archive.filename
        if not path.is_file():
            if not download:
                raise OmniglotDataError(
                    f"{path} is missing and downloading is disabled. Point data_dir (or "
                    f"${ROOT_ENV}) at a folder holding {archive.filename}, or allow the "
                    "download."
                )
            download_archive(archive, root, base_url)
        paths[archive.name] = path
    return paths
