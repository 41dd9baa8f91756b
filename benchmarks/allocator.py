"""What retaining freed memory buys: one metazoo meta-iteration in two processes, one with
glibc's default allocator and one with ``metazoo.engine.allocator.retain_freed_memory`` (as
``metazoo train`` runs), taking turns. Prints, per side, the median time per iteration, the
page faults and the kernel (system) CPU seconds per iteration, and the ratio.

    python benchmarks/allocator.py                       # MAML, k = 1, workload O
    python benchmarks/allocator.py --algorithm fomaml --k 5 --rounds 6
"""

from __future__ import annotations

import argparse
import resource
import statistics
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import bench
import torch

from metazoo.algorithms import DEFAULT_ALGORITHM
from metazoo.engine.allocator import retain_freed_memory

SIDES = ("default", "retained")


def init(side: str, threads: int) -> None:
    torch.set_num_threads(threads)
    if side == "retained":
        retain_freed_memory()


def one_iteration() -> tuple[float, int, float]:
    """(seconds, page faults, kernel CPU seconds) of one more iteration."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    bench.side_time(0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (bench.STATE["times"][-1], after.ru_minflt - before.ru_minflt,
            after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="O", choices=["S", "O"])
    parser.add_argument("--algorithm", default=DEFAULT_ALGORITHM, choices=list(bench.VARIANTS))
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    options = argparse.Namespace(device="cpu", chunk_size=None, no_baseline=True, strategy=None)
    pools = {side: ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=init,
                                       initargs=(side, args.threads)) for side in SIDES}
    found: dict[str, list] = {side: [] for side in SIDES}
    try:
        for side, pool in pools.items():
            pool.submit(bench.side_prepare, "metazoo", args.workload, args.algorithm, args.k,
                        options).result()
        for _ in range(args.rounds):
            for side, pool in pools.items():
                found[side].append(pool.submit(one_iteration).result())
    finally:
        for pool in pools.values():
            pool.shutdown()
    print(f"workload {args.workload}, {args.algorithm}, k = {args.k}, {args.threads} threads, "
          f"{args.rounds} rounds (median per iteration)")
    medians = {}
    for side, rows in found.items():
        seconds, faults, system = (statistics.median(column) for column in zip(*rows))
        medians[side] = seconds
        print(f"  {side:9s} {1e3 * seconds:9.1f} ms  {faults:9.0f} page faults  "
              f"{system:6.2f} s in the kernel")
    print(f"  retained is {medians['default'] / medians['retained']:.2f}× faster")


if __name__ == "__main__":
    main()
