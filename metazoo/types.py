"""Types shared by every layer: a leaf module that imports nothing of metazoo.

``Params`` is the pytree of this library (``{name: tensor}``), ``LossFn`` a model's pure loss
and ``TaskBatch`` the stacked tensors a task distribution samples. Keeping them here lets the
core and the algorithms name them without importing any task family (and so without loading
data-set code such as the Omniglot downloader).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # names only: importing these types does not load torch
    import torch

#: Parameters (θ, φ, gradients, step sizes): ``{name: tensor}``.
Params = dict[str, "torch.Tensor"]
#: ``loss(params, x, y) -> scalar``: a model's loss as a pure function of its parameters.
LossFn = Callable[[Params, "torch.Tensor", "torch.Tensor"], "torch.Tensor"]


class TaskBatch(NamedTuple):
    """Stacked tensors of ``T`` tasks.

    Regression targets carry a trailing output axis (``[T, S, 1]``); classification
    targets are class indices (``[T, S]``, int64).
    """

    support_x: torch.Tensor  # [T, S, ...]
    support_y: torch.Tensor  # [T, S, ...]
    query_x: torch.Tensor  # [T, Q, ...]
    query_y: torch.Tensor  # [T, Q, ...]

    @property
    def num_tasks(self) -> int:
        return self.support_x.shape[0]

    def task(self, index: int) -> TaskBatch:
        """One task, without the leading axis (what a per-task function receives)."""
        return TaskBatch(*(t[index] for t in self))

    def slice(self, start: int, stop: int) -> TaskBatch:
        """Tasks ``start:stop``, keeping the leading axis."""
        return TaskBatch(*(t[start:stop] for t in self))

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TaskBatch:
        """Move to ``device``; floating tensors are also cast to ``dtype`` when given."""

        def move(t: torch.Tensor) -> torch.Tensor:
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return TaskBatch(*(move(t) for t in self))
