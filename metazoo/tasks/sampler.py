"""N-way K-shot classification tasks over any examples stored class by class.

Every classification family (Omniglot, an image folder, mini-ImageNet, arrays) keeps its
examples in a :class:`ClassData`: one tensor ``[M, ...]`` whose rows are grouped by class,
with a count per class (classes may hold different numbers of examples). A task family
then only says which classes a part of its split holds (its *pool*, rows
``(class, quarter turns)``), and :class:`FewShotSampling` draws tasks from it, vectorised over
tasks: every random number of a batch comes from a few ``torch.rand`` calls on the caller's
generator (drawn a block of tasks at a time, :func:`~metazoo.tasks.base.in_blocks`), and the
examples are gathered with one ``index_select``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import torch

from metazoo.tasks.base import TaskBatch, check_counts, in_blocks


@dataclass(frozen=True, eq=False)
class ClassData:
    """Examples of many classes, stored class after class.

    ``uint8`` inputs are images and come out of the sampler as ``pixel / 255`` (float32);
    other inputs come out as float32, unchanged.
    """

    inputs: torch.Tensor  # [M, ...]: the examples of class 0, then class 1, …
    counts: torch.Tensor  # [classes] int64, summing to M
    names: tuple[str, ...]  # one per class

    def __post_init__(self) -> None:
        if self.counts.ndim != 1 or len(self.counts) != len(self.names):
            raise ValueError(f"counts ({tuple(self.counts.shape)}) must give one count per "
                             f"class name ({len(self.names)})")
        if int(self.counts.sum()) != len(self.inputs):
            raise ValueError(f"counts sum to {int(self.counts.sum())}, but inputs hold "
                             f"{len(self.inputs)} examples")

    @cached_property
    def offsets(self) -> torch.Tensor:
        """Row of each class's first example: int64 ``[classes]``."""
        return torch.cumsum(self.counts, 0) - self.counts

    @cached_property
    def index(self) -> dict[str, int]:
        """Class name → class row."""
        return {name: row for row, name in enumerate(self.names)}

    @classmethod
    def from_grid(cls, inputs: torch.Tensor, names: Sequence[str]) -> ClassData:
        """From ``[classes, per class, ...]`` (equal counts); a view, not a copy."""
        classes, per_class = inputs.shape[:2]
        return cls(inputs.reshape(classes * per_class, *inputs.shape[2:]),
                   torch.full((classes,), per_class, dtype=torch.int64), tuple(names))


class TaskIndices(NamedTuple):
    """What a batch of tasks is made of, before any example is gathered.

    Label ``n`` of task ``t`` is class ``classes[t, n]`` rotated by ``rotations[t, n]``
    quarter turns; support position ``s`` shows example ``support_examples[t, s]`` (counted
    within its class) of the class labelled ``support_y[t, s]``.
    """

    classes: torch.Tensor  # [T, N] class row in ClassData
    rotations: torch.Tensor  # [T, N] quarter turns
    support_examples: torch.Tensor  # [T, N*K] example within its class
    support_y: torch.Tensor  # [T, N*K] label 0..N-1
    query_examples: torch.Tensor  # [T, N*Q]
    query_y: torch.Tensor  # [T, N*Q]


def check_pool(
    examples: ClassData, pool: torch.Tensor, n_way: int, k_shot: int, query_shots: int,
    where: str,
) -> None:
    """Refuse, in one line, tasks that ``pool`` cannot supply.

    Args:
        examples: the data.
        pool: int64 ``[P, 2]`` rows ``(class, quarter turns)``.
        n_way, k_shot, query_shots: the task size.
        where: how to name the pool in a message, e.g. ``"the test part of /data/birds"``.
    """
    check_counts(n_way=n_way, k_shot=k_shot, query_shots=query_shots)
    if n_way > len(pool):
        raise ValueError(
            f"n_way={n_way} classes per task, but {where} has only {len(pool)} classes"
        )
    counts = examples.counts[pool[:, 0]]
    needed = k_shot + query_shots
    if int(counts.min()) < needed:
        short = int(counts.argmin())
        fewer = int((counts < needed).sum())
        raise ValueError(
            f"k_shot + query_shots = {needed} distinct examples per class are asked for, but "
            f"class {examples.names[int(pool[short, 0])]!r} of {where} has only "
            f"{int(counts[short])}" + (f" ({fewer} classes have fewer than {needed})"
                                       if fewer > 1 else "")
            + "; ask for fewer shots or leave such classes out"
        )


class FewShotSampling:
    """The sampler of a classification task family.

    A subclass sets ``examples`` (:class:`ClassData`), ``pool`` (int64 ``[P, 2]``: class row,
    quarter turns), ``n_way``, ``k_shot`` and ``query_shots``, and checks them with
    :func:`check_pool` when it is built.
    """

    loss: str = "cross_entropy"
    examples: ClassData
    pool: torch.Tensor
    n_way: int
    k_shot: int
    query_shots: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(channels, height, width)``."""
        return tuple(self.examples.inputs.shape[1:])

    def sample_indices(self, num_tasks: int, generator: torch.Generator) -> TaskIndices:
        """Draw ``num_tasks`` tasks as indices (every random number comes from ``generator``).

        Classes are distinct within a task and drawn in a uniformly random order, which is
        their label order; each class gets ``k_shot + query_shots`` distinct examples. Within
        each shot the ``n_way`` examples come in a fresh random label order, so labels are a
        permutation of ``0..N-1`` repeated and position says nothing about the label.
        """
        check_counts(num_tasks=num_tasks)
        tasks, ways, shots, queries = num_tasks, self.n_way, self.k_shot, self.query_shots
        # The top n_way of uniform keys: n_way distinct pool rows in random order.
        picked = in_blocks(tasks, lambda start, stop: torch.rand(
            (stop - start, len(self.pool)), generator=generator).topk(ways).indices)  # [T, N]
        classes = self.pool[picked]  # [T, N, 2]
        available = self.examples.counts[classes[..., 0]]  # [T, N]
        most = int(self.examples.counts[self.pool[:, 0]].max())

        def examples(start: int, stop: int) -> torch.Tensor:
            keys = torch.rand((stop - start, ways, most), generator=generator)  # [B, N, most]
            # Keys past a class's own count sort last, so only its real examples are drawn.
            keys.masked_fill_(torch.arange(most) >= available[start:stop, :, None], 2.0)
            return keys.argsort(dim=-1)[..., : shots + queries]  # [B, N, K+Q]

        drawn = in_blocks(tasks, examples)  # [T, N, K+Q], distinct per class
        support_y = torch.rand((tasks, shots, ways), generator=generator).argsort(dim=-1)
        query_y = torch.rand((tasks, queries, ways), generator=generator).argsort(dim=-1)
        task = torch.arange(tasks)[:, None, None]
        # Shot k of the class labelled y uses column k (support) or K + k (query).
        support = drawn[task, support_y, torch.arange(shots)[None, :, None]]
        query = drawn[task, query_y, shots + torch.arange(queries)[None, :, None]]
        return TaskIndices(
            classes[..., 0], classes[..., 1],
            support.reshape(tasks, -1), support_y.reshape(tasks, -1),  # [T, K*N]
            query.reshape(tasks, -1), query_y.reshape(tasks, -1),  # [T, Q*N]
        )

    def gather(self, indices: TaskIndices) -> TaskBatch:
        """The examples and labels that ``indices`` name, rotated, as a :class:`TaskBatch`."""
        tasks, support = indices.support_y.shape
        labels = torch.cat([indices.support_y, indices.query_y], dim=1)  # [T, S+Q]
        within = torch.cat([indices.support_examples, indices.query_examples], dim=1)
        rows = self.examples.offsets[indices.classes].gather(1, labels) + within  # [T, S+Q]
        turns = indices.rotations.gather(1, labels).view(-1)  # [T*(S+Q)]
        # One flat index_select (much faster than two-tensor advanced indexing), then one
        # batched rot90 per angle over the examples that need it.
        x = self.examples.inputs.index_select(0, rows.view(-1))  # [T*(S+Q), ...], a copy
        for k in (1, 2, 3):
            where = (turns == k).nonzero().squeeze(1)
            if len(where):
                rotated = torch.rot90(x.index_select(0, where), k, dims=(-2, -1))
                x.index_copy_(0, where, rotated)
        x = x.view(tasks, -1, *x.shape[1:])
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        return TaskBatch(x[:, :support], indices.support_y, x[:, support:], indices.query_y)

    def sample(self, num_tasks: int, generator: torch.Generator) -> TaskBatch:
        """``num_tasks`` tasks: x float32 ``[T, N*K, ...]``, y int64 ``[T, N*K]`` (query:
        ``N*Q``); the same generator state gives the same batch."""
        return self.gather(self.sample_indices(num_tasks, generator))


def no_rotation(classes: torch.Tensor) -> torch.Tensor:
    """Pool rows ``(class, 0)`` for int64 class rows ``[P]``: ``[P, 2]``."""
    return torch.stack([classes, torch.zeros_like(classes)], dim=1)
