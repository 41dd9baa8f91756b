"""Section 2: is a learned θ good because its own loss is low, or because it is easy to optimise
from? Starting loss, loss after the test steps, gain, and two controls for the start: the gain
at matched starting loss (binned), and every θ perturbed to one starting loss."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import torch

from metazoo.analysis import report as rpt
from metazoo.analysis.config import CompareConfig
from metazoo.analysis.grid import PER_TASK, RUNS, k_label, run_name
from metazoo.analysis.metrics import matched_start
from metazoo.analysis.sections import analysis_tasks, drawable, finite_mean
from metazoo.engine import rebuild_run
from metazoo.stats import matched_gain

#: In the perturbation control, a θ whose own starting loss is above this multiple of the
#: median is left out rather than matched.
OUTLIER_START = 1.5


def decomposition(config: CompareConfig, out: Path) -> dict:
    """Per training k: the per-task losses before and after the test steps of every
    algorithm (all seeds pooled), and their gain at matched starting loss."""
    final = max(config.test_steps)
    summary = {}
    for k in config.train_steps:
        pre, post = {}, {}
        for algorithm in config.algorithms:
            values = [torch.load(out / RUNS / run_name(algorithm, k, s) / PER_TASK,
                                 weights_only=True) for s in config.seeds]
            pre[algorithm] = torch.cat([v[0]["loss"] for v in values]).double()
            post[algorithm] = torch.cat([v[final]["loss"] for v in values]).double()
        summary[k] = (pre, post, matched_gain(pre, post))
    return summary


def blocks(config: CompareConfig, out: Path) -> list:
    final = max(config.test_steps)
    algorithms = config.algorithms
    blocks: list = [rpt.heading("2. A low-loss θ or an easy-to-optimise θ?")]
    summary = decomposition(config, out)
    header = ["algorithm", "train k", "loss at θ (pre)", f"loss after {final} steps (post)",
              "gain pre − post", "gain at matched pre-loss"]
    rows = []
    for k, (pre, post, matched) in summary.items():
        for algorithm in algorithms:
            gain = matched["matched"][algorithm]
            rows.append([algorithm, k_label(k), rpt.cell(pre[algorithm]),
                         rpt.cell(post[algorithm]), rpt.cell(pre[algorithm] - post[algorithm]),
                         f"{gain:.3g}" if math.isfinite(gain) else "— (diverged or no bin)"])
    blocks += [rpt.paragraph(
        "Loss (mean ± 95% CI over held-out tasks, all seeds pooled) before adaptation, after "
        f"{final} test steps, and the adaptation gain. The last column controls for the "
        "starting point: tasks of all θ are pooled and binned by pre-adaptation loss "
        "(quintiles); within a bin every θ starts equally well, and the column averages each "
        "θ's mean gain over the bins that all θ populate (at least 5 tasks each)."),
        rpt.table(header, rows)]
    k = config.train_steps[0]
    pre, post, matched = summary[k]
    blocks.append(rpt.bar_figure(
        "q2_decomposition.png", f"Loss before and after {final} test steps (train k = "
        f"{k_label(k)}).", list(algorithms),
        {"pre (θ)": [drawable(pre[a]) for a in algorithms],
         f"post ({final} steps)": [drawable(post[a]) for a in algorithms]},
        ylabel="query loss", title=f"train k = {k_label(k)}"))
    statements = []
    for k, (pre, post, matched) in summary.items():
        lowest_pre = min(algorithms, key=lambda a: finite_mean(pre[a]))
        lowest_post = min(algorithms, key=lambda a: finite_mean(post[a]))
        raw_gain = max(algorithms, key=lambda a: -finite_mean(post[a] - pre[a]))
        easiest = max(algorithms, key=lambda a: matched["matched"][a]
                      if not math.isnan(matched["matched"][a]) else -math.inf)
        if matched["bins_used"] == 0:
            easiest = "none (no loss bin holds enough tasks of every θ)"
        reason = ("So the best post-adaptation θ wins because its own loss is lowest too."
                  if lowest_post == lowest_pre else
                  "So the best post-adaptation θ wins because it adapts best from an equal "
                  "start." if lowest_post == easiest else
                  "So neither the lowest starting loss nor the largest matched gain alone "
                  "explains the best post-adaptation θ.")
        statements.append(
            f"train k = {k_label(k)}: lowest loss after adaptation — {lowest_post} "
            f"({finite_mean(post[lowest_post]):.3g}); lowest loss at θ — {lowest_pre} "
            f"({finite_mean(pre[lowest_pre]):.3g}); largest raw gain — {raw_gain}; largest "
            f"gain at matched starting loss — {easiest}"
            + (f" ({matched['matched'][easiest]:.3g}, {matched['bins_used']} bins)"
               if matched["bins_used"] else "")
            + f". {reason}")
    blocks.append(rpt.bullets(statements))
    return blocks + _perturbed_start(config, out, final)


def perturbed_start(config: CompareConfig, out: Path, final: int) -> dict:
    """The second control: every θ (train k and seed the first of each) pushed by a random
    perturbation to the same starting loss, the highest any θ has, then adapted for
    ``final`` steps (see :func:`~metazoo.analysis.metrics.matched_start`).

    Returns ``{"own": {algorithm: at θ itself}, "moved": {algorithm: perturbed}, "levels":
    {algorithm: mean loss at θ}, "target": float, "left_out": [algorithm]}``.
    """
    k, seed = config.train_steps[0], config.seeds[0]
    runs = {}
    for algorithm in config.algorithms:
        setup, params, state, _ = rebuild_run(out / RUNS / run_name(algorithm, k, seed))
        runs[algorithm] = (setup, params, state, analysis_tasks(setup, config))

    def control(algorithm: str, target: float) -> dict:
        setup, params, state, tasks = runs[algorithm]
        return matched_start(setup.loss, params, tasks, target, final, setup.method, state=state,
                             seed=seed)

    own = {a: control(a, -math.inf) for a in config.algorithms}  # s = 0: θ itself
    levels = {a: result["pre"].double().mean().item() for a, result in own.items()}
    target, left_out = common_start(levels)
    moved = {a: control(a, target) for a in config.algorithms if a not in left_out}
    return {"own": own, "moved": moved, "levels": levels, "target": target,
            "left_out": left_out}


def _perturbed_start(config: CompareConfig, out: Path, final: int) -> list:
    k, seed = config.train_steps[0], config.seeds[0]
    control = perturbed_start(config, out, final)
    own, moved, levels = control["own"], control["moved"], control["levels"]
    target, left_out = control["target"], control["left_out"]
    rows = []
    for algorithm in config.algorithms:
        if algorithm in left_out:
            rows.append([algorithm, "—", rpt.cell(own[algorithm]["pre"]), "—", "—"])
            continue
        result = moved[algorithm]
        gain = (result["pre"] - result["post"]).double()
        rows.append([algorithm, f"{result['scale']:.3g}", rpt.cell(result["pre"]),
                     rpt.cell(result["post"]), rpt.cell(gain)])
    # A diverged adaptation has no gain to rank: it is named, and ranks last.
    gains = {a: -finite_mean(r["post"] - r["pre"]) for a, r in moved.items()}
    best = max(gains, key=gains.get)
    median = statistics.median(levels.values())
    outliers = (
        " Left out (—): " + ", ".join(f"{a} (loss {levels[a]:.3g} at θ itself)" for a in left_out)
        + f", above {OUTLIER_START}× the median starting loss ({median:.3g}); matching it would "
        "move every other θ far from where it was trained." if left_out else "")
    return [rpt.paragraph(
        f"Control by perturbation (train k = {k_label(k)}, seed {seed}, {config.analysis_tasks} held-out "
        "tasks): each θ is moved along a fixed random direction, scaled tensor by tensor to "
        f"θ's own norms, until its mean loss before adaptation is {target:.3g}, the highest "
        f"starting loss of the θ compared; then {final} test steps. s is the length moved, in "
        "units of ‖θ‖ per tensor. All start equally well by construction." + outliers),
        rpt.table(["algorithm", "s", "loss at perturbed θ", f"after {final} steps", "gain"], rows),
        rpt.bullets([
            f"From the same starting loss ({target:.3g}), the largest gain is {best}'s "
            f"({gains[best]:.3g}); in order: "
            + ", ".join(f"{a} {gains[a]:.3g}" for a in sorted(gains, key=gains.get,
                                                             reverse=True)) + "."])]


def common_start(levels: dict[str, float]) -> tuple[float, list[str]]:
    """The starting loss every θ is perturbed to, and the θ left out.

    Perturbing can only raise a θ's loss, so the common level is the highest one; but a θ
    whose loss is far above the others' (more than ``OUTLIER_START`` × the median) would force
    every other θ far from where it was trained, where adaptation from it says little. Such
    θ are left out, and the level is the highest among the rest.
    """
    median = statistics.median(levels.values())
    left_out = ([a for a, level in levels.items() if level > OUTLIER_START * median]
                if median > 0 else [])
    return max(level for a, level in levels.items() if a not in left_out), left_out
