"""Class splits of a classification data set: which classes train, validation and test use.

Few-shot learning tests on classes never seen in training, so a split partitions the
*classes*. Two ways to get one here: split files that list class names, or a seeded shuffle
cut by fractions (the same seed gives the same split on every machine).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch

from metazoo.tasks.base import DataError

#: The parts a split has; "trainval" is train and val together.
PARTS = ("train", "val", "test", "trainval")
#: Default class fractions (train, val, test).
DEFAULT_FRACTIONS = (0.6, 0.15, 0.25)


def check_part(part: str) -> None:
    """Raise a clear ``ValueError`` for a part that is not one of :data:`PARTS`."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}; got {part!r}")


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """``fractions`` as a (train, val, test) triple, or a one-line ``ValueError``."""
    ok = (
        len(fractions) == 3
        and all(isinstance(f, (int, float)) and not isinstance(f, bool) and math.isfinite(f)
                and f >= 0 for f in fractions)
        and abs(sum(fractions) - 1) < 1e-6
    )
    if not ok:
        raise ValueError(
            "split_fractions must be three numbers >= 0 (train, val, test) that sum to 1, "
            f"e.g. [0.6, 0.15, 0.25]; got {list(fractions)!r}"
        )
    return tuple(float(f) for f in fractions)


def split_by_fractions(
    names: Sequence[str], fractions: Sequence[float], seed: int
) -> dict[str, list[int]]:
    """Partition classes by a seeded shuffle, cut by ``fractions``.

    Classes are first sorted by name (so the split does not depend on listing order), then
    shuffled by ``torch.rand`` (float64) from a generator seeded with ``seed``; the first
    ``round(train · n)`` are train, the next ``round(val · n)`` val, the rest test.

    Returns:
        ``{"train": rows, "val": rows, "test": rows}``, each sorted, rows indexing ``names``.
    """
    train_fraction, val_fraction, _ = check_fractions(fractions)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"split_seed must be an integer >= 0, got {seed!r}")
    count = len(names)
    by_name = sorted(range(count), key=names.__getitem__)
    keys = torch.rand(count, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    shuffled = [by_name[i] for i in keys.argsort(stable=True).tolist()]
    train = min(count, math.floor(train_fraction * count + 0.5))
    val = min(count - train, math.floor(val_fraction * count + 0.5))
    return {"train": sorted(shuffled[:train]), "val": sorted(shuffled[train:train + val]),
            "test": sorted(shuffled[train + val:])}


def split_files(folder: Path) -> dict[str, Path]:
    """The split files ``train.txt``, ``val.txt``, ``test.txt`` present in ``folder``."""
    return {part: folder / f"{part}.txt" for part in PARTS[:3] if (folder / f"{part}.txt").is_file()}


def read_split_files(files: dict[str, Path], names: Sequence[str], where: str) -> dict[str, list[int]]:
    """The classes each split file lists, one class name a line (blank lines are skipped).

    Args:
        files: part → its file (parts without a file get no classes).
        names: the data set's class names.
        where: how to name the data set in a message (e.g. its folder).

    Raises:
        DataError: an unknown class, a class listed twice, or in two parts; the message
            names the file and line.
    """
    index = {name: row for row, name in enumerate(names)}
    first: dict[str, tuple[Path, int]] = {}  # class → where it was first listed
    parts: dict[str, list[int]] = {part: [] for part in PARTS[:3]}
    for part, path in files.items():
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"cannot read the split file {path} ({error}); fix or remove it") from error
        for number, line in enumerate(lines, start=1):
            name = line.strip()
            if not name:
                continue
            if name not in index:
                raise DataError(f"{path}:{number}: no class {name!r} in {where}; list class "
                                "folder names, one a line")
            if name in first:
                other, at = first[name]
                raise DataError(f"{path}:{number}: class {name!r} is already listed at "
                                f"{other.name}:{at}; list each class once, in one part")
            first[name] = (path, number)
            parts[part].append(index[name])
    return {part: sorted(rows) for part, rows in parts.items()}


def part_rows(parts: dict[str, list[int]], part: str) -> list[int]:
    """The class rows of ``part`` ("trainval": train and val together)."""
    check_part(part)
    if part == "trainval":
        return sorted(parts["train"] + parts["val"])
    return parts[part]
