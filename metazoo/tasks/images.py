"""Image files → decoded pixels of many classes, decoded once and cached by content.

Used by every image-file task family (an image folder, faces, mini-ImageNet). Each image is
opened with Pillow, converted to ``L`` (1 channel) or ``RGB`` (3 channels) and resized to
``image_size × image_size`` with Pillow's bilinear filter, which widens with the reduction
factor and so averages every source pixel when shrinking (the aspect ratio is not kept:
a non-square image is stretched, as ``torchvision.transforms.Resize((s, s))`` does).

The cache key is a digest of every file's bytes (with its ``class/file`` name) and of the
decoding settings, so a changed, added or removed image, or another size, never reuses a
stale cache; the cache checks its own pixels on every load (:mod:`metazoo.tasks.cache`).
Within a process, a set is loaded once and shared by every sampler built on it.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from metazoo.tasks.base import DataError
from metazoo.tasks.cache import cache_file, load_cached, resolve_cache_dir, save_cached
from metazoo.tasks.sampler import ClassData

#: File name endings read as images (others, e.g. a README, are ignored).
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff",
                    ".webp")
DECODING = 1  # bump when decoding changes, so old cache files are not reused
CHUNK = 256  # images per decoding job

#: One class: its name and its image files, in a fixed order. Paths are plain strings: a
#: data set can hold hundreds of thousands, and pathlib objects cost ~20 µs each to build.
ClassFiles = tuple[str, Sequence[str]]


def check_image_options(image_size: int, channels: int) -> None:
    """Raise a one-line ``ValueError`` for an unusable size or channel count."""
    if not isinstance(image_size, int) or isinstance(image_size, bool) or not 1 <= image_size <= 1024:
        raise ValueError(f"image_size must be an integer from 1 to 1024 (pixels per side), "
                         f"got {image_size!r}")
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")


def _images_in(folder: Path) -> list[str]:
    """The visible files of ``folder`` whose names end in one of :data:`IMAGE_EXTENSIONS`,
    sorted (one ``scandir``: no ``stat`` per file)."""
    with os.scandir(folder) as entries:
        names = sorted(entry.name for entry in entries
                       if not entry.name.startswith(".") and entry.is_file()
                       and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS)
    return [os.path.join(folder, name) for name in names]


def scan_class_folders(root: Path, option: str = "data_dir") -> list[ClassFiles]:
    """The classes of a class-per-folder tree ``root/<class>/<image>``, sorted by name.

    Hidden folders and files, and files that are not images, are ignored.

    Raises:
        DataError: ``root`` is missing or not a folder, holds no class folder, or a class
            folder holds no image.
    """
    if not root.is_dir():
        raise DataError(f"{option} {root} {'is not a folder' if root.exists() else 'does not exist'};"
                        " point it at a folder holding one sub-folder of images per class")
    classes = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = _images_in(folder)
        if not images:
            raise DataError(f"class folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                            "add images or remove the folder")
        classes.append((folder.name, images))
    if not classes:
        raise DataError(f"{option} {root} holds no class folders; expected {root}/<class>/<image>, "
                        "one sub-folder of images per class")
    return classes


def content_key(classes: Sequence[ClassFiles], image_size: int, channels: int,
                workers: int | None = None) -> str:
    """sha256 over the sorted lines ``"<class>/<file name>\\t<sha256 of bytes>\\n"`` and the
    decoding settings."""
    named = [(f"{name}/{os.path.basename(path)}", path) for name, paths in classes
             for path in paths]

    def digest_chunk(start: int) -> list[str]:
        lines = []
        for name, path in named[start:start + CHUNK]:
            try:
                with open(path, "rb") as file:
                    data = file.read()
            except OSError as error:
                raise DataError(f"cannot read image {path} ({error.strerror or error}); "
                                "fix its permissions or remove it") from error
            lines.append(f"{name}\t{hashlib.sha256(data).hexdigest()}\n")
        return lines

    # hashlib releases the GIL on large inputs, and reading does: threads overlap both.
    with ThreadPoolExecutor(_workers(workers)) as pool:
        chunks = pool.map(digest_chunk, range(0, len(named), CHUNK))
        lines = sorted(line for chunk in chunks for line in chunk)
    lines.append(f"decoding {DECODING}: {image_size}x{image_size}, {channels} channel(s)\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


#: Pillow's resampling filters by name: ``bilinear`` for photographs (the image families),
#: ``box`` for Omniglot's strokes (see :mod:`metazoo.tasks.omniglot.decode`).
RESAMPLING = ("bilinear", "box")


def decode_image(source, image_size: int, channels: int, resample: str = "bilinear") -> bytes:
    """One image (a path or a binary file object) as ``image_size × image_size`` pixels of
    ``channels`` channels, rows of pixels with channels last: the one decoding every image
    task family and every prediction uses.

    Raises:
        OSError, ValueError, SyntaxError, ``PIL.Image.DecompressionBombError``: what Pillow
            raises for a file it cannot decode.
    """
    from PIL import Image  # imported where used, like every optional decoder

    with Image.open(source) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (image_size, image_size):
            image = image.resize((image_size, image_size),
                                 Image.BILINEAR if resample == "bilinear" else Image.BOX)
        return image.tobytes()


def decode_files(paths: Sequence[str | Path], image_size: int, channels: int,
                 workers: int | None = None, resample: str = "bilinear") -> torch.Tensor:
    """Decode ``paths`` into uint8 ``[M, channels, image_size, image_size]``.

    Raises:
        DataError: an image Pillow cannot decode (the message names its path).
    """
    if resample not in RESAMPLING:
        raise ValueError(f"resample must be one of {', '.join(RESAMPLING)}, got {resample!r}")
    out = torch.empty((len(paths), channels, image_size, image_size), dtype=torch.uint8)

    def decode_chunk(start: int) -> None:
        chunk = paths[start:start + CHUNK]
        pixels = b"".join(_decode(path, image_size, channels, resample) for path in chunk)
        decoded = torch.frombuffer(bytearray(pixels), dtype=torch.uint8)
        # Pillow gives rows of pixels, channels last: [n, H, W, C] → [n, C, H, W].
        out[start:start + len(chunk)] = decoded.view(
            len(chunk), image_size, image_size, channels).permute(0, 3, 1, 2)

    # Pillow releases the GIL while decoding and resizing, so threads decode in parallel.
    with ThreadPoolExecutor(_workers(workers)) as pool:
        list(pool.map(decode_chunk, range(0, len(paths), CHUNK)))
    return out


def _decode(path: str | Path, image_size: int, channels: int, resample: str) -> bytes:
    from PIL import Image

    try:
        return decode_image(path, image_size, channels, resample)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(f"cannot decode image {path} ({error}); replace or remove it") from error


def _workers(workers: int | None) -> int:
    return workers or min(4, os.cpu_count() or 1)


_LOADED: dict[tuple, ClassData] = {}
_LOADING = threading.Lock()


def load_images(
    classes: Sequence[ClassFiles],
    image_size: int,
    channels: int,
    name: str,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
) -> ClassData:
    """The decoded images of ``classes``, from the cache when it holds them.

    Args:
        classes: ``(class name, image paths)`` in the order the classes get their rows.
        image_size: pixels per side of the decoded images.
        channels: 1 (grey) or 3 (RGB).
        name: the data set's name in its cache file name, e.g. ``"folder"``.
        cache_dir: see :func:`metazoo.tasks.cache.resolve_cache_dir`.
        workers: reading and decoding threads (default ``min(4, cpu count)``).

    Returns:
        uint8 images ``[M, channels, image_size, image_size]``, class by class.
    """
    check_image_options(image_size, channels)
    paths = [path for _, files in classes for path in files]
    # Within a process, the same files (by absolute name, size and modification time) load
    # once; a changed file changes its size or time, so it is read again.
    try:
        stats = tuple((os.path.abspath(p), *_size_and_time(p)) for p in paths)
    except OSError as error:
        raise DataError(f"cannot read image {error.filename} ({error.strerror}); fix its "
                        "permissions or remove it") from error
    memo = (stats, tuple(n for n, _ in classes), image_size, channels)
    with _LOADING:
        if memo not in _LOADED:
            _LOADED.clear()  # keep one set: a set can take gigabytes
            _LOADED[memo] = _load(classes, paths, image_size, channels, name, cache_dir, workers)
        return _LOADED[memo]


def _size_and_time(path: str) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_size, status.st_mtime_ns


def _load(classes, paths, image_size, channels, name, cache_dir, workers) -> ClassData:
    names = [class_name for class_name, _ in classes]
    counts = [len(files) for _, files in classes]
    key = content_key(classes, image_size, channels, workers)
    target = cache_file(resolve_cache_dir(cache_dir), f"{name}{image_size}x{channels}", key)
    cached = load_cached(target, key)
    if cached is not None:
        images, meta = cached
        if (meta.get("names") == names and meta.get("counts") == counts
                and images.dtype == torch.uint8
                and images.shape == (len(paths), channels, image_size, image_size)):
            return ClassData(images, torch.tensor(counts, dtype=torch.int64), tuple(names))
    images = decode_files(paths, image_size, channels, workers)
    save_cached(target, key, images, {"names": names, "counts": counts})
    return ClassData(images, torch.tensor(counts, dtype=torch.int64), tuple(names))
