"""Section 5: time and peak memory of one meta-gradient against k (the benchmark's
measurement, :func:`metazoo.analysis.cost.measure`)."""

from __future__ import annotations

import torch

from metazoo.algorithms import meta_gradient
from metazoo.analysis import cost
from metazoo.analysis import report as rpt
from metazoo.analysis.config import CompareConfig
from metazoo.engine import build
from metazoo.models import initial_params


def measure_cost(config: CompareConfig) -> dict[str, list[dict]]:
    """``{algorithm: [measurement per k of cost_steps]}``, one meta-batch at θ₀."""
    train_config = config.train_config(config.algorithms[0], 1, 0)
    setup = build(train_config)
    params = initial_params(setup.model)
    batch = setup.tasks.sample(config.meta_batch, torch.Generator().manual_seed(0)).to(
        train_config.device, train_config.torch_dtype)
    found: dict[str, list[dict]] = {}
    for name in config.algorithms:
        for k in config.cost_steps:
            method = config.train_config(name, k, 0).method()
            meta, state = method.init(params)
            found.setdefault(name, []).append(cost.measure(
                lambda m=meta, s=state, method=method: meta_gradient(method, setup.loss, m, s,
                                                                     batch),
                repeats=5, budget=3.0))
    return found


def blocks(config: CompareConfig) -> list:
    blocks: list = [rpt.heading("5. What each costs as k grows")]
    measured = measure_cost(config)
    ks = config.cost_steps
    rows = [[name, str(k), f"{result['median_ms']:.1f}",
             f"{result['q25_ms']:.1f}–{result['q75_ms']:.1f}", f"{result['peak_mib']:.1f}"]
            for name in config.algorithms for k, result in zip(ks, measured[name])]
    times = {name: [result["median_ms"] for result in measured[name]]
             for name in config.algorithms}
    memory = {name: [result["peak_mib"] for result in measured[name]]
              for name in config.algorithms}
    blocks += [rpt.paragraph(
        f"One meta-gradient over a meta-batch of {config.meta_batch} tasks (vmap), median of "
        "up to 5 timed runs after a warm-up, and the peak resident memory above the level "
        "before (`metazoo.analysis.cost.measure`, also used by `benchmarks/bench.py`)."),
        rpt.table(["algorithm", "k", "median ms", "IQR ms", "peak MiB"], rows)]
    blocks.append(rpt.line_figure("q5_time.png", "Time per meta-gradient against k.", ks,
                                  times, xlabel="inner steps k", ylabel="ms per meta-gradient"))
    statements = []
    for name in config.algorithms:
        series = times[name]
        growth = series[-1] / series[0] if series[0] > 0 else float("nan")
        low, high = memory[name][0], memory[name][-1]
        peak = (f"peak memory {low:.1f} → {high:.1f} MiB above the resident set"
                if max(low, high) >= 0.1 else
                "no growth of the resident set measurable (< 0.1 MiB): the iteration reuses "
                "memory the process already holds")
        statements.append(f"{name}: {series[0]:.1f} ms at k = {ks[0]}, {series[-1]:.1f} ms at "
                          f"k = {ks[-1]} (×{growth:.1f}); {peak}.")
    blocks.append(rpt.bullets(statements))
    return blocks
