"""The Omniglot task sampler: N-way K-shot tasks drawn from one part of a split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from metazoo.tasks.base import check_counts
from metazoo.tasks.inputs import ImageInputs
from metazoo.tasks.omniglot.data import OmniglotData, load_omniglot
from metazoo.tasks.omniglot.decode import DRAWINGS, IMAGE_SIZE
from metazoo.tasks.omniglot.splits import check_split, class_pool
from metazoo.tasks.sampler import ClassData, FewShotSampling, check_pool


@dataclass(frozen=True)
class Omniglot(FewShotSampling):
    """N-way K-shot Omniglot tasks: images ``[1, 28, 28]`` float32, strokes 1.0.

    Sampling is :class:`~metazoo.tasks.sampler.FewShotSampling`'s, over the characters'
    drawings (20 each) and their rotations.

    Building one loads the data (shared by every instance in the process), so missing or
    wrong data and impossible sizes fail here, not at the first batch.

    Attributes:
        n_way: classes per task.
        k_shot: support drawings per class.
        query_shots: query drawings per class (``k_shot + query_shots <= 20``).
        split: ``"vinyals"``, ``"vinyals-builtin"`` or ``"lake"`` (see :func:`class_pool`).
        part: ``"train"``, ``"val"``, ``"test"`` or ``"trainval"``.
        data_dir: data folder (see :func:`~.files.resolve_root`).
        download: fetch the archives when they are missing.
        rotations: see :func:`class_pool`.
        split_dir: folder of the "vinyals" split files (default ``<data_dir>/splits/vinyals``).
        cache_dir: folder of decoded tensors (see :func:`metazoo.tasks.cache.resolve_cache_dir`).
        base_url: where to download from (see :func:`~.files.download_archive`).
    """

    n_way: int = 5
    k_shot: int = 1
    query_shots: int = 15
    split: str = "vinyals"
    part: str = "train"
    data_dir: str | Path | None = None
    download: bool = True
    rotations: bool | None = None
    split_dir: str | Path | None = None
    cache_dir: str | Path | None = None
    base_url: str | None = None
    loss: str = "cross_entropy"
    data: OmniglotData = field(init=False, repr=False, compare=False)
    pool: torch.Tensor = field(init=False, repr=False, compare=False)  # [P, 2]
    examples: ClassData = field(init=False, repr=False, compare=False)  # [1623*20, 1, 28, 28]

    def __post_init__(self) -> None:
        check_counts(n_way=self.n_way, k_shot=self.k_shot, query_shots=self.query_shots)
        if self.k_shot + self.query_shots > DRAWINGS:
            raise ValueError(
                f"k_shot + query_shots = {self.k_shot + self.query_shots} distinct drawings per "
                f"class are asked for, but every Omniglot character has only {DRAWINGS}"
            )
        check_split(self.split, self.part)  # before loading anything
        data = load_omniglot(self.data_dir, self.cache_dir, self.download, self.base_url)
        pool = class_pool(data, self.split, self.part, self.rotations, self.split_dir,
                          self.data_dir)
        examples = ClassData.from_grid(data.images.unsqueeze(2), data.characters)  # a view
        check_pool(examples, pool, self.n_way, self.k_shot, self.query_shots,
                   f"the {self.split}/{self.part} pool")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "pool", pool)
        object.__setattr__(self, "examples", examples)

    @classmethod
    def file_inputs(cls, **options) -> ImageInputs:
        """Drawings as Omniglot's own: grey, BOX-resized to 28, inverted (strokes 1.0)."""
        return ImageInputs(IMAGE_SIZE, 1, resample="box", invert=True)
