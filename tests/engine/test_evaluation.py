"""Held-out evaluation a batch at a time: the same tasks and the same numbers as drawing them
all at once, memory checked for one batch, and progress bars that count what bounds the
work (tasks scored; training's iterations or budget seconds)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import metazoo.engine.setup as building
from metazoo.engine import TrainConfig
from metazoo.engine.evaluate import per_task_metrics
from metazoo.engine.progress import advance, progress_bar, training_bar
from metazoo.engine.run import evaluate_params
from metazoo.engine.setup import build, held_out_batch, initial_meta_params
from tests.hostile.harness import OK, TINY, cli


@pytest.fixture
def arrays(tmp_path):
    """A classification family on arrays: 20 classes of 6 examples, 64 numbers each."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "inputs.npy", rng.normal(size=(120, 64)).astype(np.float32))
    np.save(folder / "labels.npy", np.repeat(np.arange(20), 6))
    return folder


def all_at_once(setup, params, state, num_tasks: int) -> dict:
    """The held-out evaluation as it was before it went a batch at a time: every task drawn
    in one call, then vmapped a chunk at a time."""
    config = setup.config
    tasks = setup.eval_tasks.sample(num_tasks, torch.Generator().manual_seed(config.eval_seed))
    return per_task_metrics(setup.loss, params, tasks.to(config.device, config.torch_dtype),
                            steps=config.eval_steps, method=setup.method, state=state,
                            predict=setup.predict, transductive=config.eval_transductive,
                            strategy=setup.strategy, chunk_size=held_out_batch(config))


@pytest.mark.parametrize("strategy", ["vmap", "loop"])
@pytest.mark.parametrize("task", ["sinusoid", "arrays"])
def test_batches_score_the_tasks_of_one_draw_bit_for_bit(task, strategy, arrays):
    options = {"data_dir": str(arrays), "n_way": 3, "k_shot": 1, "query_shots": 2,
               "model": "mlp"} if task == "arrays" else {}
    for meta_batch, chunk_size in ((3, None), (25, 4), (25, None)):  # batches of 3, 4 and all 7
        config = TrainConfig(task=task, algorithm="maml", meta_batch=meta_batch,
                             chunk_size=chunk_size, eval_tasks=7, eval_steps=[0, 2],
                             strategy=strategy, eval_transductive=task == "sinusoid",
                             **options)
        setup = build(config)
        params, state = initial_meta_params(setup)
        batched = evaluate_params(setup, params, state, per_task=True)
        whole = all_at_once(setup, params, state, 7)
        assert batched.keys() == whole.keys()
        for step, metrics in whole.items():
            assert batched[step].keys() == metrics.keys()
            for metric, values in metrics.items():
                assert values.shape == (7,) and torch.equal(batched[step][metric], values)


def test_memory_is_checked_for_a_batch_of_examples_and_the_indices_of_every_task(
        arrays, monkeypatch):
    options = {"task": "arrays", "data_dir": str(arrays), "n_way": 3, "k_shot": 1,
               "query_shots": 2, "model": "mlp", "meta_batch": 4}
    config = TrainConfig(**options)
    per_task = building._bytes_per_task(config, config.task_options(evaluation=True))
    indices = build(config).eval_tasks.sample_indices(1, torch.Generator())
    per_index = sum(index.nbytes for index in indices)
    assert per_task > 10 * per_index  # 64 numbers an example; a few integers

    def needed(count: int, batch: int) -> int:
        return min(count, batch) * per_task + count * per_index

    # Room for 900 tasks' indices and 4 tasks' examples: 900 tasks, 4 at a time, fit.
    monkeypatch.setattr(building, "_physical_memory", lambda: needed(900, 4))
    build(TrainConfig(**options, eval_tasks=900, val_every=10, val_tasks=900))
    assert 900 * per_task > needed(900, 4)  # all at once, they would not
    for refused in ({"eval_tasks": 901}, {"eval_tasks": 900, "chunk_size": 5},
                    {"eval_tasks": 10, "val_every": 10, "val_tasks": 901}):
        with pytest.raises(ValueError, match=r"the held-out tasks would take .* lower "
                                             r"eval_tasks, eval_k_shot, eval_query_shots.* or "
                                             r"chunk_size \(else meta_batch"):
            build(TrainConfig(**options, **refused))
    with pytest.raises(ValueError, match="one meta-batch would take"):
        build(TrainConfig(**{**options, "meta_batch": 1000}))
    # A family drawn whole (sinusoid) is counted whole.
    sinusoid = building._bytes_per_task(TrainConfig(), TrainConfig().task_options(True))
    monkeypatch.setattr(building, "_physical_memory", lambda: 100 * sinusoid)
    build(TrainConfig(eval_tasks=100))
    with pytest.raises(ValueError, match=r"the held-out tasks would take .* lower eval_tasks, "
                                         r"eval_k_shot, eval_query_shots$"):
        build(TrainConfig(eval_tasks=101))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_are_drawn_on_a_terminal_only(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert progress_bar(True, total=3).disable
    monkeypatch.setattr("sys.stderr", Terminal())
    assert progress_bar(False, total=3).disable
    assert not progress_bar(True, total=3).disable


def test_the_evaluation_bar_counts_the_tasks_scored(monkeypatch):
    config = TrainConfig(meta_batch=4, eval_tasks=10, eval_steps=[0, 1], strategy="vmap")
    setup = build(config)
    params, state = initial_meta_params(setup)
    bars = []

    def every_update(progress, **options):  # tqdm draws at most every 0.1 s by default
        bars.append(progress_bar(progress, mininterval=0, miniters=1, **options))
        return bars[-1]

    monkeypatch.setattr("metazoo.engine.run.progress_bar", every_update)
    monkeypatch.setattr("sys.stderr", terminal := Terminal())
    evaluate_params(setup, params, state, progress=True, desc="final evaluation")
    shown = terminal.getvalue()
    assert "final evaluation" in shown and bars[0].total == bars[0].n == 10
    assert [f"{n}/10 " in shown for n in (0, 4, 8, 10)] == [True] * 4, shown
    monkeypatch.setattr("sys.stderr", terminal := Terminal())
    evaluate_params(setup, params, state, progress=False)
    assert terminal.getvalue() == ""


def test_the_training_bar_counts_budget_seconds_under_a_time_budget(monkeypatch):
    monkeypatch.setattr("sys.stderr", terminal := Terminal())
    config = TrainConfig(iterations=100_000, time_budget=60)
    bar = training_bar(config, 40, 12.5, True)
    assert bar.total == 60 and bar.n == 12.5
    advance(bar, config, 120, 30.25, loss=0.5)
    assert bar.n == 30.25
    advance(bar, config, 300, 61.0)  # the last iteration overruns the budget
    bar.close()
    shown = terminal.getvalue().split("\r")[-1]
    assert "60/60 s of budget" in shown and "iteration 300" in shown, shown
    assert "100000" not in terminal.getvalue()

    monkeypatch.setattr("sys.stderr", terminal := Terminal())
    config = TrainConfig(iterations=50)
    bar = training_bar(config, 10, 3.0, True)
    advance(bar, config, 11, 3.2, loss=0.25)
    bar.close()
    assert bar.total == 50 and bar.n == 11
    assert "11/50" in terminal.getvalue() and "loss=0.2500" in terminal.getvalue()


def test_eval_takes_no_progress(run):
    result = cli("eval", run, "--tasks", "3", "--no-progress")
    assert result.code == OK and result.err == "" and "3 held-out tasks" in result.out
    assert "--no-progress" in cli("eval", "--help").out
    assert cli("train", *TINY, "--help").code == OK
