"""Time the Omniglot data layer: the first build of the decoded cache, a later load from it,
and task-sampling throughput.

    python benchmarks/omniglot_data.py --workers 1 2 --threads 1

Each build uses a fresh temporary cache folder (deleted afterwards), so nothing is left in
the data folder. Sampling draws batches for about ``--seconds`` per configuration.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
from common import Clock, repeat_for

from metazoo.tasks.omniglot import ARCHIVES, Omniglot, load_archive, resolve_root

SHARED = Path(__file__).resolve().parents[2] / "shared/data/omniglot"
#: (n_way, k_shot, query_shots, tasks per batch)
SAMPLING = [(5, 1, 15, 32), (20, 1, 15, 16)]


def load_both(root: Path, cache: Path, workers: int | None = None) -> float:
    with Clock() as clock:
        for archive in ARCHIVES:
            load_archive(root / archive.filename, archive, cache, workers)
    return clock.wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("METAZOO_OMNIGLOT_DIR") or (SHARED if SHARED.is_dir() else None)
    parser.add_argument("--data-dir", type=Path, default=default)
    parser.add_argument("--workers", type=int, nargs="+", default=[2],
                        help="decoding threads to time the first build with")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = resolve_root(args.data_dir)
    print(f"data: {root}; torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory() as folder:
        for workers in args.workers:
            cache = Path(folder) / f"cache-{workers}"
            print(f"first build (verify + decode + save), {workers} decoding thread(s): "
                  f"{load_both(root, cache, workers):.2f} s")
        print(f"later load (archive byte hash + torch.load): {load_both(root, cache):.3f} s")
        (cache / "omniglot-verified.json").unlink()
        print(f"later load of an archive not seen before (full content check + torch.load): "
              f"{load_both(root, cache):.3f} s")

        for n_way, k_shot, query_shots, tasks in SAMPLING:
            task = Omniglot(n_way=n_way, k_shot=k_shot, query_shots=query_shots, data_dir=root,
                            cache_dir=cache, download=False)
            generator = torch.Generator().manual_seed(0)
            batches, clock = repeat_for(lambda t=task, n=tasks, g=generator: t.sample(n, g),
                                        args.seconds)
            elapsed = clock.wall
            print(f"{n_way}-way {k_shot}-shot {query_shots}-query, {tasks} tasks/batch: "
                  f"{batches * tasks / elapsed:,.0f} tasks/s ({1e3 * elapsed / batches:.2f} ms "
                  "per batch)")


if __name__ == "__main__":
    main()
