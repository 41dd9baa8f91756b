"""mini-ImageNet (Vinyals et al., 2016) from the user's own copy of the images, with the class
split of Ravi & Larochelle (2017): 64 train, 16 validation and 20 test classes of 600 images.

The split lists ship with metazoo (``metazoo/tasks/data/mini-imagenet-ravi/``: ``train.csv``,
``val.csv``, ``test.csv``, rows ``filename,label``); the images do not, and are never
downloaded. ``data_dir`` must hold the images named as in the lists, in one of these layouts
(the first that holds the first listed image is used):

* ``<data_dir>/images/<filename>`` (the layout of Ravi & Larochelle's release);
* ``<data_dir>/<filename>``;
* ``<data_dir>/<label>/<filename>``;
* ``<data_dir>/<part>/<label>/<filename>``.

Images are decoded once, at ``image_size`` (84 by default, the release's size) and 3
channels, into the user's cache folder.
"""

from __future__ import annotations

import csv
import gzip
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from metazoo.tasks.base import DataError, check_counts
from metazoo.tasks.images import ClassFiles, check_image_options, load_images
from metazoo.tasks.inputs import ImageInputs, option
from metazoo.tasks.sampler import ClassData, FewShotSampling, check_pool, no_rotation
from metazoo.tasks.splits import PARTS, check_part, part_rows

DATA_ENV = "METAZOO_MINI_IMAGENET_DIR"
LAYOUTS = ("images/{filename}", "{filename}", "{label}/{filename}", "{part}/{label}/{filename}")


def shipped_lists() -> Path:
    """The folder of the shipped lists, ``train.csv``, ``val.csv`` and ``test.csv`` (stored
    gzip-compressed as ``<part>.csv.gz``; :func:`read_lists` reads either form)."""
    return Path(str(resources.files("metazoo.tasks") / "data" / "mini-imagenet-ravi"))


def read_lists(folder: Path) -> dict[str, list[tuple[str, list[str]]]]:
    """Part → its classes, each ``(label, file names)`` in the order listed.

    Raises:
        DataError: a missing or malformed list, a file listed twice, or a class in two
            parts (the message names the file and line).
    """
    parts: dict[str, list[tuple[str, list[str]]]] = {}
    seen: dict[str, tuple[str, int]] = {}  # file name → (list, line)
    owner: dict[str, str] = {}  # label → part
    for part in PARTS[:3]:
        path = folder / f"{part}.csv"
        if not path.is_file() and path.with_suffix(".csv.gz").is_file():
            path = path.with_suffix(".csv.gz")  # the shipped lists are stored compressed
        try:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", newline="") as file:
                rows = list(csv.reader(file))
        except (OSError, EOFError, UnicodeDecodeError, csv.Error) as error:
            raise DataError(f"cannot read the split list {path} ({error}); point split_dir at "
                            "a folder holding train.csv, val.csv and test.csv") from error
        if not rows or rows[0] != ["filename", "label"]:
            raise DataError(f"{path}:1: expected the header 'filename,label'")
        classes: dict[str, list[str]] = {}
        for number, row in enumerate(rows[1:], start=2):
            if len(row) != 2 or not row[0] or not row[1]:
                raise DataError(f"{path}:{number}: expected 'filename,label', got {','.join(row)!r}")
            filename, label = row
            if filename in seen:
                raise DataError(f"{path}:{number}: {filename} is already listed at "
                                f"{seen[filename][0]}:{seen[filename][1]}; list each image once")
            if owner.setdefault(label, part) != part:
                raise DataError(f"{path}:{number}: class {label} is also in {owner[label]}.csv; "
                                "each class belongs to one part")
            seen[filename] = (path.name, number)
            classes.setdefault(label, []).append(filename)
        parts[part] = list(classes.items())
    return parts


def locate(root: Path, parts: dict[str, list[tuple[str, list[str]]]]) -> list[ClassFiles]:
    """Every listed image's path under ``root`` (train classes, then val, then test).

    Raises:
        DataError: ``root`` is missing, or an image is not where the layout puts it.
    """
    if not root.is_dir():
        raise DataError(f"data_dir {root} {'is not a folder' if root.exists() else 'does not exist'};"
                        " point it at your copy of the mini-ImageNet images")
    part, (label, files) = next((p, c[0]) for p, c in parts.items() if c)
    layout = next((pattern for pattern in LAYOUTS if (root / pattern.format(
        filename=files[0], label=label, part=part)).is_file()), None)
    if layout is None:
        raise DataError(
            f"data_dir {root} holds no {files[0]} (the first image of {part}.csv) as "
            f"images/{files[0]}, {files[0]}, {label}/{files[0]} or {part}/{label}/{files[0]}; "
            "point data_dir at your copy of the 60,000 mini-ImageNet images, named as in "
            "Ravi & Larochelle's split lists"
        )
    classes = []
    for part, part_classes in parts.items():
        for label, names in part_classes:
            paths = [os.path.join(root, layout.format(filename=n, label=label, part=part))
                     for n in names]
            missing = [path for path in paths if not os.path.isfile(path)]
            if missing:
                raise DataError(
                    f"{missing[0]} is missing ({len(missing)} of the {len(paths)} images of "
                    f"class {label} in {part}.csv are); every listed image must be in data_dir"
                )
            classes.append((label, paths))
    return classes


@dataclass(frozen=True)
class MiniImageNet(FewShotSampling):
    """N-way K-shot mini-ImageNet tasks: images ``[3, 84, 84]`` float32 in [0, 1].

    Attributes:
        data_dir: the user's image folder (default ``$METAZOO_MINI_IMAGENET_DIR``).
        n_way, k_shot, query_shots: task size.
        part: ``"train"``, ``"val"``, ``"test"`` or ``"trainval"``.
        image_size: decoded images are ``image_size × image_size``.
        channels: 3 (RGB), or 1 (grey).
        split_dir: folder of other ``train.csv``/``val.csv``/``test.csv`` lists in the same
            format (default: the shipped Ravi & Larochelle lists).
        cache_dir: see :func:`metazoo.tasks.cache.resolve_cache_dir`.
        workers: reading and decoding threads.
    """

    data_dir: str | Path | None = None
    n_way: int = 5
    k_shot: int = 1
    query_shots: int = 15
    part: str = "train"
    image_size: int = 84
    channels: int = 3
    split_dir: str | Path | None = None
    cache_dir: str | Path | None = None
    workers: int | None = None
    loss: str = "cross_entropy"
    examples: ClassData = field(init=False, repr=False, compare=False)
    pool: torch.Tensor = field(init=False, repr=False, compare=False)  # [P, 2]

    def __post_init__(self) -> None:
        check_counts(n_way=self.n_way, k_shot=self.k_shot, query_shots=self.query_shots)
        check_part(self.part)
        check_image_options(self.image_size, self.channels)
        root = self.data_dir if self.data_dir not in (None, "") else os.environ.get(DATA_ENV)
        if not root:
            raise DataError(f"data_dir is required (or set ${DATA_ENV}): your copy of the "
                            "mini-ImageNet images; metazoo ships only the split lists")
        root = Path(root).expanduser()
        lists = shipped_lists() if self.split_dir in (None, "") else Path(self.split_dir)
        listed = read_lists(lists)
        classes = locate(root, listed)
        parts, start = {}, 0
        for part in PARTS[:3]:
            parts[part] = list(range(start, start + len(listed[part])))
            start += len(listed[part])
        examples = load_images(classes, self.image_size, self.channels, "mini-imagenet",
                               self.cache_dir, self.workers)
        pool = no_rotation(torch.tensor(part_rows(parts, self.part), dtype=torch.int64))
        check_pool(examples, pool, self.n_way, self.k_shot, self.query_shots,
                   f"mini-ImageNet's {self.part} part")
        object.__setattr__(self, "examples", examples)
        object.__setattr__(self, "pool", pool)

    @classmethod
    def file_inputs(cls, **options) -> ImageInputs:
        """Images decoded as this family decodes its own (see :mod:`metazoo.tasks.inputs`)."""
        return ImageInputs(option(cls, options, "image_size"), option(cls, options, "channels"))
