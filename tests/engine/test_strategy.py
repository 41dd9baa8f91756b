"""``strategy="auto"``: memory first, on few tasks; only what fits is timed; the choice and its
peaks are the log's first record, and the checkpoint keeps the choice for a resumed run."""

import importlib
import json
import math
import types

import pytest
import torch

from metazoo.engine import TrainConfig, train
from metazoo.engine.allocator import release_free_memory
from metazoo.engine.memory import can_measure
from metazoo.engine.strategy import Measured
from tests.helpers import read_state, rewrite_run
from tests.hostile.harness import refused

# The modules (``metazoo.engine.train`` is also the name of the function).
strategy_module = importlib.import_module("metazoo.engine.strategy")
train_module = importlib.import_module("metazoo.engine.train")

MIB = 2**20
#: The fake process's memory before and after every measurement.
LEVEL = 1000
#: What the fake workload needs (MiB): the loop, whatever the tasks; vmap, per task at once.
LOOP_NEED, VMAP_NEED = 100, 150

AUTO = {"iterations": 4, "meta_batch": 8, "log_every": 2, "checkpoint_every": 2,
        "eval_tasks": 4, "eval_steps": [0, 1], "strategy": "auto"}


def at_once(strategy, chunk_size, count):
    return 1 if strategy == "loop" else min(chunk_size or count, count)


@pytest.fixture
def fake(monkeypatch):
    """Every measurement of ``auto`` faked with the needs above (vmap twice as fast per task
    as the loop); ``fake.tried`` lists what was run, ``fake.need`` may be replaced."""

    def need(strategy, chunk_size, count):
        return LOOP_NEED if strategy == "loop" else VMAP_NEED * at_once(
            strategy, chunk_size, count)

    fake = types.SimpleNamespace(tried=[], need=need)

    def measure(setup, params, state, batch, device, strategy, chunk_size):
        count = batch.num_tasks
        fake.tried.append((strategy, chunk_size, count))
        peak = (LEVEL + fake.need(strategy, chunk_size, count)) * MIB
        return Measured(strategy, chunk_size, count, count * (1.0 if strategy == "loop" else 0.5),
                        peak, LEVEL * MIB)

    monkeypatch.setattr(strategy_module, "_measure", measure)
    monkeypatch.setattr(strategy_module, "can_measure", lambda device: True)
    return fake


@pytest.fixture
def executed(monkeypatch):
    """(strategy, chunk_size) of every meta-gradient the training loop takes: the rehearsal's
    first (one task, with the loop where the strategy is auto), then each meta-iteration's."""
    calls = []
    real = train_module.meta_gradient

    def spy(*args, strategy, chunk_size=None, **kwargs):
        calls.append((strategy, chunk_size))
        return real(*args, strategy=strategy, chunk_size=chunk_size, **kwargs)

    monkeypatch.setattr(train_module, "meta_gradient", spy)
    return calls


def limited(mib, **options):
    """The tiny run with ``max_memory`` at ``mib`` MiB."""
    return TrainConfig(**{**AUTO, **options, "max_memory": mib * MIB / 2**30})


def first_record(run):
    return json.loads((run / "log.jsonl").read_text().splitlines()[0])


def test_vmap_holds_the_whole_batch_where_it_fits(fake, tmp_path):
    summary = train(limited(LEVEL + VMAP_NEED * 8 + 10), tmp_path / "run", progress=False,
                    evaluate_at_end=False)
    assert (summary["strategy"], summary["chunk_size"]) == ("vmap", None)


def test_a_limit_chooses_the_chunk_never_tries_more_and_the_chunk_reaches_training(
        fake, executed, tmp_path):
    # 5 tasks at once fit; two chunks of 8 tasks are as even as 4 and 4.
    limit = LEVEL + VMAP_NEED * 5
    summary = train(limited(limit), tmp_path / "run", progress=False, evaluate_at_end=False)
    assert (summary["strategy"], summary["chunk_size"]) == ("vmap", 4)
    assert all(LEVEL + fake.need(*tried) <= limit for tried in fake.tried), fake.tried
    assert executed == [("loop", None)] + [("vmap", 4)] * 4
    record = first_record(tmp_path / "run")
    assert record["iteration"] == 0
    assert (record["strategy"], record["chunk_size"], record["tasks"]) == ("vmap", 4, 8)
    assert record["limit_bytes"] == limit * MIB
    assert record["peak_bytes"] == (LEVEL + VMAP_NEED * 4) * MIB  # measured on 8 tasks
    assert record["predicted_bytes"] == (LEVEL + VMAP_NEED * 4) * MIB
    assert [(c["strategy"], c["chunk_size"], c["fits"]) for c in record["candidates"]] == [
        ("loop", None, True), ("vmap", 4, True)]
    assert [(p["strategy"], p["chunk_size"], p["tasks"]) for p in record["probes"]] == [
        ("loop", None, 2), ("vmap", 1, 2), ("vmap", 2, 4)]
    assert read_state(tmp_path / "run")["chunk_size"] == 4


def test_a_limit_below_vmap_for_one_task_keeps_the_loop_without_trying_vmap(fake, tmp_path):
    summary = train(limited(LEVEL + 2 * LOOP_NEED - 1), tmp_path / "run", progress=False,
                    evaluate_at_end=False)
    assert (summary["strategy"], summary["chunk_size"]) == ("loop", None)
    assert {strategy for strategy, _, _ in fake.tried} == {"loop"}
    assert first_record(tmp_path / "run")["candidates"][0]["strategy"] == "loop"


def test_a_candidate_measured_over_the_limit_is_not_kept(fake, tmp_path):
    # vmap's memory jumps past 4 tasks at once, which two tasks at once cannot predict.
    fake.need = lambda strategy, chunk_size, count: (
        LOOP_NEED if strategy == "loop" else 150 * at_once(strategy, chunk_size, count) ** 2)
    summary = train(limited(LEVEL + 2000), tmp_path / "run", progress=False,
                    evaluate_at_end=False)
    assert summary["strategy"] == "loop"
    vmap = first_record(tmp_path / "run")["candidates"][1]
    assert vmap["strategy"] == "vmap" and vmap["fits"] is False
    assert vmap["peak_bytes"] > vmap["predicted_bytes"]


def test_nothing_fits_is_refused_before_the_folder_changes(fake, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    refused("train", "--iterations", "2", "--meta-batch", "4", "--eval-tasks", "2",
            "--max-memory", str((LEVEL + LOOP_NEED / 2) * MIB / 2**30), "--out", out,
            message="max_memory 1.03 GiB is less than the 1.07 GiB this run needs with the "
                    "loop over tasks", watch=tmp_path)
    assert list(out.iterdir()) == []


def test_the_refusal_names_what_makes_a_task_smaller(fake, tmp_path):
    with pytest.raises(ValueError) as error:
        train(limited(LEVEL), tmp_path / "run", progress=False)
    message = str(error.value)
    assert "lower query_shots, k_shot, inner_steps" in message
    assert "set the algorithm option checkpoint: recompute inner steps" in message
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError) as error:
        train(limited(LEVEL, algorithm="fomaml"), tmp_path / "run", progress=False)
    assert "checkpoint" not in str(error.value)


def test_a_resumed_run_keeps_the_choice_without_measuring(fake, executed, tmp_path):
    run = tmp_path / "run"
    train(limited(LEVEL + VMAP_NEED * 5), run, progress=False, evaluate_at_end=False)
    record = first_record(run)
    # The checkpoint at iteration 2 of a 6-iteration run (the state after 4 stands in for it),
    # whose stored choice differs from what the measurements would give now.
    state = read_state(run)
    state["chunk_size"] = 3
    state["iteration"] = state["scheduler"]["last_epoch"] = 2
    rewrite_run(run, state, iterations=6)
    fake.tried.clear()
    executed.clear()
    resumed = train(limited(LEVEL + VMAP_NEED * 8, iterations=6), run, resume=True,
                    progress=False, evaluate_at_end=False)
    assert fake.tried == []
    assert (resumed["strategy"], resumed["chunk_size"]) == ("vmap", 3)
    assert executed == [("loop", None)] + [("vmap", 3)] * 4
    assert first_record(run) == record  # the log still starts with what was measured
    assert read_state(run)["chunk_size"] == 3


def test_a_run_before_chunk_sizes_were_stored_resumes_with_its_configs(tmp_path):
    config = TrainConfig(**{**AUTO, "strategy": "vmap", "chunk_size": 2})
    run = tmp_path / "run"
    train(config, run, progress=False, evaluate_at_end=False)
    state = read_state(run)
    del state["chunk_size"]
    state["iteration"] = state["scheduler"]["last_epoch"] = 2
    rewrite_run(run, state, iterations=6)
    resumed = train(TrainConfig(**{**AUTO, "strategy": "vmap", "chunk_size": 2,
                                   "iterations": 6}), run, resume=True, progress=False,
                    evaluate_at_end=False)
    assert resumed["chunk_size"] == 2


def test_a_given_chunk_size_caps_what_auto_chooses(fake, tmp_path):
    summary = train(limited(LEVEL + VMAP_NEED * 8 + 10, chunk_size=3), tmp_path / "run",
                    progress=False, evaluate_at_end=False)
    assert (summary["strategy"], summary["chunk_size"]) == ("vmap", 3)


@pytest.mark.skipif(not can_measure("cpu"), reason="needs Linux's resident-set accounting")
def test_measured_for_real_the_record_holds_the_peaks_and_the_process_keeps_its_own(tmp_path):
    status = "/proc/self/status"

    def high_water_mark():
        with open(status) as file:
            return int(next(line for line in file if line.startswith("VmHWM")).split()[1])

    big = torch.ones(64 * MIB)  # 256 MiB: a peak of this process before the run
    del big
    release_free_memory()
    before = high_water_mark()
    summary = train(TrainConfig(**{**AUTO, "meta_batch": 4}), tmp_path / "run", progress=False,
                    evaluate_at_end=False)
    # What /usr/bin/time reports stays the process's true peak: a reset of the mark would
    # have dropped it to the level of the run (the kernel's count is exact to a few pages).
    assert high_water_mark() > before - 16 * 1024
    record = first_record(tmp_path / "run")
    assert (record["strategy"], record["chunk_size"]) == (summary["strategy"], None)
    assert 0 < record["probes"][0]["level_bytes"] <= record["peak_bytes"]
    assert record["peak_bytes"] < record["limit_bytes"] < math.inf
    assert record["limit_bytes"] == pytest.approx(strategy_module.default_limit("cpu"))


def test_the_refusal_names_the_image_size_of_an_image_task():
    config = TrainConfig(task="folder", data_dir="anywhere")
    setup = types.SimpleNamespace(config=config, method=config.method())
    message = strategy_module._refusal(setup, 3 * 2**30, 2 * 2**30)
    # max_memory left to its default: the message says so
    assert message.startswith("max_memory 2 GiB (its default on this machine) is less than "
                              "the 3 GiB this run needs")
    assert "lower query_shots, k_shot, inner_steps, image_size" in message


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_candidates_are_timed_on_the_run_s_budget_clock(clock, monkeypatch):
    """Under a CPU budget a candidate is timed in CPU seconds: other jobs on a shared machine
    inflate wall-clock timings at random and can make auto keep the slower strategy, which a
    CPU budget then pays for in iterations."""
    from metazoo.engine.setup import build, initial_meta_params

    setup = build(TrainConfig(**{**AUTO, "budget_clock": clock}))
    params, state = initial_meta_params(setup)
    ticks = {"cpu": iter(range(0, 1000, 3)), "wall": iter(range(0, 1000, 7))}
    fake_time = types.SimpleNamespace(process_time=lambda: next(ticks["cpu"]),
                                      perf_counter=lambda: next(ticks["wall"]))
    monkeypatch.setattr(strategy_module, "time", fake_time)
    batch = setup.tasks.sample(2, torch.Generator().manual_seed(0))
    measured = strategy_module._measure(setup, params, state, batch, "cpu", "vmap", None)
    assert measured.seconds == (3 if clock == "cpu" else 7)
