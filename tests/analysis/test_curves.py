"""Learning curves of run folders (``metazoo plot``): what each panel draws, how runs are
labelled, and the folders refused. The runs are written by hand (a config, a log and a
validation curve), so that every number drawn is known."""

import json
import math

import pytest

from metazoo.analysis.curves import curves_figure, read_curves, run_labels
from metazoo.engine import TrainConfig


def write_run(folder, log=(), validation=(), **options):
    """A run folder: the resolved config of ``options``, and ``log`` and ``validation``
    records, one JSON object a line."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(TrainConfig(**options).to_dict()))
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    if validation:
        (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in validation))
    return folder


def log(losses, every=10, seconds=0.5):
    return [{"iteration": every * (i + 1), "seconds_per_iteration": 0.01,
             "train_seconds": seconds * (i + 1), "skipped": False, "loss": loss}
            for i, loss in enumerate(losses)]


def points(scores, metric="loss", steps=(0, 1, 5, 10), every=10):
    """Validation records; the score after s steps is ``score + s`` (so a step is visible)."""
    return [{"iteration": every * (i + 1), "train_seconds": 0.5 * (i + 1),
             **{f"{metric}@{s}": score + s / 100 for s in steps}}
            for i, score in enumerate(scores)]


def panels(figure):
    """The four panels: training by iteration, by seconds, validation by iteration, by seconds."""
    return figure.axes[:4]


def test_each_panel_has_one_line_per_run_and_the_validation_score_at_the_largest_step(tmp_path):
    runs = [read_curves(write_run(tmp_path / name, log([2.0, 1.0, 0.5]), points([1.0, 0.8]),
                                  inner_lr=lr))
            for name, lr in (("a", 0.01), ("b", 0.02))]
    runs.append(read_curves(write_run(tmp_path / "c", log([2.0, 1.5]), inner_lr=0.03)))
    train, timed, valid, valid_timed = panels(curves_figure(runs))
    assert [len(axis.lines) for axis in (train, timed, valid, valid_timed)] == [3, 3, 2, 2]
    assert list(train.lines[0].get_xdata()) == [10, 20, 30]
    assert list(train.lines[0].get_ydata()) == [2.0, 1.0, 0.5]
    assert list(timed.lines[0].get_xdata()) == [0.5, 1.0, 1.5]
    assert list(valid.lines[0].get_ydata()) == [1.1, pytest.approx(0.9)]  # loss@10
    assert list(valid_timed.lines[1].get_xdata()) == [0.5, 1.0]
    assert valid.get_ylabel() == "validation query loss"
    assert "after 10 test steps" in valid.get_title()
    legend = [text.get_text() for text in curves_figure(runs).legends[0].get_texts()]
    assert legend == ["inner_lr=0.01", "inner_lr=0.02", "inner_lr=0.03 (no validation.jsonl)"]


def test_accuracy_is_in_percent_at_the_methods_own_test_steps(tmp_path):
    # Meta-SGD's own protocol is its k = 2 steps: scored there, not at the largest (10).
    run = read_curves(write_run(tmp_path / "run", log([1.6, 1.2]),
                                points([0.5, 0.7], "accuracy", steps=(0, 2, 10)),
                                algorithm="metasgd", inner_steps=2, eval_steps=[0, 2, 10]))
    assert (run.metric, run.steps) == ("accuracy", 2)
    valid = panels(curves_figure([run]))[2]
    assert list(valid.lines[0].get_ydata()) == [pytest.approx(52.0), pytest.approx(72.0)]
    assert valid.get_ylabel() == "validation accuracy (%)"


def test_a_methods_own_steps_not_recorded_fall_back_to_the_largest_recorded(tmp_path):
    run = read_curves(write_run(tmp_path / "run", log([1.0]), points([0.5], steps=(0, 1, 5)),
                                algorithm="metasgd", inner_steps=3, eval_steps=[0, 1, 5]))
    assert run.steps == 5


def test_runs_are_labelled_by_the_options_that_differ_else_by_folder(tmp_path):
    def labels(*option_sets):
        return run_labels([read_curves(write_run(tmp_path / f"{len(list(tmp_path.iterdir()))}",
                                                 log([1.0]), **options))
                           for options in option_sets])

    assert labels({"seed": 0, "meta_batch": 5}, {"seed": 1, "meta_batch": 5}) == ["seed=0", "seed=1"]
    same = labels({}, {})
    assert same == [str(tmp_path / "2"), str(tmp_path / "3")]
    # Two runs alike among three: their folders tell them apart.
    assert labels({"seed": 0}, {"seed": 0}, {"seed": 1})[:2] == [
        f"seed=0 ({tmp_path / '4'})", f"seed=0 ({tmp_path / '5'})"]
    # The algorithm by its name; its own options compared among its own runs only.
    mixed = labels({"algorithm": "maml"}, {"algorithm": "maml", "algorithm_options":
                                           {"checkpoint": True}}, {"algorithm": "reptile"})
    assert mixed == ["maml, inner_steps=1, inner_lr=0.01, maml.checkpoint=False",
                     "maml, inner_steps=1, inner_lr=0.01, maml.checkpoint=True",
                     "reptile, inner_steps=5, inner_lr=0.02"]


def test_a_noisy_log_is_drawn_faint_under_its_running_mean(tmp_path):
    noisy = [1.0 + (0.5 if i % 2 else -0.5) for i in range(100)]
    run = read_curves(write_run(tmp_path / "run", log(noisy)))
    train = panels(curves_figure([run]))[0]
    faint, mean = train.lines
    assert faint.get_alpha() < 0.5 and list(faint.get_ydata()) == noisy
    assert max(mean.get_ydata()[20:]) - min(mean.get_ydata()[20:]) < 0.2
    assert "running mean" in train.get_title()


def test_a_loss_spanning_decades_is_drawn_on_a_log_scale(tmp_path):
    wide = read_curves(write_run(tmp_path / "wide", log([10.0, 1.0, 0.01])))
    narrow = read_curves(write_run(tmp_path / "narrow", log([2.0, 1.0, 0.5])))
    assert panels(curves_figure([wide]))[0].get_yscale() == "log"
    assert panels(curves_figure([narrow]))[0].get_yscale() == "linear"


def test_panels_say_what_they_lack(tmp_path):
    old = log([1.0, 0.5])
    for record in old:  # a log written before budget seconds were logged
        del record["train_seconds"]
    figure = curves_figure([read_curves(write_run(tmp_path / "old", old))])
    notes = [text.get_text() for axis in panels(figure) for text in axis.texts]
    assert any("no budget seconds in log.jsonl" in note for note in notes)
    assert sum("no validation.jsonl" in note and "--val-every" in note for note in notes) == 2


def test_runs_that_score_accuracy_and_loss_are_refused_together(tmp_path):
    loss = read_curves(write_run(tmp_path / "a", log([1.0]), points([1.0])))
    accuracy = read_curves(write_run(tmp_path / "b", log([1.0]), points([0.5], "accuracy")))
    with pytest.raises(ValueError, match="plot classification and regression runs apart"):
        curves_figure([loss, accuracy])


def test_a_skipped_batch_leaves_a_gap_not_a_wrong_mean(tmp_path):
    losses = [1.0] * 40
    losses[20] = math.nan
    mean = panels(curves_figure([read_curves(write_run(tmp_path / "run", log(losses)))]))[0].lines[1]
    assert all(value == 1.0 for value in mean.get_ydata())


@pytest.mark.parametrize("make, message", [
    (lambda path: path, "is not a folder"),
    (lambda path: path.mkdir() or path, "is not a run folder (it has no config.json)"),
    (lambda path: path.mkdir() or (path / "config.json").write_text("{") and path,
     "config.json is damaged"),
    (lambda path: path.mkdir() or (path / "config.json").write_text('{"seed": -1}') and path,
     "config.json is damaged"),
])
def test_a_folder_that_is_not_a_readable_run_is_refused(make, message, tmp_path):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_curves(make(tmp_path / "run"))


def test_a_record_missing_what_its_writer_gives_it_is_damage_in_one_line(tmp_path):
    broken = points([1.0])
    del broken[0]["train_seconds"]
    run = write_run(tmp_path / "run", log([1.0]), broken)
    with pytest.raises(ValueError, match=r"validation.jsonl is damaged \(no 'train_seconds'\)"):
        read_curves(run)
    (run / "log.jsonl").write_text('{"iteration": 1, "loss": "low"}\n')
    with pytest.raises(ValueError, match=r"log.jsonl is damaged"):
        read_curves(run)
