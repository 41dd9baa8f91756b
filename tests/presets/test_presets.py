"""Presets: published protocols as data, each value with its source; flags override them;
the presets of data metazoo can stand in for run as they are, for one iteration."""

import json

import pytest
import torch

from metazoo.cli import main
from metazoo.engine import TrainConfig
from metazoo.engine.setup import make_optimizer
from metazoo.presets import preset_names, preset_options, read_preset
from metazoo.tasks.air_quality import STATIONS
from tests.tasks.test_air_quality import station_frame, write_station
from tests.tasks.test_image_tasks import write_image


def faces(root):
    """A stand-in for the ORL faces: 40 people × 10 small grey photos."""
    for person in range(1, 41):
        for photo in range(1, 11):
            write_image(root / f"s{person}" / f"{photo}.png", 10 * person + photo, (23, 28), "L")
    return root


def air_quality(root):
    """A stand-in for the twelve stations' files: 72 hours of every month."""
    root.mkdir()
    for seed, station in enumerate(STATIONS):
        write_station(root, station_frame(station, seed, days=3))
    return root


#: Each preset whose data can be made here, and what makes it (None: it needs none).
RUNNABLE = {"maml-sinusoid-k10": None, "maml-faces-5w1s": faces,
            "maml-air-quality-k10": air_quality}


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_is_a_valid_config_with_a_source_for_every_value(name):
    preset = read_preset(name)
    assert preset["description"]
    options = preset["options"]
    keys = [k for k in options if k != "algorithm_options"]
    keys += [f"algorithm_options.{k}" for k in options.get("algorithm_options", {})]
    missing = [key for key in keys if not preset["sources"].get(key)]
    assert not missing, f"{name}: no source for {missing}"
    config = TrainConfig(**preset_options(name))  # validates every value
    assert config.algorithm == options["algorithm"]
    for key, value in options.get("algorithm_options", {}).items():
        assert config.algorithm_options[key] == value


def test_flags_override_a_preset_and_unknown_presets_are_refused(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--preset", "maml-omniglot-5w1s", "--task", "sinusoid", "--model", "mlp",
                 "--k-shot", "5", "--query-shots", "5", "--eval-k-shot", "5",
                 "--eval-query-shots", "5", "--inner-lr", "0.01", "--iterations", "2",
                 "--meta-batch", "2", "--eval-tasks", "4", "--no-progress", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    stored = json.loads((out / "config.json").read_text())
    assert stored["inner_lr"] == 0.01 and stored["meta_batch"] == 2  # the flags
    assert stored["eval_steps"] == [0, 1, 3, 10]  # the preset
    assert main(["train", "--preset", "nope"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    assert main(["presets"]) == 0 and "reptile-omniglot-5w1s" in capsys.readouterr().out


def test_linear_schedule_follows_the_time_budget_when_it_runs_out_first():
    params = {"w": torch.zeros(2, requires_grad=True)}
    spent = {"seconds": 0.0}
    config = TrainConfig(outer_optimizer="sgd", outer_lr=1.0, lr_schedule="linear",
                         iterations=1000, time_budget=10.0)
    optimizer, scheduler = make_optimizer(config, params, lambda: spent["seconds"])
    spent["seconds"] = 7.5  # three quarters of the budget, after one iteration
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.25)
    spent["seconds"] = 12.0
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 0.0


@pytest.mark.parametrize("name", sorted(RUNNABLE))
def test_a_preset_runs_as_it_is(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("METAZOO_CACHE_DIR", str(tmp_path / "cache"))
    make = RUNNABLE[name]
    data = [] if make is None else ["--data-dir", str(make(tmp_path / "data"))]
    out = tmp_path / "run"
    code = main(["train", "--preset", name, *data, "--iterations", "1", "--eval-tasks", "2",
                 "--no-progress", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    stored = json.loads((out / "config.json").read_text())
    options = preset_options(name)
    assert {key: stored[key] for key in options if key not in ("iterations", "eval_tasks")} == {
        key: value for key, value in options.items() if key not in ("iterations", "eval_tasks")}
    assert (out / "results.json").is_file()
