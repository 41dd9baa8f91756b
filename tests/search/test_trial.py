"""What a trial asks of the engine: ``train(held_out="val", on_validation=...)`` scores the
held-out tasks of the validation part only, calls back at each point of the curve, and stops
where the callback raises, its last checkpoint kept; a trial's configuration."""

import json

import pytest

from metazoo.engine import TrainConfig, read_run, train
from metazoo.search.trial import Budget, scored_steps, search_eval_seed, trial_config
from tests.search.helpers import READS


class Stop(Exception):
    pass


def test_a_callback_sees_each_validation_point_and_can_stop_the_run(tmp_path, parted_task):
    config = TrainConfig(task=parted_task, iterations=50, val_every=10, checkpoint_every=10,
                         val_tasks=4, eval_tasks=4, meta_batch=4)
    seen = []

    def on_validation(record):
        seen.append(record)
        if record["iteration"] == 30:
            raise Stop

    with pytest.raises(Stop):
        train(config, tmp_path / "run", progress=False, evaluate_at_end=False, held_out="val",
              on_validation=on_validation)
    assert [record["iteration"] for record in seen] == [10, 20, 30]
    written = (tmp_path / "run" / "validation.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in written] == seen
    assert read_run(tmp_path / "run").iteration == 20  # the point at 30 comes before its save
    assert {part for _, part in READS} == {"train", "val"}, READS


def test_a_trial_is_its_base_with_the_values_and_the_trial_budget():
    base = TrainConfig(algorithm="imaml", eval_steps=[0, 1, 5, 10])
    config = trial_config(base, {"lam": 7.0, "outer_lr": 3e-3, "inner_steps": 2},
                          Budget(30.0, "cpu", 25))
    assert (config.algorithm_options["lam"], config.outer_lr, config.inner_steps) == (7.0, 3e-3, 2)
    assert (config.time_budget, config.budget_clock, config.val_every) == (30.0, "cpu", 25)
    assert config.checkpoint_every == 25 and config.eval_steps == [10]
    assert config.eval_seed == search_eval_seed(base) != base.eval_seed
    # Meta-SGD is scored at the k steps its step sizes are learned for.
    metasgd = trial_config(TrainConfig(algorithm="metasgd"), {"inner_steps": 3},
                           Budget(30.0, "cpu", 25))
    assert scored_steps(metasgd) == 3 and metasgd.eval_steps == [3]
