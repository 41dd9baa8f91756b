"""Omniglot class splits: which (character, rotation) classes each part of a split holds."""

from __future__ import annotations

from pathlib import Path

import torch

from metazoo.tasks.omniglot.data import OmniglotData
from metazoo.tasks.omniglot.files import OmniglotDataError, resolve_root

BUILTIN_SEED = 1623  # seed of the "vinyals-builtin" character shuffle; never change it
BUILTIN_SIZES = (1100, 100, 423)  # train / val / test characters of "vinyals-builtin"
#: split name → the parts it has.
SPLITS: dict[str, tuple[str, ...]] = {
    "vinyals": ("train", "val", "test", "trainval"),
    "vinyals-builtin": ("train", "val", "test", "trainval"),
    "lake": ("train", "test"),
}

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
        lines = path.read_text().splitlines()
    except OSError as error:
        raise OmniglotDataError(
            f"cannot read the split file {path} ({error}). Pass split_dir= pointing at the "
            "folder holding train.txt/val.txt/test.txt, or use split='vinyals-builtin', "
            "which needs no file."
        ) from error
    rows = []
    seen: dict[str, int] = {}  # line → its first line number
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        character, _, rotation = line.rpartition("/")
        degrees = rotation.removeprefix("rot")
        if character not in data.index or degrees not in ("000", "090", "180", "270"):
            raise OmniglotDataError(
                f"{path}:{number}: not a known Alphabet/characterNN/rotDDD: {line!r}"
            )
        # A repeated class would be drawn twice as often and could fill a task with one class.
        if line in seen:
            raise OmniglotDataError(
                f"{path}:{number}: {line!r} is a duplicate of line {seen[line]}; list each "
                "class once"
            )
        seen[line] = number
        rows.append((data.index[character], int(degrees) // 90))
    if not rows:
        raise OmniglotDataError(f"split file {path} is empty")
    return torch.tensor(rows, dtype=torch.int64)  # [P, 2]

