"""The questions ``metazoo compare`` answers, each from the runs of a finished grid.

1. Does second-order information beat first-order, and at which k does the gap close?
   (and the head-to-head contests the registry declares, e.g. iMAML against Reptile)
2. Is a learned θ good because its own loss is low, or because it is easy to optimise from?
3. What do the inner update paths look like?
4. How faithful is each cheap meta-gradient to the exact one it approximates?
5. What does each cost, in time and memory, as k grows?

Each function computes its numbers and returns report blocks (:mod:`metazoo.analysis.report`):
a table, a figure and statements derived from the numbers. No method is named here: pairs
and contests come from the registry.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.func import vmap

from metazoo.algorithms import ALGORITHMS, make_method, meta_gradient
from metazoo.analysis import report as rpt
from metazoo.analysis.cost import measure
from metazoo.analysis.grid import PER_TASK, RUNS
from metazoo.analysis.metrics import fidelity, matched_start, path_metrics
from metazoo.analysis.stats import matched_gain, mean_ci
from metazoo.engine import build, rebuild_run
from metazoo.models import initial_params

if TYPE_CHECKING:
    from metazoo.analysis.compare import CompareConfig


#: ``train_steps`` value meaning each algorithm's own k (its defaults, or its settings).
OWN = -1


def run_name(algorithm: str, steps: int, seed: int) -> str:
    """The folder name of one run of the grid."""
    return f"{algorithm}-k{k_label(steps)}-seed{seed}"


def k_label(steps: int) -> str:
    """A training k as the report writes it: ``own`` for each algorithm's own."""
    return "own" if steps == OWN else str(steps)


def runs_of(records: list[dict], algorithm: str, steps: int) -> list[dict]:
    """The records of ``algorithm`` trained with ``steps`` (as asked: OWN matches the runs made
    with each algorithm's own k, whatever that resolved to)."""
    prefix = f"{algorithm}-k{k_label(steps)}-seed"
    return [r for r in records if r["name"].startswith(prefix)
            and r["name"][len(prefix):].isdigit()]


def _fmt(mean: float, half: float, digits: int = 3) -> str:
    if math.isnan(half):
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {half:.2g}"


def _cell(values, unit: str = "tasks") -> str:
    """Mean ± 95% CI, or, where any value is NaN or infinite, the divergence named: a table
    never shows nan or inf for a method that diverged."""
    data = torch.as_tensor(values, dtype=torch.float64).flatten()
    bad = int((~torch.isfinite(data)).sum())
    if bad:
        return f"diverged ({bad} of {data.numel()} {unit})"
    return _fmt(*mean_ci(data))


def _drawable(values) -> float:
    """A bar's height: the mean, or NaN (no bar) where it diverged."""
    mean = _finite_mean(values)
    return mean if math.isfinite(mean) else float("nan")


def _finite_mean(values) -> float:
    """The mean, or +inf where any value diverged (so a diverged θ ranks last)."""
    data = torch.as_tensor(values, dtype=torch.float64).flatten()
    return data.mean().item() if bool(torch.isfinite(data).all()) else math.inf


# ---- the five questions -------------------------------------------------------------------

def question1(config: CompareConfig, records: list[dict], metric: str, figures: Path):
    """Post-adaptation loss by algorithm × k (mean over seeds ± 95% t-interval)."""
    final = max(config.test_steps)
    blocks: list = [rpt.heading("1. Second-order vs first-order, as k grows")]
    header = ["algorithm", "train k"] + [f"{metric} after {s} steps" for s in config.test_steps]
    rows, curves = [], {}
    for algorithm in config.algorithms:
        for k in config.train_steps:
            runs = runs_of(records, algorithm, k)
            cells, last = [], None
            for step in config.test_steps:
                cell = _cell([r[f"{metric}@{step}"] for r in runs], unit="seeds")
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
    path = rpt.line_figure(figures / "q1_steps.png", config.test_steps, curves,
                           xlabel="test-time steps", ylabel=f"query {metric}",
                           panels=[k_label(k) for k in config.train_steps],
                           panel_name="train k")
    blocks.append(rpt.image(path, "Query loss against test steps, one panel per training k."))
    statements = []
    better = (lambda a, b: a > b) if metric == "accuracy" else (lambda a, b: a < b)
    for exact, first in comparison_pairs(config.algorithms):
        gaps = []
        for k in config.train_steps:
            reference = {r["seed"]: r[f"{metric}@{final}"] for r in runs_of(records, exact, k)}
            approx = {r["seed"]: r[f"{metric}@{final}"] for r in runs_of(records, first, k)}
            paired = [reference[s] - approx[s] for s in reference if s in approx]
            diverged = not all(math.isfinite(value) for value in paired)
            mean, half = mean_ci(paired)
            significant = not diverged and not math.isnan(half) and abs(mean) > half
            gaps.append((k, mean, half, significant, diverged))
        parts = []
        for k, mean, half, significant, diverged in gaps:
            if diverged:
                parts.append(f"k = {k_label(k)}: a run of {exact} or {first} diverged, no "
                             "difference")
                continue
            verdict = (f"{exact} better" if better(mean, 0) else f"{first} better") \
                if significant else "no difference resolved"
            parts.append(f"k = {k_label(k)}: {exact} − {first} = {_fmt(mean, half)} ({verdict})")
        numbered = [g for g in gaps if g[0] != OWN]  # "from k on" reads along the numbers
        closes = [k for k, _, _, significant, _ in numbered if not significant]
        tail = (f"; the difference is not resolved from k = {closes[0]} on" if closes
                and all(not g[3] for g in numbered if g[0] >= closes[0]) else "")
        statements.append(f"{exact} vs {first}, {metric} after {final} test steps, paired "
                          f"by seed — " + "; ".join(parts) + tail + ".")
    blocks.append(rpt.bullets(statements))
    return blocks


def contest_pairs(algorithms: list[str]) -> list[tuple[str, str]]:
    """(method, rival) for every head-to-head contest a registry entry declares (``rivals``)
    between two compared methods."""
    return [(name, rival) for name in algorithms for rival in ALGORITHMS[name].rivals
            if rival in algorithms]


def contests(config: CompareConfig, records: list[dict], metric: str) -> list:
    """Head-to-head contests the registry declares (e.g. principled iMAML against heuristic
    Reptile), paired by seed at every training k, each under its own protocol."""
    final = max(config.test_steps)
    better = (lambda a, b: a > b) if metric == "accuracy" else (lambda a, b: a < b)
    blocks: list = []
    for name, rival in contest_pairs(config.algorithms):
        blocks.append(rpt.heading(f"1b. {name} or {rival}?"))
        rows, verdicts = [], []
        for k in config.train_steps:
            own = {r["seed"]: r[f"{metric}@{final}"] for r in runs_of(records, name, k)}
            other = {r["seed"]: r[f"{metric}@{final}"] for r in runs_of(records, rival, k)}
            paired = [own[s] - other[s] for s in own if s in other]
            cell = _cell(paired, unit="seeds")
            if cell.startswith("diverged"):
                verdict = "a run diverged"
            else:
                mean, half = mean_ci(paired)
                verdict = ((f"{name} better" if better(mean, 0) else f"{rival} better")
                           if not math.isnan(half) and abs(mean) > half
                           else "no difference resolved")
            rows.append([k_label(k), _cell(list(own.values()), "seeds"),
                         _cell(list(other.values()), "seeds"), cell, verdict])
            verdicts.append(f"k = {k_label(k)}: {verdict}")
        blocks += [rpt.paragraph(
            f"Query {metric} after {final} test steps, each method under its own settings and "
            f"test-time adaptation, mean over seeds ± 95% t-interval; the difference is paired "
            "by seed (same task stream and held-out tasks)."),
            rpt.table(["train k", name, rival, f"{name} − {rival}", "verdict"], rows),
            rpt.bullets([f"{name} against {rival}: " + "; ".join(verdicts) + "."])]
    return blocks


def comparison_pairs(algorithms: list[str]) -> list[tuple[str, str]]:
    """(exact method, its cheap approximation) for every registered approximation whose exact
    method is compared too (the registry's ``approximates``)."""
    return [(ALGORITHMS[name].approximates, name) for name in algorithms
            if ALGORITHMS[name].approximates in algorithms]


def question2(config: CompareConfig, records: list[dict], out: Path, metric: str, figures: Path):
    """Starting loss, loss after j steps, gain, and gain at matched starting loss."""
    final = max(config.test_steps)
    blocks: list = [rpt.heading("2. A low-loss θ or an easy-to-optimise θ?")]
    summary = {}
    for k in config.train_steps:
        pre, post = {}, {}
        for algorithm in config.algorithms:
            values = [torch.load(out / RUNS / run_name(algorithm, k, s) / PER_TASK, weights_only=True)
                      for s in config.seeds]
            pre[algorithm] = torch.cat([v[0]["loss"] for v in values]).double()
            post[algorithm] = torch.cat([v[final]["loss"] for v in values]).double()
        matched = matched_gain(pre, post)
        summary[k] = (pre, post, matched)
    header = ["algorithm", "train k", "loss at θ (pre)", f"loss after {final} steps (post)",
              "gain pre − post", "gain at matched pre-loss"]
    rows = []
    for k, (pre, post, matched) in summary.items():
        for algorithm in config.algorithms:
            gain = matched["matched"][algorithm]
            rows.append([algorithm, k_label(k), _cell(pre[algorithm]), _cell(post[algorithm]),
                         _cell(pre[algorithm] - post[algorithm]),
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
    path = rpt.bar_figure(figures / "q2_decomposition.png", list(config.algorithms),
                          {"pre (θ)": [_drawable(pre[a]) for a in config.algorithms],
                           f"post ({final} steps)": [_drawable(post[a]) for a in config.algorithms]},
                          ylabel="query loss", title=f"train k = {k_label(k)}")
    blocks.append(rpt.image(path, f"Loss before and after {final} test steps (train k = {k_label(k)})."))
    statements = []
    for k, (pre, post, matched) in summary.items():
        lowest_pre = min(config.algorithms, key=lambda a: _finite_mean(pre[a]))
        lowest_post = min(config.algorithms, key=lambda a: _finite_mean(post[a]))
        raw_gain = max(config.algorithms, key=lambda a: -_finite_mean(post[a] - pre[a]))
        easiest = max(config.algorithms, key=lambda a: matched["matched"][a]
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
            f"({_finite_mean(post[lowest_post]):.3g}); lowest loss at θ — {lowest_pre} "
            f"({_finite_mean(pre[lowest_pre]):.3g}); largest raw gain — {raw_gain}; largest "
            f"gain at matched starting loss — {easiest}"
            + (f" ({matched['matched'][easiest]:.3g}, {matched['bins_used']} bins)"
               if matched["bins_used"] else "")
            + f". {reason}")
    blocks.append(rpt.bullets(statements))
    return blocks + _perturbed_start(config, out, final)


def _perturbed_start(config: CompareConfig, out: Path, final: int) -> list:
    """The second control of question 2: every θ pushed (by a random perturbation) to the
    same starting loss, the highest any θ has, then adapted; see :func:`matched_start`."""
    k, seed = config.train_steps[0], config.seeds[0]
    runs = {}
    for algorithm in config.algorithms:
        setup, params, _ = rebuild_run(out / RUNS / run_name(algorithm, k, seed))
        runs[algorithm] = (setup, params, _analysis_tasks(setup, config))

    def control(algorithm: str, target: float) -> dict:
        setup, params, tasks = runs[algorithm]
        return matched_start(setup.loss, params, tasks, target, final, setup.method, seed=seed)

    own = {a: control(a, -math.inf) for a in config.algorithms}  # s = 0: θ itself
    levels = {a: result["pre"].double().mean().item() for a, result in own.items()}
    target, left_out = common_start(levels)
    moved = {a: control(a, target) for a in config.algorithms if a not in left_out}
    rows = []
    for algorithm in config.algorithms:
        if algorithm in left_out:
            rows.append([algorithm, "—", _cell(own[algorithm]["pre"]), "—", "—"])
            continue
        result = moved[algorithm]
        gain = (result["pre"] - result["post"]).double()
        rows.append([algorithm, f"{result['scale']:.3g}", _cell(result["pre"]),
                     _cell(result["post"]), _cell(gain)])
    # A diverged adaptation has no gain to rank: it is named, and ranks last.
    gains = {a: -_finite_mean(r["post"] - r["pre"]) for a, r in moved.items()}
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


#: In the perturbation control, a θ whose own starting loss is above this multiple of the
#: median is left out rather than matched.
OUTLIER_START = 1.5


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


def _analysis_tasks(setup, config: CompareConfig):
    generator = torch.Generator().manual_seed(setup.config.eval_seed + 1)
    return setup.eval_tasks.sample(config.analysis_tasks, generator).to(
        setup.config.device, setup.config.torch_dtype)


def question3(config: CompareConfig, out: Path, figures: Path):
    """Geometry of the test-time inner paths from each algorithm's θ (seed 0, first k)."""
    k_train, seed = config.train_steps[0], config.seeds[0]
    steps = max(config.test_steps)
    blocks: list = [rpt.heading("3. What the inner paths look like")]
    names = ["consecutive_cosine", "straightness", "path_length", "displacement",
             "first_grad_norm", "path_curvature", "top_eigenvalue"]
    rows, summary = [], {}
    for algorithm in config.algorithms:
        setup, params, _ = rebuild_run(out / RUNS / run_name(algorithm, k_train, seed))
        tasks = _analysis_tasks(setup, config)
        per_task = vmap(lambda task, p=params, s=setup: path_metrics(
            s.loss, p, task, steps, s.method))(tasks)
        summary[algorithm] = {n: mean_ci(per_task[n]) for n in names}
        rows.append([algorithm] + [_fmt(*summary[algorithm][n]) for n in names])
    blocks += [rpt.paragraph(
        f"{steps} test-time SGD steps on the support sets of {config.analysis_tasks} held-out "
        f"tasks from each algorithm's θ (train k = {k_label(k_train)}, seed {seed}); mean ± 95% CI over "
        "tasks. consecutive_cosine: cosine of successive inner gradients; straightness: "
        "‖φ − θ‖ / path length; path_curvature: gᵀHg/‖g‖² along each step; top_eigenvalue: "
        "largest-magnitude Hessian eigenvalue of the support loss at θ (power iteration; "
        "it can be negative)."),
        rpt.table(["algorithm", *names], rows)]
    path = rpt.bar_figure(figures / "q3_paths.png", list(config.algorithms),
                          {n: [summary[a][n][0] for a in config.algorithms]
                           for n in ("consecutive_cosine", "straightness")},
                          ylabel="", title="inner-path shape")
    blocks.append(rpt.image(path, "Consecutive-gradient cosine and straightness per algorithm."))
    straightest = max(config.algorithms, key=lambda a: summary[a]["straightness"][0])
    # Power iteration finds the largest-magnitude eigenvalue, which may be negative.
    sharpest = max(config.algorithms, key=lambda a: abs(summary[a]["top_eigenvalue"][0]))
    flattest = min(config.algorithms, key=lambda a: abs(summary[a]["top_eigenvalue"][0]))
    blocks.append(rpt.bullets([
        (f"Straightest inner paths from {straightest}'s θ (straightness "
        f"{summary[straightest]['straightness'][0]:.3f}; 1 is a straight line)."),
        (f"Sharpest support-loss curvature at θ (largest |eigenvalue|): {sharpest} ("
        f"{summary[sharpest]['top_eigenvalue'][0]:.3g}); flattest: {flattest} "
        f"({summary[flattest]['top_eigenvalue'][0]:.3g})."),
    ]))
    return blocks


def question4(config: CompareConfig, out: Path, figures: Path, source: str):
    """Cosine and norm ratio of approximate meta-gradients to the exact one they estimate, at
    the same θ and tasks: every compared method whose registry entry ``approximates``
    ``source``, in each of its own variants."""
    blocks: list = [rpt.heading(f"4. How faithful is each cheap meta-gradient to {source}'s?")]
    setup, params, _ = rebuild_run(out / RUNS / run_name(source, config.train_steps[0],
                                                         config.seeds[0]))
    params = setup.method.model_params(params)
    start = {n: p.to(params[n]) for n, p in initial_params(setup.model).items()}
    tasks = _analysis_tasks(setup, config)
    estimators = [name for exact, name in comparison_pairs(config.algorithms) if exact == source]
    rows, curves = [], {}
    labels: list[str] = []
    for where, theta in (("θ₀ (initialisation)", start), (f"trained {source} θ", params)):
        for name in estimators:
            for k in config.fidelity_steps:
                own = config.algorithm_options.get(name, {})
                step = {"inner_lr": config.inner_lr} if config.inner_lr else {}
                method = make_method(name, inner_steps=k, **step, **own)
                # The exact gradient with the same k and α as the estimate it judges.
                exact = make_method(source, inner_steps=k, inner_lr=method.settings.inner_lr,
                                    **config.algorithm_options.get(source, {}))
                for label, variant in method.variants().items():
                    label = label or name
                    values = vmap(lambda task, m=variant, e=exact, t=theta: fidelity(
                        setup.loss, t, task, m, e))(tasks)
                    cosine, ratio = mean_ci(values["cosine"]), mean_ci(values["norm_ratio"])
                    rows.append([where, label, str(k), _fmt(*cosine), _fmt(*ratio)])
                    curves.setdefault((label, where), []).append(cosine[0])
                    if label not in labels:
                        labels.append(label)
    blocks += [rpt.paragraph(
        f"Cosine and norm ratio of each approximate meta-gradient to the exact {source} "
        f"meta-gradient with the same k and α, on {config.analysis_tasks} "
        "held-out tasks (mean ± 95% CI). Each method's direction is first expressed as a "
        "gradient estimate by its own registry entry (Reptile's θ − φ is divided by k·α), and "
        "each method is measured in the variants its entry lists (e.g. iMAML over λ and CG "
        "steps). iMAML solves its own regularised inner problem, so it is exact only in the "
        "limit of a converged inner solve and small H/λ."),
        rpt.table(["θ", "estimator", "k", f"cosine to {source}", "norm ratio"], rows)]
    trained = f"trained {source} θ"
    path = rpt.line_figure(figures / f"q4_fidelity_{source}.png", config.fidelity_steps,
                           {label: curves[(label, trained)] for label in labels},
                           xlabel="inner steps k", ylabel=f"cosine to exact {source} gradient")
    blocks.append(rpt.image(path, f"Fidelity against k at the {trained}."))
    statements = []
    for label in labels:
        values = curves[(label, trained)]
        statements.append(f"{label}: cosine to {source}'s meta-gradient {values[0]:.3f} at k = "
                          f"{config.fidelity_steps[0]}, {values[-1]:.3f} at k = "
                          f"{config.fidelity_steps[-1]}.")
    blocks.append(rpt.bullets(statements))
    return blocks


def question5(config: CompareConfig, figures: Path):
    """Time and peak memory of one meta-iteration against k (the benchmark's measurement)."""
    blocks: list = [rpt.heading("5. What each costs as k grows")]
    train_config = config.train_config(config.algorithms[0], 1, 0)
    setup = build(train_config)
    params = initial_params(setup.model)
    batch = setup.tasks.sample(config.meta_batch, torch.Generator().manual_seed(0)).to(
        train_config.device, train_config.torch_dtype)
    rows, times, memory = [], {}, {}
    for name in config.algorithms:
        for k in config.cost_steps:
            method = config.train_config(name, k, 0).method()
            meta = method.init(params)
            result = measure(lambda m=meta, method=method: meta_gradient(
                method, setup.loss, m, batch), repeats=5, budget=3.0)
            rows.append([name, str(k), f"{result['median_ms']:.1f}",
                         f"{result['q25_ms']:.1f}–{result['q75_ms']:.1f}",
                         f"{result['peak_mib']:.1f}"])
            times.setdefault(name, []).append(result["median_ms"])
            memory.setdefault(name, []).append(result["peak_mib"])
    blocks += [rpt.paragraph(
        f"One meta-gradient over a meta-batch of {config.meta_batch} tasks (vmap), median of "
        "up to 5 timed runs after a warm-up, and the peak resident memory above the level "
        "before (`metazoo.analysis.cost.measure`, also used by `benchmarks/bench.py`)."),
        rpt.table(["algorithm", "k", "median ms", "IQR ms", "peak MiB"], rows)]
    path = rpt.line_figure(figures / "q5_time.png", config.cost_steps, times,
                           xlabel="inner steps k", ylabel="ms per meta-gradient")
    blocks.append(rpt.image(path, "Time per meta-gradient against k."))
    ks = config.cost_steps
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


