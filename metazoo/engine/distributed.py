"""Data parallelism over the meta-batch under ``torchrun``: ranks, the process group, and the
all-reduce of meta-gradients. A process run alone is rank 0 of 1 and never touches
``torch.distributed``."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from metazoo.core.tree import flatten, unflatten
from metazoo.types import Params


@dataclass(frozen=True)
class Ranks:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1

    @property
    def lead(self) -> bool:
        """Rank 0, the one process that writes files."""
        return self.rank == 0

    def shard(self, total: int) -> tuple[int, int]:
        """Tasks ``[start, stop)`` of a global batch of ``total`` that this rank computes."""
        return total * self.rank // self.world, total * (self.rank + 1) // self.world


def init_ranks(device: str, meta_batch: int) -> tuple[Ranks, str]:
    """Join the process group ``torchrun`` describes (gloo on CPU, NCCL on GPU), if any.

    Returns the ranks and this process's device (``cuda:<local rank>`` for a CUDA run).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks(), device
    if meta_batch < world:
        raise ValueError(f"meta_batch {meta_batch} is smaller than the {world} processes; "
                         "give every process at least one task")
    cuda = device.startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    return Ranks(dist.get_rank(), dist.get_world_size()), device


def all_reduce_mean(grads: Params, stats: dict[str, torch.Tensor], state: dict, weight: int,
                    total: int):
    """Turn per-rank means over ``weight`` tasks into the global mean over ``total`` tasks:
    of the meta-gradient, the statistics and the method's carried state."""
    carried = flatten(state)
    names, stat_names, state_names = list(grads), list(stats), list(carried)
    dtype = grads[names[0]].dtype
    flat = torch.cat([grads[n].reshape(-1) for n in names]
                     + [stats[n].reshape(1).to(dtype) for n in stat_names]
                     + [carried[n].reshape(-1).to(dtype) for n in state_names])
    flat = flat * (weight / total)
    dist.all_reduce(flat)
    pieces = flat.split([grads[n].numel() for n in names] + [1] * len(stat_names)
                        + [carried[n].numel() for n in state_names])
    reduced = {n: piece.view_as(grads[n]) for n, piece in zip(names, pieces)}
    stats = {n: piece[0] for n, piece in zip(stat_names, pieces[len(names):])}
    rest = pieces[len(names) + len(stat_names):]
    carried = {n: piece.view_as(carried[n]).to(carried[n].dtype)
               for n, piece in zip(state_names, rest)}
    return reduced, stats, unflatten(carried, state)


def any_rank(ranks: Ranks, *flags: bool) -> list[bool]:
    """Each flag, true if it is true on any rank: every rank must stop at the same iteration,
    whichever rank's clock ran out or received a signal."""
    if ranks.world == 1:
        return list(flags)
    tensor = torch.tensor([float(flag) for flag in flags])
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(value) for value in tensor.tolist()]


def barrier(ranks: Ranks) -> None:
    """Wait for every rank (a no-op when run alone)."""
    if ranks.world > 1:
        dist.barrier()
