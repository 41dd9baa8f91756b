"""Time and peak memory per meta-iteration: metazoo against the plain PyTorch baseline,
side by side in the same run.

For each workload × algorithm × k it measures one whole meta-iteration (inner loops,
meta-gradient, Adam step; the task batch is sampled once beforehand) for the library and for
the plain reference of ``tests/reference.py``: the median and interquartile range of the wall time over repeats after one
warm-up, and the peak resident memory above the level before the warm-up (the kernel's
high-water mark, reset through /proc/self/clear_refs, read after free memory is returned to
the kernel). It also checks, on the first 8 tasks, that both compute the same meta-gradient.
Workloads:

    S  sinusoid, MLP 1-40-40-1, K = 10 (+10 query), meta-batch 25
    O  Omniglot-shaped Conv4 (random 28×28 inputs), 5-way 1-shot, 15 query per class,
       meta-batch 32

Each side runs in its own process, as it would in practice. The processes take turns (never
two at once), each running about 0.5 s of iterations (at least one) per round, so a slow spell
of a shared machine hits every side alike:

    metazoo   the library as ``metazoo train`` runs it: freed memory is retained for reuse
              (``TrainConfig.retain_memory``, ``metazoo.engine.allocator``)
    baseline  ``tests/reference.py`` (a loop over tasks, query losses summed, one backward pass) with
              the C library's default allocator: a usual script
    control   the same baseline in a process that also retains freed memory. metazoo against
              the control isolates the engine (same allocator); the control against the
              baseline is what retaining memory alone buys.

    python benchmarks/bench.py                     # S at k = 1, 5, 10, 20 and O at k = 1, 5
    python benchmarks/bench.py --workloads O --ks 1 5 10 20    # the whole O grid (long)
    python benchmarks/bench.py --workloads S --no-control

Any registered algorithm can be measured (``--algorithms``), as can MAML with recomputation;
the default rows are the methods issue 4 named (the constants at the top). Joint training has
no inner loop, so its meta-iteration does not depend on k: it is measured once, at the
smallest k.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch
from common import ROOT

from metazoo.algorithms import ALGORITHMS, get_algorithm, meta_gradient
from metazoo.analysis.cost import PeakMemory, summarize, timed
from metazoo.engine.allocator import retain_freed_memory
from metazoo.models import MLP, Conv4, initial_params, make_loss
from metazoo.tasks import Sinusoid, TaskBatch
from tests.reference import Baseline

# The methods this benchmark names, all for issue 4 (its speed targets and its questions about
# peak memory against the number of inner steps k); ``--algorithms`` takes any registered one.
#: The exact second-order method, whose peak memory should grow linearly in k.
EXACT = "maml"
#: The implicit method, whose peak memory should not depend on k.
IMPLICIT = "imaml"
#: The exact method with its inner steps recomputed in the backward pass (--maml-checkpoint),
#: set against the exact method at the largest k.
RECOMPUTE = "maml-recompute"
#: The default rows: the methods issue 4 set targets for, and joint training (the issue allows
#: the default run 15 minutes on a 2-core CPU).
DEFAULT_VARIANTS = ["joint", EXACT, RECOMPUTE, "fomaml", "reptile", IMPLICIT]
#: Methods without an inner loop: their meta-iteration does not depend on k, so they are
#: measured once, at the smallest k.
NO_INNER_LOOP = ("joint",)


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


#: variant → (algorithm, extra settings): every registered algorithm, then the recomputation
#: variant (after its algorithm, whose baseline numbers it reuses).
VARIANTS = {name: (name, {}) for name in sorted(ALGORITHMS)}
VARIANTS[RECOMPUTE] = (EXACT, {"checkpoint": True})
SIDES = ("metazoo", "baseline", "control")
DEFAULT_KS = {"S": [1, 5, 10, 20], "O": [1, 5]}
HEADER = ("| workload | algorithm | k | strategy | metazoo ms (IQR) | baseline ms (IQR) | speed-up "
          "| control ms (IQR) | engine speed-up | metazoo MiB | baseline MiB | max abs diff |")
RULE = "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"


def start_side(side: str, args) -> ProcessPoolExecutor:
    """A fresh process for one side (see the module docstring), kept for the whole run."""
    return ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=init_side,
                               initargs=(side, args.threads, args.tf32))


def init_side(side: str, threads: int, tf32: bool) -> None:
    torch.set_num_threads(threads)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
    if side in ("metazoo", "control"):
        retain_freed_memory()


#: This side's computation between calls (each side's process holds one at a time).
STATE: dict = {}
#: The meta-gradients are compared on the first tasks of the batch only (same code path).
CHECK_TASKS = 8
#: Seconds of back-to-back iterations per side and round (at least one iteration): short
#: iterations are timed warm, not each right after another process had the cores.
BLOCK = 0.5
#: Seconds between two sides' turns.
PAUSE = 0.05


def side_prepare(side: str, work: str, variant: str, k: int, args) -> dict:
    """Build one meta-iteration of ``side`` in this side's process and run it once (warm-up);
    on the metazoo side, first compare its meta-gradient with the baseline's at θ₀."""
    generator = torch.Generator().manual_seed(0)
    model, loss_name, batch, inner_lr = workload(work, generator)
    model, batch = model.to(args.device), batch.to(args.device)
    algorithm, extra = VARIANTS[variant]
    settings = get_algorithm(algorithm).make_settings(inner_steps=k, inner_lr=inner_lr, **extra)
    method = get_algorithm(algorithm).bind(settings)
    params, state = method.init(initial_params(model))  # Meta-SGD adds its α to θ
    baseline = Baseline(algorithm, model, loss_name, settings)
    info = {"strategy": strategy_for(model, args)}
    if side == "metazoo":
        loss = make_loss(model, loss_name)

        def gradient(tasks=batch):
            return meta_gradient(method, loss, params, state, tasks, strategy=info["strategy"],
                                 chunk_size=args.chunk_size)[0]

        if not args.no_baseline:
            few = batch.slice(0, min(CHECK_TASKS, batch.num_tasks))
            fast, base = gradient(few), baseline.meta_gradient(list(params.values()), few)
            info["max_abs_gradient"] = max(g.abs().max().item() for g in base)
            info["max_abs_error"] = max((fast[n] - g).abs().max().item()
                                        for n, g in zip(params, base))
    else:
        params = dict(zip(params, [p.clone() for p in params.values()]))

        def gradient():
            return dict(zip(params, baseline.meta_gradient(list(params.values()), batch)))

    optimizer = torch.optim.Adam(params.values(), lr=1e-3)

    def step():
        for name, g in gradient().items():
            params[name].grad = g
        optimizer.step()

    memory = PeakMemory(args.device)
    memory.start()
    timed(step, args.device)  # warm-up
    STATE.update(step=step, memory=memory, times=[], info=info, device=args.device)
    return info


def side_time(seconds: float) -> int:
    """Time meta-iterations of the prepared computation back to back for about ``seconds``
    (at least one); returns how many ran."""
    began, count = time.perf_counter(), 0
    while count == 0 or time.perf_counter() - began < seconds:
        STATE["times"].append(timed(STATE["step"], STATE["device"]))
        count += 1
    return count


def side_finish() -> dict:
    """Timing summary and peak memory of the prepared computation; forget it."""
    result = {**STATE["info"], **summarize(STATE["times"]), "peak_mib": STATE["memory"].peak_mib()}
    STATE.clear()
    return result


def measure_row(pools: dict, work: str, variant: str, k: int, args) -> dict:
    """All sides of one row: warm-ups, then timed rounds in which the sides take turns
    (metazoo, baseline, control, metazoo, …), each running about ``BLOCK`` seconds of
    iterations, so that a slow spell of the machine hits every side alike."""
    sides = [side for side in pools if side == "metazoo" or variant != RECOMPUTE]
    for side in sides:
        pools[side].submit(side_prepare, side, work, variant, k, args).result()
    began, rounds = time.perf_counter(), 0
    while rounds < args.repeats and (rounds < 2 or time.perf_counter() - began < args.budget):
        for side in sides:
            # A short pause first: the last side's idle threads stop spinning.
            time.sleep(PAUSE)
            pools[side].submit(side_time, BLOCK).result()
        rounds += 1
    return {side: pools[side].submit(side_finish).result() for side in sides}


def strategy_for(model: torch.nn.Module, args) -> str:
    """metazoo's strategy: what ``--strategy auto`` picks on this machine unless given."""
    if args.strategy:
        return args.strategy
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    return "loop" if has_conv and torch.device(args.device).type == "cpu" else "vmap"


NOTHING = {"median_ms": float("nan"), "q25_ms": float("nan"), "q75_ms": float("nan"),
           "repeats": 0, "peak_mib": float("nan")}


def fmt_time(m: dict) -> str:
    return f"{m['median_ms']:.1f} ({m['q25_ms']:.1f}–{m['q75_ms']:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", default=["S", "O"], choices=["S", "O"])
    parser.add_argument("--algorithms", nargs="+", default=DEFAULT_VARIANTS,
                        choices=list(VARIANTS),
                        help=f"variants to measure, {RECOMPUTE} after {EXACT} (default: "
                             f"{' '.join(DEFAULT_VARIANTS)})")
    parser.add_argument("--ks", type=int, nargs="+", default=None,
                        help="inner steps (default: 1 5 10 20 for S; 1 5 for O, whose whole "
                             "grid takes over an hour on a 2-core CPU)")
    parser.add_argument("--repeats", type=int, default=7,
                        help="timed rounds at most (per round, each side runs iterations for "
                             f"about {BLOCK} s, at least one)")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="seconds of timed rounds per row, all sides together (at least 2 "
                             "rounds run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true",
                        help="measure metazoo alone (time and memory of slow workloads)")
    parser.add_argument("--no-control", action="store_true",
                        help="skip the control (the baseline with retained memory)")
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
    sides = [s for s in SIDES if not (args.no_baseline and s != "metazoo")
             and not (args.no_control and s == "control")]
    began = time.perf_counter()
    pools = {side: start_side(side, args) for side in sides}
    rows: list[dict] = []
    print(HEADER, RULE, sep="\n", flush=True)
    try:
        for work in args.workloads:
            for variant in args.algorithms:
                ks = sorted(args.ks or DEFAULT_KS[work])
                for k in ks[:1] if variant in NO_INNER_LOOP else ks:
                    row = {"workload": work, "algorithm": variant, "k": k,
                           **measure_row(pools, work, variant, k, args)}
                    if variant == RECOMPUTE:
                        # The baseline has no recomputation: its numbers are the exact method's.
                        exact = next((r for r in rows if (r["workload"], r["algorithm"], r["k"])
                                      == (work, EXACT, k)), {})
                        row.update({side: exact[side] for side in sides
                                    if side != "metazoo" and side in exact})
                    rows.append(finish(row))
                    print(table_line(row), flush=True)
    finally:
        for pool in pools.values():
            pool.shutdown(cancel_futures=True)
    minutes = (time.perf_counter() - began) / 60
    summary = memory_summary(rows)
    meta = {"torch": torch.__version__, "threads": args.threads, "machine": platform.machine(),
            "device": (torch.cuda.get_device_name(args.device)
                       if torch.device(args.device).type == "cuda" else "cpu"), "tf32": args.tf32,
            "processor": platform.processor(), "cores": os.cpu_count(), "minutes": minutes,
            "repeats": args.repeats, "budget": args.budget,
            "command": " ".join(["python", "benchmarks/bench.py", *sys.argv[1:]])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "rows": rows, "summary": summary}, indent=2))
    args.out.with_suffix(".md").write_text(markdown(meta, rows, summary))
    print("\n".join(summary["lines"]))
    print(f"took {minutes:.1f} min")


def markdown(meta: dict, rows: list[dict], summary: dict) -> str:
    """The Markdown report of a run (``meta``, ``rows`` and ``summary`` as in its JSON)."""
    lines = [HEADER, RULE, *(table_line(row) for row in rows)]
    text = ["# Time and peak memory per meta-iteration", "",
            (f"torch {meta['torch']}, device {meta['device']}, {meta['threads']} threads, "
             f"{meta['cores']} cores ({meta['machine']}); the run took {meta['minutes']:.1f} min. "
             "Median of the timed iterations after one warm-up; the sides take turns, up to "
             f"{meta['repeats']} rounds of about {BLOCK} s (at least one iteration) each, for "
             f"about {meta['budget']:g} s per row; IQR in brackets; peak resident memory above "
             "the level before the warm-up. max abs diff is measured on the first 8 tasks. Each "
             "side runs in its own process: metazoo retains freed memory for reuse, as `metazoo "
             "train` does; the baseline (`tests/reference.py`: a loop over tasks, query "
             "losses summed, one backward pass) uses the C library's default allocator, as a "
             "usual script does; the control is the baseline with retained memory. speed-up: "
             "baseline / metazoo; engine speed-up: control / metazoo (same allocator). max abs "
             "diff: largest difference between the two meta-gradients at θ₀. Produced by:"),
            "", f"    {meta['command']}", "", *lines, "", "## Memory against k", "",
            *summary["lines"], ""]
    return "\n".join(text)


def finish(row: dict) -> dict:
    """Fill missing sides with NaN and add the ratios."""
    for side in SIDES:
        row.setdefault(side, dict(NOTHING))
    fast = row["metazoo"]
    row["strategy"] = fast.get("strategy", "")
    row["speedup"] = row["baseline"]["median_ms"] / fast["median_ms"]
    row["engine_speedup"] = row["control"]["median_ms"] / fast["median_ms"]
    row["max_abs_error"] = fast.get("max_abs_error", float("nan"))
    row["max_abs_gradient"] = fast.get("max_abs_gradient", float("nan"))
    return row


def table_line(row: dict) -> str:
    m, b, c = row["metazoo"], row["baseline"], row["control"]
    return (f"| {row['workload']} | {row['algorithm']} | {row['k']} | {row['strategy']} | "
            f"{fmt_time(m)} | {fmt_time(b)} | {row['speedup']:.2f}× | {fmt_time(c)} | "
            f"{row['engine_speedup']:.2f}× | {m['peak_mib']:.0f} | {b['peak_mib']:.0f} | "
            f"{row['max_abs_error']:.1e} |")


def memory_summary(rows: list[dict]) -> dict:
    """Slope of the exact method's peak memory in k, the implicit one's ratio between the
    largest and smallest k, and what recomputation saves at the largest k."""
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
        exact = [(k, peak(work, EXACT, k)) for k in ks]
        if all(v is not None for _, v in exact):
            mean_k = sum(k for k, _ in exact) / len(exact)
            mean_v = sum(v for _, v in exact) / len(exact)
            slope = sum((k - mean_k) * (v - mean_v) for k, v in exact) / sum(
                (k - mean_k) ** 2 for k, _ in exact)
            found[f"{work}/{EXACT}_mib_per_step"] = slope
            found["lines"].append(f"- {work}: {EXACT} peak memory grows by {slope:.1f} MiB per "
                                  f"inner step (least-squares slope over k = {ks}).")
        implicit = (peak(work, IMPLICIT, low), peak(work, IMPLICIT, high))
        if None not in implicit and implicit[0] > 0:
            found[f"{work}/{IMPLICIT}_ratio"] = implicit[1] / implicit[0]
            found["lines"].append(f"- {work}: {IMPLICIT} peak at k = {high} is "
                                  f"{implicit[1]:.0f} MiB, {implicit[1] / implicit[0]:.2f}× its "
                                  f"peak at k = {low} ({implicit[0]:.0f} MiB).")
        recompute = (peak(work, RECOMPUTE, high), peak(work, EXACT, high))
        if None not in recompute and recompute[1] > 0:
            found[f"{work}/recompute_ratio"] = recompute[0] / recompute[1]
            found["lines"].append(f"- {work}: {RECOMPUTE} at k = {high} peaks at "
                                  f"{recompute[0]:.0f} MiB, {recompute[0] / recompute[1]:.2f}× "
                                  f"the {recompute[1]:.0f} MiB of {EXACT}.")
    return found


if __name__ == "__main__":
    main()
