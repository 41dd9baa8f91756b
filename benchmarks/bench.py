"""Time and peak memory per meta-iteration: metazoo against the plain PyTorch baseline,
side by side in the same run.

For each workload × algorithm × k it measures one whole meta-iteration (inner loops,
meta-gradient, Adam step; the task batch is sampled once beforehand) for the library and for
``baseline.py``: the median and interquartile range of the wall time over repeats after one
warm-up, and the peak resident memory above the level before the iteration (the kernel's
high-water mark, reset through /proc/self/clear_refs). It also checks that both compute the
same meta-gradient. Workloads:

    S  sinusoid, MLP 1-40-40-1, K = 10 (+10 query), meta-batch 25
    O  Omniglot-shaped Conv4 (random 28×28 inputs), 5-way 1-shot, 15 query per class,
       meta-batch 32

    python benchmarks/bench.py                     # everything, writes results/bench.{json,md}
    python benchmarks/bench.py --workloads S --ks 1 5

Peak memory is a per-process high-water mark: freed memory stays with the process, so a row
measured after a larger one in the same process can read too low. For memory comparisons run
each row in its own process (one algorithm and one k per command), as results/bench-O-memory.md
does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import Baseline

from metazoo.algorithms import ALGORITHMS, get_algorithm, meta_gradient
from metazoo.analysis.cost import measure
from metazoo.models import MLP, Conv4, initial_params, make_loss
from metazoo.tasks import Sinusoid, TaskBatch

ROOT = Path(__file__).resolve().parent.parent


def workload(name: str, generator: torch.Generator):
    """(model, loss name, batch, inner_lr) of a workload."""
    if name == "S":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = MLP()
        return model, "mse", Sinusoid(k_shot=10, query_shots=10).sample(25, generator), 0.01
    if name == "O":
        tasks, n_way, k_shot, query = 32, 5, 1, 15
        labels = torch.arange(n_way)
        batch = TaskBatch(
            torch.rand(tasks, n_way * k_shot, 1, 28, 28, generator=generator),
            labels.repeat(k_shot).expand(tasks, -1).contiguous(),
            torch.rand(tasks, n_way * query, 1, 28, 28, generator=generator),
            labels.repeat(query).expand(tasks, -1).contiguous(),
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = Conv4(n_way)
        return model, "cross_entropy", batch, 0.4
    raise ValueError(f"unknown workload {name!r}")


#: variant → (algorithm, extra settings). "maml-recompute" is MAML with --maml-checkpoint.
VARIANTS = {name: (name, {}) for name in sorted(ALGORITHMS)}
VARIANTS["maml-recompute"] = ("maml", {"maml_checkpoint": True})


def run_config(work: str, variant: str, k: int, args) -> dict:
    generator = torch.Generator().manual_seed(0)
    model, loss_name, batch, inner_lr = workload(work, generator)
    model, batch = model.to(args.device), batch.to(args.device)
    loss = make_loss(model, loss_name)
    algorithm, extra = VARIANTS[variant]
    settings = get_algorithm(algorithm).make_settings(inner_steps=k, inner_lr=inner_lr, **extra)
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    cuda = torch.device(args.device).type == "cuda"
    strategy = args.strategy or ("loop" if has_conv and not cuda else "vmap")
    params = initial_params(model)
    fast_optimizer = torch.optim.Adam(params.values(), lr=1e-3)
    base_params = [p.clone() for p in params.values()]
    base_optimizer = torch.optim.Adam(base_params, lr=1e-3)
    baseline = Baseline(algorithm, model, loss_name, settings)

    def fast_step():
        grads, _ = meta_gradient(algorithm, loss, params, batch, settings, strategy=strategy,
                                 chunk_size=args.chunk_size)
        for name, p in params.items():
            p.grad = grads[name]
        fast_optimizer.step()

    def base_step():
        for p, g in zip(base_params, baseline.meta_gradient(base_params, batch)):
            p.grad = g
        base_optimizer.step()

    scale = error = float("nan")
    if not args.no_baseline:
        # Same numbers: both meta-gradients at the same θ₀ before any step.
        fast_grads, _ = meta_gradient(algorithm, loss, params, batch, settings, strategy=strategy)
        base_grads = baseline.meta_gradient(base_params, batch)
        scale = max(g.abs().max().item() for g in base_grads)
        error = max((fast_grads[n] - g).abs().max().item() for n, g in zip(params, base_grads))
    nothing = {"median_ms": float("nan"), "q25_ms": float("nan"), "q75_ms": float("nan"),
               "repeats": 0, "peak_mib": float("nan")}
    baseline_result = nothing if args.no_baseline else measure(base_step, args.repeats,
                                                               args.budget, args.device)
    fast_result = measure(fast_step, args.repeats, args.budget, args.device)
    return {"workload": work, "algorithm": variant, "k": k, "strategy": strategy,
            "metazoo": fast_result, "baseline": baseline_result,
            "speedup": baseline_result["median_ms"] / fast_result["median_ms"],
            "max_abs_error": error, "max_abs_gradient": scale}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", default=["S", "O"], choices=["S", "O"])
    parser.add_argument("--algorithms", nargs="+",
                        default=["joint", "maml", "maml-recompute", "fomaml", "reptile", "imaml"],
                        choices=list(VARIANTS))
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--repeats", type=int, default=7, help="timed iterations at most")
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds of timed iterations per measurement (at least 2 run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true",
                        help="measure metazoo alone (time and memory of slow workloads)")
    parser.add_argument("--strategy", choices=["vmap", "loop"], default=None,
                        help="metazoo's strategy (default: vmap, but loop for O on the CPU: the choices "
                             "`--strategy auto` makes on this machine)")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--device", default="cpu",
                        help="torch device, e.g. cuda (times wait for the device; memory is "
                             "the CUDA allocator's peak)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    parser.add_argument("--tf32", action="store_true",
                        help="on CUDA, let convolutions and matrix products use TF32 (default: "
                             "strict float32, as metazoo trains unless --tf32)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = args.tf32

    rows, lines = [], []
    header = ("| workload | algorithm | k | strategy | metazoo ms (IQR) | baseline ms (IQR) | "
              "speed-up | metazoo MiB | baseline MiB | max abs diff |")
    lines += [header, "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for work in args.workloads:
        for variant in args.algorithms:
            for k in args.ks:
                row = run_config(work, variant, k, args)
                rows.append(row)
                m, b = row["metazoo"], row["baseline"]
                line = (f"| {work} | {variant} | {k} | {row['strategy']} | {m['median_ms']:.1f} "
                        f"({m['q25_ms']:.1f}–{m['q75_ms']:.1f}) | {b['median_ms']:.1f} "
                        f"({b['q25_ms']:.1f}–{b['q75_ms']:.1f}) | {row['speedup']:.2f}× | "
                        f"{m['peak_mib']:.0f} | {b['peak_mib']:.0f} | "
                        f"{row['max_abs_error']:.1e} |")
                lines.append(line)
                print(line, flush=True)
    summary = memory_summary(rows)
    meta = {"torch": torch.__version__, "threads": args.threads, "machine": platform.machine(),
            "device": (torch.cuda.get_device_name(args.device)
                       if torch.device(args.device).type == "cuda" else "cpu"), "tf32": args.tf32,
            "processor": platform.processor(), "cores": os.cpu_count(),
            "command": " ".join(["python", "benchmarks/bench.py", *sys.argv[1:]])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "rows": rows, "summary": summary}, indent=2))
    text = ["# Time and peak memory per meta-iteration", "",
            (f"torch {meta['torch']}, device {meta['device']}, {args.threads} threads, "
            f"{meta['cores']} cores ({meta['machine']}). Median of up to {args.repeats} timed iterations after one "
            "warm-up; IQR in brackets; peak resident memory above the level before the "
            "iteration. Baseline: `benchmarks/baseline.py` (per-task loop, "
            "`torch.autograd.grad`). max abs diff: largest difference between the two "
            "meta-gradients at θ₀. Produced by:"), "", f"    {meta['command']}", "",
            *lines, "", "## Memory against k", "", *summary["lines"], ""]
    args.out.with_suffix(".md").write_text("\n".join(text))
    print("\n".join(summary["lines"]))


def memory_summary(rows: list[dict]) -> dict:
    """Slope of MAML's peak memory in k, iMAML's k=20/k=1 ratio, recomputation's saving."""
    found: dict = {"lines": []}

    def peak(work, variant, k):
        for row in rows:
            if (row["workload"], row["algorithm"], row["k"]) == (work, variant, k):
                return row["metazoo"]["peak_mib"]
        return None

    for work in sorted({row["workload"] for row in rows}):
        ks = sorted({row["k"] for row in rows if row["workload"] == work})
        if len(ks) < 2:
            continue
        low, high = ks[0], ks[-1]
        maml = [(k, peak(work, "maml", k)) for k in ks]
        if all(v is not None for _, v in maml):
            mean_k = sum(k for k, _ in maml) / len(maml)
            mean_v = sum(v for _, v in maml) / len(maml)
            slope = sum((k - mean_k) * (v - mean_v) for k, v in maml) / sum(
                (k - mean_k) ** 2 for k, _ in maml)
            found[f"{work}/maml_mib_per_step"] = slope
            found["lines"].append(f"- {work}: MAML peak memory grows by {slope:.1f} MiB per inner "
                                  f"step (least-squares slope over k = {ks}).")
        imaml = (peak(work, "imaml", low), peak(work, "imaml", high))
        if None not in imaml and imaml[0] > 0:
            found[f"{work}/imaml_ratio"] = imaml[1] / imaml[0]
            found["lines"].append(f"- {work}: iMAML peak at k = {high} is {imaml[1]:.0f} MiB, "
                                  f"{imaml[1] / imaml[0]:.2f}× its peak at k = {low} "
                                  f"({imaml[0]:.0f} MiB).")
        recompute = (peak(work, "maml-recompute", high), peak(work, "maml", high))
        if None not in recompute and recompute[1] > 0:
            found[f"{work}/recompute_ratio"] = recompute[0] / recompute[1]
            found["lines"].append(f"- {work}: MAML with recomputation at k = {high} peaks at "
                                  f"{recompute[0]:.0f} MiB, {recompute[0] / recompute[1]:.2f}× "
                                  f"the {recompute[1]:.0f} MiB without.")
    return found


if __name__ == "__main__":
    main()
