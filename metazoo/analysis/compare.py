"""``metazoo compare``: train every algorithm × inner steps × seed, then answer the questions
that motivate these methods, with numbers, 95% intervals, figures and derived statements.

1. Does second-order information beat first-order, and at which k does the gap close?
2. Is a learned θ good because its own loss is low, or because it is easy to optimise from?
3. What do the inner update paths look like?
4. How faithful is each cheap meta-gradient to the exact MAML one?
5. What does each cost, in time and memory, as k grows?

Every run gets the same number of meta-iterations (or the same ``--time-budget``), and is
scored on the same held-out tasks. Each finished run is appended to ``runs.jsonl`` and
``runs.csv``; an interrupted comparison resumes without redoing finished runs.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import multiprocessing
import os
import statistics
from concurrent.futures import FIRST_COMPLETED, CancelledError, ProcessPoolExecutor, wait
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.func import vmap
from tqdm import tqdm

from metazoo.algorithms import ALGORITHMS, make_method, meta_gradient
from metazoo.algorithms.base import check_field_types, option
from metazoo.analysis import report as rpt
from metazoo.analysis.cost import measure
from metazoo.analysis.metrics import fidelity, matched_start, path_metrics
from metazoo.analysis.stats import matched_gain, mean_ci, t_quantile
from metazoo.analysis.toy import toy_blocks
from metazoo.engine import build, evaluate_params, load_run, train
from metazoo.engine.config import TrainConfig
from metazoo.engine.folder import check_out, locked_folder
from metazoo.engine.layout import CHECKPOINT, LOCK, LOG, read_log, read_records
from metazoo.engine.run import NOT_RESULTS
from metazoo.engine.stopping import Interrupted, deferred_signals
from metazoo.fileio import append_line, atomic_write_bytes, atomic_write_data, write_json
from metazoo.messages import brief
from metazoo.models import initial_params


#: What a comparison folder holds. ``compare.json`` (the options) marks a folder as one; a
#: folder holding anything else is never written into.
MARKER = "compare.json"
RECORDS = "runs.jsonl"
TABLE = "runs.csv"
RUNS = "runs"
REPORT = "report"
#: Beside each run's own files (engine.layout): its per-task evaluation.
PER_TASK = "per_task.pt"
COMPARE_FILES = (MARKER, RECORDS, TABLE, RUNS, REPORT, LOCK)


@dataclass(frozen=True)
class CompareConfig:
    """Options of ``metazoo compare`` (defaults: sinusoid, about 10 minutes on 2 cores)."""

    task: str = option("sinusoid", "task family")
    algorithms: list = option([], "algorithms to compare (empty: every registered one)")
    train_steps: list = option([1, 5], "inner steps k while meta-training (one run each)")
    seeds: list = option([0, 1, 2], "seeds (one run each)")
    iterations: int = option(1000, "meta-iterations of every run (equal iterations)")
    time_budget: float = option(0.0, "seconds of meta-training per run instead (equal compute)")
    budget_clock: str = option("cpu", "what --time-budget counts: cpu (the run's CPU seconds; "
                                      "fair with --jobs > 1) or wall")
    jobs: int = option(0, "runs trained side by side, each with cores/jobs threads "
                          "(0: as many as there are cores, at most 2)")
    meta_batch: int = option(25, "tasks per meta-iteration")
    inner_lr: float = option(0.01, "inner step size α (training and test)")
    outer_lr: float = option(1e-3, "Adam step size")
    k_shot: int = option(10, "support examples per task (per class)")
    query_shots: int = option(10, "query examples per task (per class)")
    n_way: int = option(5, "classes per task (classification)")
    data_dir: str = option("", "data folder (Omniglot)")
    test_steps: list = option([0, 1, 2, 5, 10], "test-time steps to report after")
    eval_tasks: int = option(300, "held-out tasks per run")
    eval_query_shots: int = option(0, "query examples per held-out task (0: as query_shots)")
    analysis_tasks: int = option(100, "held-out tasks for path and fidelity measurements")
    fidelity_steps: list = option([1, 2, 5, 10], "k of the fidelity comparison")
    cost_steps: list = option([1, 5, 10, 20], "k of the cost measurements")
    toy_iterations: int = option(300, "meta-iterations of the 2-D picture (0: no picture)")
    device: str = option("cpu", "torch device")
    algorithm_options: dict = option({}, "each algorithm's own settings, keyed by algorithm, "
                                         "e.g. '{\"imaml\": {\"cg_damping\": 1.0}}'")

    def __post_init__(self) -> None:
        check_field_types(self)
        if not self.algorithms:
            object.__setattr__(self, "algorithms", list(ALGORITHMS))
        unknown = [a for a in self.algorithms if a not in ALGORITHMS]
        if unknown:
            raise ValueError(f"unknown algorithm(s) {', '.join(unknown)}; choose from: "
                             f"{', '.join(sorted(ALGORITHMS))}")
        for name in ("train_steps", "seeds", "test_steps", "fidelity_steps", "cost_steps"):
            values = getattr(self, name)
            if not values or any(not isinstance(v, int) or v < 0 for v in values):
                raise ValueError(f"{name} must be a non-empty list of integers >= 0, got {values}")
        if 0 in self.fidelity_steps:
            raise ValueError("fidelity_steps must be >= 1")
        for name in ("iterations", "meta_batch", "eval_tasks", "analysis_tasks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer")
        if self.jobs < 0:
            raise ValueError(f"jobs must be >= 0 (0: automatic), got {self.jobs} (--jobs)")
        foreign = sorted(set(self.algorithm_options) - set(self.algorithms))
        if foreign:
            raise ValueError(f"algorithm_options must be keyed by the algorithms compared "
                             f"({', '.join(self.algorithms)}); got {', '.join(foreign)[:120]}. "
                             "Write e.g. {\"imaml\": {\"cg_damping\": 1.0}}")
        # Every run's settings are checked before any run starts.
        for algorithm in self.algorithms:
            for steps in self.train_steps:
                self.train_config(algorithm, steps, self.seeds[0])

    def train_config(self, algorithm: str, steps: int, seed: int) -> TrainConfig:
        own = self.algorithm_options.get(algorithm, {})
        if not isinstance(own, dict):
            raise ValueError(  # noqa: TRY004 - a bad option value, reported as suchf"algorithm_options of {algorithm} must be an object of its "
                             f"settings, got {str(own)[:80]}")
        return TrainConfig(
            algorithm=algorithm, task=self.task, inner_steps=steps, inner_lr=self.inner_lr,
            outer_lr=self.outer_lr, meta_batch=self.meta_batch, iterations=self.iterations,
            time_budget=self.time_budget, budget_clock=self.budget_clock, seed=seed,
            k_shot=self.k_shot, algorithm_options=dict(own),
            query_shots=self.query_shots, n_way=self.n_way, data_dir=self.data_dir,
            eval_tasks=self.eval_tasks, eval_steps=list(self.test_steps),
            eval_query_shots=self.eval_query_shots, device=self.device,
            log_every=1, checkpoint_every=500,
            # One diverging method must not stop the sweep: its non-finite batches are dropped
            # and counted (skipped_batches in runs.jsonl), which is itself a finding.
            skip_nonfinite=True,
        )


def _run_name(algorithm: str, steps: int, seed: int) -> str:
    return f"{algorithm}-k{steps}-seed{seed}"


def _train_run(config: CompareConfig, algorithm: str, steps: int, seed: int, run_dir: Path,
               threads: int = 0) -> dict:
    """Train (or resume) and evaluate one run; its record for ``runs.jsonl``, which carries
    the run's whole configuration, so that a later comparison never reuses it for others."""
    if threads:
        torch.set_num_threads(threads)
    train_config = config.train_config(algorithm, steps, seed)
    resume = (run_dir / CHECKPOINT).is_file()
    summary = train(train_config, run_dir, resume=resume, overwrite=not resume,
                    progress=False, evaluate_at_end=False)
    setup, params, _ = load_run(run_dir)
    values = evaluate_params(setup, params, per_task=True)
    atomic_write_bytes(run_dir / PER_TASK, lambda file: torch.save(values, file))
    skipped = sum(bool(record.get("skipped")) for record in read_log(run_dir / LOG))
    return {"name": run_dir.name, "algorithm": algorithm, "k": steps, "seed": seed,
            "iterations": summary["iterations"], "train_seconds": summary["train_seconds"],
            "ms_per_iteration": 1e3 * summary["median_seconds_per_iteration"],
            "skipped_batches": skipped, "config": train_config.to_dict(),
            **{f"{metric}@{step}": v.double().mean().item()
               for step, metrics in values.items() for metric, v in metrics.items()}}


def _is_record(record: dict) -> bool:
    return (isinstance(record.get("name"), str) and isinstance(record.get("config"), dict)
            and {"algorithm", "k", "seed"} <= set(record))


def _stored_records(config: CompareConfig, out: Path) -> dict[str, dict]:
    """The finished runs recorded in ``out``, each checked against the run the options make
    now: a run made with other options is refused, never reused."""
    records = {record["name"]: record for record in read_records(
        out / RECORDS, _is_record, "a record of metazoo compare")}
    for algorithm in config.algorithms:
        for steps in config.train_steps:
            for seed in config.seeds:
                name = _run_name(algorithm, steps, seed)
                if name not in records:
                    continue
                wanted = config.train_config(algorithm, steps, seed)
                try:
                    stored = TrainConfig.from_dict(records[name]["config"])
                except (ValueError, TypeError) as error:
                    raise ValueError(f"{out / RECORDS}: the record of {name} holds an invalid "
                                     f"config ({brief([str(error)], width=100)})") from None
                differing = stored.differences(wanted, ignore=NOT_RESULTS)
                if differing:
                    first = differing[0]
                    raise ValueError(
                        f"{out} holds run {name} made with other options ({brief(differing)}; "
                        f"e.g. {first} {getattr(stored, first)!r} there, "
                        f"{getattr(wanted, first)!r} now); give the same options, or choose "
                        "another out folder")
    return records


def _check_compare_folder(out: Path) -> None:
    """Refuse a folder that is neither empty nor a comparison's (it has no ``compare.json``)."""
    if not out.is_dir():
        return
    entries = sorted(path.name for path in out.iterdir() if path.name != LOCK)
    if entries and not (out / MARKER).is_file():
        raise ValueError(f"{out} holds files that are not a comparison ({brief(entries)}); "
                         "choose another out folder")


def run_grid(config: CompareConfig, out: Path, progress: bool = True) -> list[dict]:
    """Train and evaluate every (algorithm, k, seed) not finished yet; return all records.

    Holds the folder's lock while it runs. With ``jobs > 1`` the runs are trained in worker
    processes, each with cores/jobs threads; a record is appended to ``runs.jsonl`` (and
    ``runs.csv`` rewritten) as each run ends, in whatever order they finish, so an
    interrupted sweep loses at most the runs in flight (and those resume from their own
    checkpoints).
    """
    with _comparison_folder(config, out) as folder:
        return _run_grid(config, folder, progress)


@contextlib.contextmanager
def _comparison_folder(config: CompareConfig, out: str | Path) -> Iterator[Path]:
    """Check ``out`` (writable, empty or a comparison's own, its runs made with these
    options), then hold its lock for the block; nothing is written before the checks."""
    out = check_out(out)
    _check_compare_folder(out)
    _stored_records(config, out)
    with locked_folder(out, files=(MARKER, TABLE)):
        _check_compare_folder(out)  # again, under the lock
        write_json(out / MARKER, dataclasses.asdict(config))
        yield out


def _run_grid(config: CompareConfig, out: Path, progress: bool) -> list[dict]:
    done = _stored_records(config, out)
    grid = [(a, k, s) for a in config.algorithms for k in config.train_steps for s in config.seeds]
    todo = [cell for cell in grid if _run_name(*cell) not in done]
    bar = tqdm(total=len(todo), disable=not progress, desc="compare", unit="run")
    records_path = out / RECORDS

    def finished(record: dict) -> None:
        with open(records_path, "a") as file:
            append_line(file, json.dumps(record))
        done[record["name"]] = record
        _write_csv(out / TABLE, list(done.values()))
        bar.set_postfix_str(record["name"])
        bar.update()

    jobs = min(config.jobs or min(2, os.cpu_count() or 1), len(todo)) or 1
    try:
        if jobs == 1:
            for cell in todo:
                finished(_train_run(config, *cell, out / RUNS / _run_name(*cell)))
        else:
            _in_workers(config, out, todo, jobs, finished)
    finally:
        bar.close()
    return [done[_run_name(*cell)] for cell in grid]


def _in_workers(config: CompareConfig, out: Path, todo: list, jobs: int, finished) -> None:
    """Train the runs ``todo`` in ``jobs`` worker processes.

    On SIGINT or SIGTERM no new run starts; the runs in flight finish their iteration and
    save a checkpoint (Ctrl-C reaches the workers itself; SIGTERM is passed on to them), and
    the comparison stops with the signal's status.
    """
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # spawn, not fork: forking a process whose OpenMP pool has already run can hang.
    context = multiprocessing.get_context("spawn")
    with deferred_signals() as signalled, ProcessPoolExecutor(jobs, mp_context=context) as pool:
        pending = {pool.submit(_train_run, config, *cell, out / RUNS / _run_name(*cell),
                               threads) for cell in todo}
        passed_on = False
        while pending:
            ready, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in ready:
                try:
                    finished(future.result())
                except (Interrupted, CancelledError, BrokenProcessPool):
                    if not signalled():
                        raise
            if signalled() and not passed_on:
                passed_on = True
                for future in pending:
                    future.cancel()
                if signalled() != 2:  # Ctrl-C already reached every process of the terminal
                    for child in multiprocessing.active_children():
                        os.kill(child.pid, signalled())
    if signalled():
        raise Interrupted(signalled(), None, out)


def _write_csv(path: Path, records: list[dict]) -> None:
    keys = sorted({key for record in records for key in record if key != "config"},
                  key=lambda k: (k not in ("name", "algorithm", "k", "seed"), k))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    atomic_write_data(path, text.getvalue().encode())


def _fmt(mean: float, half: float, digits: int = 3) -> str:
    if math.isnan(half):
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {half:.2g}"


# ---- the five questions -------------------------------------------------------------------

def question1(config: CompareConfig, records: list[dict], metric: str, figures: Path):
    """Post-adaptation loss by algorithm × k (mean over seeds ± 95% t-interval)."""
    final = max(config.test_steps)
    blocks: list = [rpt.heading("1. Second-order vs first-order, as k grows")]
    header = ["algorithm", "train k"] + [f"{metric} after {s} steps" for s in config.test_steps]
    rows, curves = [], {}
    for algorithm in config.algorithms:
        for k in config.train_steps:
            runs = [r for r in records if r["algorithm"] == algorithm and r["k"] == k]
            cells = []
            for step in config.test_steps:
                cells.append(_fmt(*mean_ci([r[f"{metric}@{step}"] for r in runs])))
            rows.append([algorithm, str(k), *cells])
            curves[(algorithm, k)] = [mean_ci([r[f"{metric}@{s}"] for r in runs])[0]
                                      for s in config.test_steps]
    blocks += [rpt.paragraph(
        f"Held-out query {metric} after test-time SGD steps, mean over {len(config.seeds)} "
        f"seeds ± 95% t-interval across seeds; every run had "
        + (f"{config.time_budget:g} s of meta-training (equal compute)." if config.time_budget
           else f"{config.iterations} meta-iterations (equal iterations).")),
        rpt.table(header, rows)]
    path = rpt.line_figure(figures / "q1_steps.png", config.test_steps, curves,
                           xlabel="test-time steps", ylabel=f"query {metric}",
                           panels=config.train_steps, panel_name="train k")
    blocks.append(rpt.image(path, "Query loss against test steps, one panel per training k."))
    statements = []
    better = (lambda a, b: a > b) if metric == "accuracy" else (lambda a, b: a < b)
    for exact, first in comparison_pairs(config.algorithms):
        gaps = []
        for k in config.train_steps:
            reference = {r["seed"]: r[f"{metric}@{final}"] for r in records
                         if r["algorithm"] == exact and r["k"] == k}
            approx = {r["seed"]: r[f"{metric}@{final}"] for r in records
                      if r["algorithm"] == first and r["k"] == k}
            paired = [reference[s] - approx[s] for s in reference if s in approx]
            mean, half = mean_ci(paired)
            significant = not math.isnan(half) and abs(mean) > half
            gaps.append((k, mean, half, significant))
        parts = []
        for k, mean, half, significant in gaps:
            verdict = (f"{exact} better" if better(mean, 0) else f"{first} better") \
                if significant else "no difference resolved"
            parts.append(f"k = {k}: {exact} − {first} = {_fmt(mean, half)} ({verdict})")
        closes = [k for k, _, _, significant in gaps if not significant]
        tail = (f"; the difference is not resolved from k = {closes[0]} on" if closes
                and all(not g[3] for g in gaps if g[0] >= closes[0]) else "")
        statements.append(f"{exact} vs {first}, {metric} after {final} test steps, paired "
                          f"by seed — " + "; ".join(parts) + tail + ".")
    blocks.append(rpt.bullets(statements))
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
            values = [torch.load(out / RUNS / _run_name(algorithm, k, s) / PER_TASK,
                                 weights_only=True)
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
            rows.append([algorithm, str(k), _fmt(*mean_ci(pre[algorithm])),
                         _fmt(*mean_ci(post[algorithm])),
                         _fmt(*mean_ci(pre[algorithm] - post[algorithm])),
                         f"{matched['matched'][algorithm]:.3g}"])
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
                          {"pre (θ)": [pre[a].mean().item() for a in config.algorithms],
                           f"post ({final} steps)": [post[a].mean().item() for a in config.algorithms]},
                          ylabel="query loss", title=f"train k = {k}")
    blocks.append(rpt.image(path, f"Loss before and after {final} test steps (train k = {k})."))
    statements = []
    for k, (pre, post, matched) in summary.items():
        lowest_pre = min(config.algorithms, key=lambda a: pre[a].mean().item())
        lowest_post = min(config.algorithms, key=lambda a: post[a].mean().item())
        raw_gain = max(config.algorithms, key=lambda a: (pre[a] - post[a]).mean().item())
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
            f"train k = {k}: lowest loss after adaptation — {lowest_post} "
            f"({post[lowest_post].mean().item():.3g}); lowest loss at θ — {lowest_pre} "
            f"({pre[lowest_pre].mean().item():.3g}); largest raw gain — {raw_gain}; largest "
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
        setup, params, _ = load_run(out / RUNS / _run_name(algorithm, k, seed))
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
            rows.append([algorithm, "—", _fmt(*mean_ci(own[algorithm]["pre"])), "—", "—"])
            continue
        result = moved[algorithm]
        gain = (result["pre"] - result["post"]).double()
        rows.append([algorithm, f"{result['scale']:.3g}", _fmt(*mean_ci(result["pre"])),
                     _fmt(*mean_ci(result["post"])), _fmt(*mean_ci(gain))])
    gains = {a: (r["pre"] - r["post"]).double().mean().item() for a, r in moved.items()}
    best = max(gains, key=gains.get)
    median = statistics.median(levels.values())
    outliers = (
        " Left out (—): " + ", ".join(f"{a} (loss {levels[a]:.3g} at θ itself)" for a in left_out)
        + f", above {OUTLIER_START}× the median starting loss ({median:.3g}); matching it would "
        "move every other θ far from where it was trained." if left_out else "")
    return [rpt.paragraph(
        f"Control by perturbation (train k = {k}, seed {seed}, {config.analysis_tasks} held-out "
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
        setup, params, _ = load_run(out / RUNS / _run_name(algorithm, k_train, seed))
        tasks = _analysis_tasks(setup, config)
        per_task = vmap(lambda task, p=params, s=setup: path_metrics(
            s.loss, p, task, steps, s.method))(tasks)
        summary[algorithm] = {n: mean_ci(per_task[n]) for n in names}
        rows.append([algorithm] + [_fmt(*summary[algorithm][n]) for n in names])
    blocks += [rpt.paragraph(
        f"{steps} test-time SGD steps on the support sets of {config.analysis_tasks} held-out "
        f"tasks from each algorithm's θ (train k = {k_train}, seed {seed}); mean ± 95% CI over "
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
    setup, params, _ = load_run(out / RUNS / _run_name(source, config.train_steps[0],
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
                method = make_method(name, inner_steps=k, inner_lr=config.inner_lr, **own)
                exact = make_method(source, inner_steps=k, inner_lr=config.inner_lr,
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
        f"meta-gradient with the same k and α = {config.inner_lr:g}, on {config.analysis_tasks} "
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


def compare(config: CompareConfig, out: str | Path, progress: bool = True) -> Path:
    """Run the grid (resuming), then write the report; returns the report's ``index.md``.

    Everything is checked before anything is written: the options of every run, the folder
    (empty, or a comparison's own), and the runs it already holds (made with these options).
    The folder's lock is held throughout.
    """
    with _comparison_folder(config, out) as folder:
        records = _run_grid(config, folder, progress)
        return _report(config, folder, records)


def _report(config: CompareConfig, out: Path, records: list[dict]) -> Path:
    metric = "accuracy" if any("accuracy@0" in r for r in records) else "loss"
    figures = out / REPORT
    figures.mkdir(parents=True, exist_ok=True)
    blocks: list = [rpt.title(f"metazoo compare: {config.task}"), rpt.paragraph(
        f"{len(records)} runs: algorithms {', '.join(config.algorithms)}; train k ∈ "
        f"{config.train_steps}; seeds {config.seeds}. Options: "
        + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(config).items()) + "."),
        rpt.paragraph(f"95% intervals: Student t over seeds (question 1) or normal over tasks; "
                      f"t quantile for {len(config.seeds)} seeds = "
                      f"{t_quantile(len(config.seeds) - 1):.3f}.")]
    blocks += question1(config, records, metric, figures)
    blocks += question2(config, records, out, "loss", figures)
    blocks += question3(config, out, figures)
    for source in dict.fromkeys(exact for exact, _ in comparison_pairs(config.algorithms)):
        blocks += question4(config, out, figures, source)
    blocks += question5(config, figures)
    if config.toy_iterations:
        blocks += toy_blocks(figures, config.toy_iterations)
    (figures / "index.md").write_text(rpt.to_markdown(blocks))
    (figures / "index.html").write_text(rpt.to_html(blocks, f"metazoo compare: {config.task}"))
    (figures / "summary.json").write_text(json.dumps(
        {"config": dataclasses.asdict(config),
         "runs": [{k: v for k, v in r.items() if k != "config"} for r in records]},
        indent=2) + "\n")
    return figures / "index.md"
