"""Time the image-folder data layer at mini-ImageNet's scale: 100 classes × 600 JPEGs of
84×84×3, generated (no such data set ships here).

    python benchmarks/image_folder.py --folder /tmp/metazoo-folder-100x600 --threads 1

Generates the folder when it is missing (random smooth colour images, JPEG quality 90), then
measures, in this process: the first build of the decoded cache (scan, hash every file,
decode, save) in a fresh cache folder; a cached load as a new process does it (scan, hash
every file, map the cache file and check the digest of its pixels), several times; and
task-sampling throughput for the MAML paper's mini-ImageNet batches, with freed memory
retained for reuse as ``metazoo train`` does on the CPU. Writes
``results/image-folder.md`` with the command that produced it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import ROOT, Clock, repeat_for
from PIL import Image

from metazoo.engine.allocator import retain_freed_memory
from metazoo.tasks import ImageFolderTasks
from metazoo.tasks import images as images_module

#: (name, n_way, k_shot, query_shots, tasks per batch)
SAMPLING = [("5-way 1-shot, 15 query, meta-batch 4 (MAML paper)", 5, 1, 15, 4),
            ("5-way 5-shot, 15 query, meta-batch 2 (MAML paper)", 5, 5, 15, 2),
            ("5-way 1-shot, 15 query, 32 tasks per batch", 5, 1, 15, 32)]


def generate(folder: Path, classes: int, per_class: int, size: int) -> None:
    """``folder/classNNN/NNNN.jpg``: each image a random smooth colour field plus noise."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    for c in range(classes):
        target = folder / f"class{c:03d}"
        target.mkdir(parents=True, exist_ok=True)
        base = rng.uniform(0, 255, 3).astype(np.float32)
        for i in range(per_class):
            tilt = rng.uniform(-80, 80, (2, 3)).astype(np.float32)
            pixels = (base + ramp[:, None, None] * tilt[0] + ramp[None, :, None] * tilt[1]
                      + rng.normal(0, 12, (size, size, 3)))
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB").save(
                target / f"{i:04d}.jpg", quality=90)


def cached_load(folder: Path, cache: Path, size: int, workers: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads of this process) of a load from the cache."""
    images_module._LOADED.clear()  # as a new process would
    with Clock() as clock:
        ImageFolderTasks(folder, n_way=5, k_shot=1, query_shots=15, image_size=size,
                         cache_dir=cache, workers=workers)
    return clock.wall, clock.cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir())
                        / "metazoo-folder-100x600")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--per-class", type=int, default=600)
    parser.add_argument("--size", type=int, default=84)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--workers", type=int, default=2, help="decoding threads")
    parser.add_argument("--loads", type=int, default=3, help="cached loads to time")
    parser.add_argument("--seconds", type=float, default=3.0, help="per sampling row")
    parser.add_argument("--out", type=Path, default=ROOT / "results/image-folder.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retain_freed_memory()  # as metazoo train does on the CPU: batches reuse freed memory
    lines = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    if not (args.folder / f"class{args.classes - 1:03d}").is_dir():
        with Clock() as clock:
            generate(args.folder, args.classes, args.per_class, args.size)
        print(f"generated {args.folder} in {clock.wall:.0f} s")
    files = sum(len(os.listdir(args.folder / d)) for d in os.listdir(args.folder))
    megabytes = sum(p.stat().st_size for p in args.folder.rglob("*.jpg")) / 2**20
    command = "python benchmarks/image_folder.py " + " ".join(sys.argv[1:])
    say("# Image folder: cached load time and sampler throughput")
    say()
    say(f"    {command}")
    say()
    say(f"A generated folder of {args.classes} classes × {args.per_class} JPEGs of "
        f"{args.size}×{args.size}×3 ({files:,} files, {megabytes:,.0f} MiB; not in the "
        f"repository). torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), "
        f"{args.workers} reading/decoding threads, {os.cpu_count()} CPU cores shared with other "
        f"jobs (load average {os.getloadavg()[0]:.1f} at the start): wall-clock times depend on "
        "the neighbours, so CPU seconds of this process (all its threads) are given too.")
    say()
    with tempfile.TemporaryDirectory() as cache:
        cache = Path(cache)
        images_module._LOADED.clear()
        with Clock() as clock:
            tasks = ImageFolderTasks(args.folder, n_way=5, k_shot=1, query_shots=15,
                                     image_size=args.size, cache_dir=cache, workers=args.workers)
        first = clock.wall, clock.cpu
        pixels = tasks.examples.inputs
        cache_bytes = sum(p.stat().st_size for p in cache.iterdir())
        say("| step | wall seconds | CPU seconds |")
        say("|---|---:|---:|")
        say(f"| first build: scan, hash {files:,} files, decode, write the cache "
            f"({cache_bytes / 2**30:.2f} GiB) | {first[0]:.1f} | {first[1]:.1f} |")
        loads = [cached_load(args.folder, cache, args.size, args.workers)
                 for _ in range(args.loads)]
        say(f"| cached load: scan, hash every file, map the cache, check its pixel digest "
            f"(median of {args.loads}) | {statistics.median(w for w, _ in loads):.1f} | "
            f"{statistics.median(c for _, c in loads):.1f} |")
        say()
        say(f"Decoded: uint8 {list(pixels.shape)}. Cached loads (wall, CPU): "
            + ", ".join(f"({w:.1f}, {c:.1f})" for w, c in loads) + " s.")
        say()
        say("| batch | tasks / s | ms per batch | tasks per CPU second |")
        say("|---|---:|---:|---:|")
        for name, n_way, k_shot, query_shots, batch in SAMPLING:
            tasks = ImageFolderTasks(args.folder, n_way=n_way, k_shot=k_shot,
                                     query_shots=query_shots, image_size=args.size,
                                     cache_dir=cache)
            generator = torch.Generator().manual_seed(0)
            count, clock = repeat_for(lambda t=tasks, n=batch, g=generator: t.sample(n, g),
                                      args.seconds)
            elapsed, cpu = clock.wall, clock.cpu
            say(f"| {name} | {count * batch / elapsed:,.0f} | {1e3 * elapsed / count:.2f} | "
                f"{count * batch / cpu:,.0f} |")
    say()
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
