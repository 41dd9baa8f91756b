"""TensorBoard events (``--tensorboard``) repeat a run's log, validation curve and results,
once per step across a resume; without the package the option is refused before any file."""

import importlib
import json
import sys

import pytest

pytest.importorskip("tensorboard")  # the `test` extra installs it

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from metazoo.analysis.config import CompareConfig, grid_cells
from metazoo.analysis.grid import run_grid
from metazoo.cli import main
from metazoo.engine import TrainConfig, train
from metazoo.engine.layout import read_log
from metazoo.engine.run import NOT_RESULTS
from metazoo.search.trial import Budget, trial_config

training = importlib.import_module("metazoo.engine.train")  # the module, not the function

TINY = {"iterations": 6, "meta_batch": 2, "log_every": 2, "checkpoint_every": 3,
        "val_every": 3, "val_tasks": 3, "eval_tasks": 4, "eval_steps": [0, 2],
        "strategy": "vmap", "tensorboard": True}


def events(run):
    """Every scalar of the run's event files, ``{tag: [(step, value), …]}``, and its
    hyperparameters plugin data, as TensorBoard reads them."""
    accumulator = EventAccumulator(str(run / "tensorboard"))
    accumulator.Reload()
    scalars = {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
               for tag in accumulator.Tags()["scalars"]}
    try:
        content = accumulator.PluginTagToContent("hparams")
    except KeyError:  # a run stopped before its end has none yet
        content = {}
    plugin = {tag: plugin_data_pb2.HParamsPluginData.FromString(data)
              for tag, data in content.items()}
    return scalars, plugin


def expected(run):
    """The scalars the run's own files hold, as the events should repeat them."""
    found = {}
    for record in read_log(run / "log.jsonl"):
        for key in ("loss", "seconds_per_iteration"):
            tag = f"train/{key.replace('_', ' ')}"
            found.setdefault(tag, []).append((record["iteration"], record[key]))
    for record in read_log(run / "validation.jsonl"):
        for key, value in record.items():
            if "@" in key:
                metric, steps = key.split("@")
                found.setdefault(f"validation/{metric} after {steps} steps", []).append(
                    (record["iteration"], value))
    results = json.loads((run / "results.json").read_text())
    for steps, metrics in results["evaluation"].items():
        for metric, estimate in metrics.items():
            found[f"results/{metric} after {steps} steps"] = [(results["iterations"],
                                                               estimate["mean"])]
    return found


def assert_same(scalars, wanted):
    assert set(scalars) == set(wanted)
    for tag, points in wanted.items():
        assert [step for step, _ in scalars[tag]] == [step for step, _ in points], tag
        assert [value for _, value in scalars[tag]] == pytest.approx(
            [value for _, value in points], rel=1e-6), tag  # events hold float32


def test_a_run_writes_its_log_validation_and_results_as_events(tmp_path, capsys):
    run = tmp_path / "run"
    flags = ["--iterations", "6", "--meta-batch", "2", "--log-every", "2", "--val-every", "3",
             "--val-tasks", "3", "--eval-tasks", "4", "--eval-steps", "0", "2", "--strategy",
             "vmap", "--inner-lr", "0.02", "--no-progress", "--tensorboard", "--out", str(run)]
    assert main(["train", *flags]) == 0, capsys.readouterr().err
    scalars, plugin = events(run)
    assert_same(scalars, expected(run))
    assert "train/loss" in scalars and "validation/loss after 2 steps" in scalars
    options = plugin["_hparams_/session_start_info"].session_start_info.hparams
    assert options["algorithm"].string_value == "maml"
    assert options["inner_lr"].number_value == 0.02
    assert options["eval_steps"].string_value == "[0, 2]"
    assert json.loads(options["tensorboard"].string_value) is True
    declared = {info.name.tag for info in plugin["_hparams_/experiment"].experiment.metric_infos}
    assert declared == {tag for tag in scalars if tag.startswith(("results/", "validation/"))}


class Killed(Exception):
    """The process dies just before its final checkpoint."""


def test_a_resumed_run_writes_each_step_once(tmp_path, monkeypatch):
    run, config = tmp_path / "run", TrainConfig(**{**TINY, "log_every": 1})
    save = training.save_checkpoint

    def dies_at_the_end(path, state):
        if state["iteration"] == config.iterations:
            raise Killed
        save(path, state)

    with monkeypatch.context() as patch:
        patch.setattr(training, "save_checkpoint", dies_at_the_end)
        with pytest.raises(Killed):
            train(config, run, progress=False)
    # Events up to iteration 6 are on disk, the checkpoint is at 3: the resume writes 4 to 6
    # again, and TensorBoard shows each step once.
    assert [step for step, _ in events(run)[0]["train/loss"]] == [1, 2, 3, 4, 5, 6]
    train(config, run, resume=True, progress=False)
    scalars, _ = events(run)
    assert_same(scalars, expected(run))
    # A finished run resumed writes nothing, not even an empty event file.
    files = sorted((run / "tensorboard").iterdir())
    assert train(config, run, resume=True, progress=False)["finished_before"]
    assert sorted((run / "tensorboard").iterdir()) == files


def test_overwrite_deletes_the_event_files_and_other_files_are_never_taken(tmp_path, capsys):
    run = tmp_path / "run"
    train(TrainConfig(**{**TINY, "val_every": 0}), run, progress=False)
    assert main(["train", "--iterations", "1", "--meta-batch", "2", "--eval-tasks", "2",
                 "--no-progress", "--overwrite", "--out", str(run)]) == 0
    assert not (run / "tensorboard").exists()
    # A tensorboard folder holding anything else is not a run's: it refuses a new run
    # without --overwrite, and is kept with it.
    other = tmp_path / "other"
    (other / "tensorboard").mkdir(parents=True)
    (other / "tensorboard" / "notes.txt").write_text("mine")
    assert main(["train", "--iterations", "1", "--no-progress", "--out", str(other)]) == 2
    assert "not a metazoo run (tensorboard)" in capsys.readouterr().err
    # A file where the events go is refused up front.
    (tmp_path / "third").mkdir()
    (tmp_path / "third" / "tensorboard").write_text("a file")
    assert main(["train", "--tensorboard", "--no-progress", "--out",
                 str(tmp_path / "third")]) == 2
    err = capsys.readouterr().err
    assert "cannot write its event files to" in err and "it is a regular file" in err
    assert "(--tensorboard)" in err


@pytest.mark.parametrize("command", [
    ["train", "--iterations", "1"],
    ["compare", "--algorithms", "maml", "--train-steps", "1", "--seeds", "0"],
    ["tune", "--trials", "1", "--trial-budget", "1"],
])
def test_without_the_package_it_is_refused_before_the_folder_is_touched(command, tmp_path,
                                                                      monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    out = tmp_path / "out"
    assert main([*command, "--tensorboard", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'metazoo[tensorboard]'" in err, err
    assert not out.exists()


def test_compare_and_tune_pass_it_to_their_runs_which_are_reused_either_way(tmp_path):
    compare = CompareConfig(algorithms=["maml"], train_steps=[1], seeds=[0], tensorboard=True)
    assert all(cell.tensorboard for cell in grid_cells(compare).values())
    assert trial_config(TrainConfig(tensorboard=True), {}, Budget(1.0, "cpu", 5)).tensorboard
    assert "tensorboard" in NOT_RESULTS  # turning it on or off never redoes a run
    cells = {"a": TrainConfig(**{**TINY, "val_every": 0})}
    run_grid(cells, tmp_path, jobs=1, progress=False)
    assert any((tmp_path / "runs" / "a" / "tensorboard").iterdir())
    records = run_grid({"a": TrainConfig(**{**TINY, "val_every": 0, "tensorboard": False})},
                       tmp_path, jobs=1, progress=False)
    assert records[0]["config"]["tensorboard"] is True  # the finished run, reused
