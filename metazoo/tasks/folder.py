"""Few-shot classification tasks from a class-per-folder image tree, and faces.

The tree follows torchvision's ``ImageFolder`` convention, ``<data_dir>/<class>/<image>``.
The class split comes from the first of these that the folder has:

1. sub-trees ``<data_dir>/train/<class>/…``, ``val/`` (optional) and ``test/``;
2. split files ``train.txt``, ``val.txt``, ``test.txt`` listing class folder names, one a
   line, in ``split_dir`` (default: ``data_dir`` itself);
3. a seeded split of the classes by ``split_fractions`` (:func:`~.splits.split_by_fractions`).

Images are decoded once into the user's cache folder (nothing is written into
``data_dir``) at ``image_size`` pixels square and ``channels`` channels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch

from metazoo.tasks.base import DataError, check_counts
from metazoo.tasks.images import ClassFiles, check_image_options, load_images, scan_class_folders
from metazoo.tasks.inputs import ImageInputs, option
from metazoo.tasks.sampler import ClassData, FewShotSampling, check_pool, no_rotation
from metazoo.tasks.splits import (
    DEFAULT_FRACTIONS,
    PARTS,
    check_fractions,
    check_part,
    part_rows,
    read_split_files,
    split_by_fractions,
    split_files,
)


def folder_split(
    root: Path, split_dir: str | Path | None, fractions, seed: int
) -> tuple[list[ClassFiles], dict[str, list[int]], str]:
    """The classes of the tree at ``root`` and its split, by the precedence of the module
    docstring.

    Returns:
        ``(classes, parts, how)``: ``(name, image paths)`` per class, the class rows of
        train/val/test, and a phrase saying where the split came from.
    """
    subtrees = [part for part in PARTS[:3] if (root / part).is_dir()]
    if subtrees:
        others = [p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and p.name not in PARTS[:3]]
        if others or "train" not in subtrees or "test" not in subtrees:
            raise DataError(
                f"data_dir {root} mixes split folders ({', '.join(subtrees)}) with other "
                "folders, or lacks train/ or test/; use either train/, test/ (and val/) "
                "sub-trees holding the class folders, or class folders only"
            )
        classes, parts = [], {}
        for part in PARTS[:3]:
            tree = scan_class_folders(root / part) if (root / part).is_dir() else []
            parts[part] = list(range(len(classes), len(classes) + len(tree)))
            classes += [(f"{part}/{name}", files) for name, files in tree]
        _check_disjoint(root, classes)
        return classes, parts, "its train/val/test sub-folders"
    classes = scan_class_folders(root)
    names = [name for name, _ in classes]
    folder = root if split_dir is None or str(split_dir) == "" else Path(split_dir).expanduser()
    files = split_files(folder)
    if files:
        return classes, read_split_files(files, names, str(root)), f"the split files in {folder}"
    if split_dir is not None and str(split_dir) != "":
        raise DataError(f"split_dir {folder} holds none of train.txt, val.txt, test.txt; "
                        "point it at the split files, or leave it empty for a seeded split")
    parts = split_by_fractions(names, fractions, seed)
    return classes, parts, f"split_fractions {list(fractions)} with split_seed {seed}"


def _check_disjoint(root: Path, classes: list[ClassFiles]) -> None:
    seen: dict[str, str] = {}
    for name, _ in classes:
        part, _, label = name.partition("/")
        if label in seen:
            raise DataError(f"class {label!r} is in both {root / seen[label]} and {root / part}; "
                            "few-shot splits need disjoint classes: keep each class in one part")
        seen[label] = part


@dataclass(frozen=True)
class ImageFolderTasks(FewShotSampling):
    """N-way K-shot tasks from a class-per-folder image tree: images ``[channels, size, size]``
    float32 in [0, 1].

    Building one scans, splits and decodes (once per process and once on disk), so a missing
    folder, an undecodable image or impossible task sizes fail here, in one line.

    Attributes:
        data_dir: the tree's root, ``<data_dir>/<class>/<image>``.
        n_way, k_shot, query_shots: task size (per class: ``k_shot + query_shots`` distinct
            images are drawn).
        part: ``"train"``, ``"val"``, ``"test"`` or ``"trainval"``.
        image_size: decoded images are ``image_size × image_size``.
        channels: 1 (grey) or 3 (RGB).
        split_seed: seed of the split by fractions (used only when the folder has neither
            sub-trees nor split files).
        split_fractions: (train, val, test) fractions of the classes for that split.
        split_dir: folder of ``train.txt``/``val.txt``/``test.txt`` (default ``data_dir``).
        cache_dir: see :func:`metazoo.tasks.cache.resolve_cache_dir`.
        workers: reading and decoding threads.
    """

    #: Environment variable read when ``data_dir`` is not given (None: data_dir is required).
    DATA_ENV: ClassVar[str | None] = None
    #: Name of the data set in its cache file.
    NAME: ClassVar[str] = "folder"

    data_dir: str | Path | None = None
    n_way: int = 5
    k_shot: int = 1
    query_shots: int = 15
    part: str = "train"
    image_size: int = 84
    channels: int = 3
    split_seed: int = 0
    split_fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    split_dir: str | Path | None = None
    cache_dir: str | Path | None = None
    workers: int | None = None
    loss: str = "cross_entropy"
    examples: ClassData = field(init=False, repr=False, compare=False)
    pool: torch.Tensor = field(init=False, repr=False, compare=False)  # [P, 2]
    split_source: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_counts(n_way=self.n_way, k_shot=self.k_shot, query_shots=self.query_shots)
        check_part(self.part)
        check_image_options(self.image_size, self.channels)
        fractions = check_fractions(self.split_fractions)
        root = self.root()
        classes, parts, how = folder_split(root, self.split_dir, fractions, self.split_seed)
        rows = part_rows(parts, self.part)
        examples = load_images(classes, self.image_size, self.channels, self.NAME,
                               self.cache_dir, self.workers)
        pool = no_rotation(torch.tensor(rows, dtype=torch.int64))
        check_pool(examples, pool, self.n_way, self.k_shot, self.query_shots,
                   f"the {self.part} part of {root} (split by {how})")
        object.__setattr__(self, "examples", examples)
        object.__setattr__(self, "pool", pool)
        object.__setattr__(self, "split_source", how)

    @classmethod
    def file_inputs(cls, **options) -> ImageInputs:
        """Images decoded as this family decodes its own (see :mod:`metazoo.tasks.inputs`)."""
        return ImageInputs(option(cls, options, "image_size"), option(cls, options, "channels"))

    def root(self) -> Path:
        """``data_dir``, else the family's environment variable; refused when neither is set."""
        if self.data_dir is not None and str(self.data_dir) != "":
            return Path(self.data_dir).expanduser()
        if self.DATA_ENV and os.environ.get(self.DATA_ENV):
            return Path(os.environ[self.DATA_ENV]).expanduser()
        also = f" (or set ${self.DATA_ENV})" if self.DATA_ENV else ""
        raise DataError(f"data_dir is required{also}: the folder holding one sub-folder of "
                        "images per class")

    @property
    def class_names(self) -> list[str]:
        """Names of the classes in this part, in pool order."""
        return [self.examples.names[row] for row in self.pool[:, 0].tolist()]


@dataclass(frozen=True)
class Faces(ImageFolderTasks):
    """Few-shot face identification on the ORL / AT&T faces (40 people × 10 photos, 92×112
    grey), or any folder of one sub-folder per person.

    An image folder task with face defaults: 32×32 grey (stretched from 92×112), and the
    people split at random, disjointly, by ``split_fractions`` from ``split_seed`` (24 / 6 /
    10 people for the default fractions), so test tasks show only people never seen in
    training. ``data_dir`` defaults to ``$METAZOO_FACES_DIR``.
    """

    DATA_ENV: ClassVar[str | None] = "METAZOO_FACES_DIR"
    NAME: ClassVar[str] = "faces"

    query_shots: int = 5
    image_size: int = 32
    channels: int = 1
