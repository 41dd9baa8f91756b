"""Section 1: post-adaptation loss by algorithm × training k (mean over seeds ± 95%
t-interval), and each cheap method against the exact one it approximates, paired by seed."""

from __future__ import annotations

from metazoo.analysis import report as rpt
from metazoo.analysis.config import CompareConfig
from metazoo.analysis.grid import OWN, k_label, runs_of
from metazoo.analysis.methods import approximations
from metazoo.stats import Difference, mean_ci, paired_by_seed


def final_values(records: list[dict], algorithm: str, k: int, key: str) -> dict[int, float]:
    """``{seed: record[key]}`` of the runs of ``algorithm`` trained with ``k``."""
    return {r["seed"]: r[key] for r in runs_of(records, algorithm, k)}


def blocks(config: CompareConfig, records: list[dict], metric: str) -> list:
    blocks: list = [rpt.heading("1. Second-order vs first-order, as k grows")]
    header = ["algorithm", "train k"] + [f"{metric} after {s} steps" for s in config.test_steps]
    rows, curves = [], {}
    for algorithm in config.algorithms:
        for k in config.train_steps:
            runs = runs_of(records, algorithm, k)
            cells, last = [], None
            for step in config.test_steps:
                cell = rpt.cell([r[f"{metric}@{step}"] for r in runs], unit="seeds")
                if cell.startswith("diverged") and last is not None:
                    cell += f"; last finite: {last[1]} after {last[0]} steps"
                elif not cell.startswith("diverged"):
                    last = (step, cell)
                cells.append(cell)
            resolved = sorted({r["k"] for r in runs})
            shown = (f"own ({', '.join(map(str, resolved))})" if k == OWN and resolved
                     else k_label(k))
            rows.append([algorithm, shown, *cells])
            curves[(algorithm, k_label(k))] = [mean_ci([r[f"{metric}@{s}"] for r in runs],
                                              drop_nan=False)[0] for s in config.test_steps]
    blocks += [rpt.paragraph(
        f"Held-out query {metric} after test-time SGD steps, mean over {len(config.seeds)} "
        f"seeds ± 95% t-interval across seeds; every run had "
        + (f"{config.time_budget:g} s of meta-training (equal compute)." if config.time_budget
           else f"{config.run_iterations()} meta-iterations (equal iterations).")),
        rpt.table(header, rows)]
    blocks.append(rpt.line_figure(
        "q1_steps.png", "Query loss against test steps, one panel per training k.",
        config.test_steps, curves, xlabel="test-time steps", ylabel=f"query {metric}",
        panels=[k_label(k) for k in config.train_steps], panel_name="train k"))
    statements = [_statement(config, records, metric, exact, cheap)
                  for exact, cheap in approximations(config.algorithms)]
    blocks.append(rpt.bullets(statements))
    return blocks


def _statement(config: CompareConfig, records: list[dict], metric: str, exact: str,
               cheap: str) -> str:
    """``exact`` against ``cheap`` at every training k, paired by seed, and the k from which
    the difference is no longer resolved."""
    final = max(config.test_steps)
    key = f"{metric}@{final}"
    gaps: list[tuple[int, Difference]] = [
        (k, paired_by_seed(final_values(records, exact, k, key),
                           final_values(records, cheap, k, key)))
        for k in config.train_steps]
    parts = []
    for k, gap in gaps:
        if gap.diverged:
            parts.append(f"k = {k_label(k)}: a run of {exact} or {cheap} diverged, no "
                         "difference")
            continue
        winner = gap.winner(exact, cheap, higher_is_better=metric == "accuracy")
        verdict = f"{winner} better" if winner else "no difference resolved"
        parts.append(f"k = {k_label(k)}: {exact} − {cheap} = {rpt.fmt(gap.mean, gap.ci95)} "
                     f"({verdict})")
    numbered = [(k, gap) for k, gap in gaps if k != OWN]  # "from k on" reads along the numbers
    closes = [k for k, gap in numbered if not gap.resolved]
    tail = (f"; the difference is not resolved from k = {closes[0]} on" if closes
            and all(not gap.resolved for k, gap in numbered if k >= closes[0]) else "")
    return (f"{exact} vs {cheap}, {metric} after {final} test steps, paired by seed — "
            + "; ".join(parts) + tail + ".")
