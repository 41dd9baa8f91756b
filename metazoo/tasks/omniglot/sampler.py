"""The Omniglot task sampler: N-way K-shot tasks drawn from one part of a split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from metazoo.tasks.base import TaskBatch, check_counts
from metazoo.tasks.omniglot.data import OmniglotData, load_omniglot
from metazoo.tasks.omniglot.decode import DRAWINGS, IMAGE_SIZE
from metazoo.tasks.omniglot.splits import check_split, class_pool


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
        data_dir: data folder (see :func:`~.files.resolve_root`).
        download: fetch the archives when they are missing.
        rotations: see :func:`class_pool`.
        split_dir: folder of the "vinyals" split files (default ``<data_dir>/splits/vinyals``).
        cache_dir: folder of decoded tensors (see :func:`~.data.resolve_cache_dir`).
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
