"""metazoo tune end to end on tiny sinusoid studies: the search, best.json, the test split
left alone, pruning, and the refusals (one line, exit status 2, nothing written)."""

import json

import optuna
import pytest
from optuna.trial import TrialState

from metazoo.cli import main
from tests.search.helpers import READS, TINY, space_file, tree, tune


def load(tmp_path, name="maml-sinusoid", out="study"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / out / 'study.db'}")


def test_a_study_runs_its_trials_and_writes_a_config_train_accepts(tmp_path, capsys):
    assert tune(tmp_path, "--algorithm", "maml", "--trials", "3") == 0
    printed = capsys.readouterr().out
    assert "3/3 trials done, best" in printed and "cpu s spent" in printed
    study = load(tmp_path)
    counted = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(counted) == 3
    for trial in counted:  # each an ordinary run in trials/<number>, with its curve
        run = tmp_path / "study" / "trials" / str(trial.number)
        assert (run / "checkpoint.pt").is_file() and (run / "validation.jsonl").is_file()
        assert not (run / "results.json").exists()  # no test evaluation
    best = json.loads((tmp_path / "study" / "best.json").read_text())
    assert best["outer_lr"] == study.best_trial.params["outer_lr"]
    assert best["budget_clock"] == "cpu" and best["time_budget"] == 60
    # The same command again: the study is complete, nothing more runs.
    assert tune(tmp_path, "--algorithm", "maml", "--trials", "3") == 0
    assert len(load(tmp_path).trials) == 3
    assert main(["train", "--config", str(tmp_path / "study" / "best.json"), "--iterations",
                 "2", "--eval-tasks", "2", "--out", str(tmp_path / "again"),
                 "--no-progress"]) == 0


def test_a_total_budget_shared_by_the_trials_ends_the_search(tmp_path, capsys):
    assert tune(tmp_path, "--algorithm", "fomaml", "--budget", "0.3", "--trial-budget", "0.2",
                "--iterations", "1000") == 0
    study = load(tmp_path, "fomaml-sinusoid")
    seconds = [t.user_attrs["cpu_seconds"] for t in study.trials]
    assert sum(seconds[:-1]) < 0.3 <= sum(seconds)  # the last trial began before it was spent
    assert "of 0.3 cpu s spent" in capsys.readouterr().out


def test_the_same_search_seed_draws_the_same_trials(tmp_path):
    for out in ("one", "two"):
        assert tune(tmp_path, "--algorithm", "fomaml", "--trials", "2", "--iterations", "20",
                    out=out) == 0
    params = [[t.params for t in load(tmp_path, "fomaml-sinusoid", out).trials]
              for out in ("one", "two")]
    assert params[0] == params[1] and params[0][0] != params[0][1]


def test_searching_never_reads_the_test_split(tmp_path, parted_task):
    assert tune(tmp_path, "--algorithm", "fomaml", "--task", parted_task, "--trials", "2") == 0
    assert READS and {part for _, part in READS} == {"train", "val"}, READS
    # Only the final runs read it (which shows that the recording sees it when it is read).
    READS.clear()
    assert tune(tmp_path, "--algorithm", "fomaml", "--task", parted_task, "--trials", "2",
                "--final-budget", "0.2") == 0
    assert ("sampled", "test") in READS
    final = json.loads((tmp_path / "study" / "final.json").read_text())
    assert final["metric"] == "loss" and {"tuned", "defaults", "difference"} <= set(final)


def test_a_flat_validation_curve_is_pruned(tmp_path, still_method):
    # One real trial makes the study; three finished trials with a much lower curve join it.
    fixed = ["--iterations", "200", "--inner-lr", "0.01", "--inner-steps", "1", "--meta-batch",
             "4"]
    assert tune(tmp_path, "--algorithm", still_method, "--trials", "1", *fixed) == 0
    study = load(tmp_path, f"{still_method}-sinusoid")
    flat = study.trials[0]
    assert len(set(flat.intermediate_values.values())) == 1  # θ never moves: flat
    for _ in range(3):
        study.add_trial(optuna.create_trial(
            state=TrialState.COMPLETE, value=0.01, params=flat.params,
            distributions=flat.distributions,
            intermediate_values={step: 0.01 for step in range(20, 201, 20)}))
    assert tune(tmp_path, "--algorithm", still_method, "--trials", "5", *fixed) == 0
    pruned = load(tmp_path, f"{still_method}-sinusoid").trials[4]
    assert pruned.state == TrialState.PRUNED
    # Stopped at its second validation point (the first is never pruned), not at 200.
    assert max(pruned.intermediate_values) == 40
    records = (tmp_path / "study" / "trials" / "4" / "validation.jsonl").read_text().splitlines()
    assert len(records) == 2


def test_a_study_whose_every_trial_diverges_has_no_best_config(tmp_path, capsys):
    path = space_file(tmp_path, {"inner_lr": {"low": 1e30, "high": 1e31}})
    status = tune(tmp_path, "--algorithm", "fomaml", "--trials", "2", "--space", path)
    error = capsys.readouterr().err
    assert status == 3 and "no trial of study 'fomaml-sinusoid' is complete" in error, error
    assert not (tmp_path / "study" / "best.json").exists()


def refused(capsys, status):
    error = capsys.readouterr().err
    assert status == 2, error
    assert error.count("\n") == 1 and error.startswith("metazoo tune: error: "), error
    return error


@pytest.mark.parametrize("options, words", [
    (["--trials", "0"], ["trials must be a positive integer"]),
    (["--trials", "-3"], ["trials must be a positive integer"]),
    (["--trials", "2", "--trial-budget", "0"], ["trial_budget must be a positive number"]),
    (["--trials", "2", "--trial-budget", "-5"], ["trial_budget must be a positive number"]),
    (["--trials", "2", "--budget", "-1"], ["budget must be a positive number"]),
    (["--trials", "2", "--final-budget", "nan"], ["final_budget must be a positive number"]),
    (["--trials", "2", "--storage", "nosuchdatabase://x/y"], ["--storage", "cannot be opened"]),
    (["--trials", "2", "--storage", "sqlite:////no/such/folder/study.db"],
     ["--storage", "cannot be opened"]),
    (["--trials", "2", "--storage", "postgresql://tuner:secret@127.0.0.1:1/none"],
     ["--storage", "cannot be opened", "tuner:***@"]),
    (["--trials", "2", "--storage", "sqlite:///"], ["in-memory", "name a file"]),
    (["--trials", "2", "--storage", "sqlite:///:memory:"], ["in-memory", "name a file"]),
    (["--trials", "2", "--val-every", "0"], ["val_every must be a positive integer"]),
])
def test_bad_numbers_and_storage_are_refused_in_one_line(tmp_path, capsys, options, words):
    error = refused(capsys, tune(tmp_path, "--algorithm", "maml", *options))
    assert all(word in error for word in words), error
    assert tree(tmp_path / "study") == []


@pytest.mark.parametrize("entries, words", [
    ({"bogus": {"low": 1, "high": 2}}, ["bogus", "its options are", "outer_lr"]),
    ({"outer_lr": {"low": 0.1, "high": 0.01}}, ["entry outer_lr", "low <= high"]),
    ({"outer_lr": {"low": -1.0, "high": 0.01, "log": False}}, ["outer_lr", "outside what"]),
    ({"meta_batch": {"low": 0, "high": 8, "log": False}}, ["meta_batch", "outside what"]),
    ({"meta_batch": {"low": 0, "high": 8}}, ["entry meta_batch", "log scale needs low >= 1"]),
])
def test_a_bad_space_entry_is_refused_in_one_line(tmp_path, capsys, entries, words):
    path = space_file(tmp_path, entries)
    error = refused(capsys, tune(tmp_path, "--algorithm", "maml", "--trials", "2",
                                 "--space", path))
    assert all(word in error for word in words), error
    assert tree(tmp_path / "study") == []


def test_a_study_of_another_method_or_task_is_refused(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    assert tune(tmp_path, "--algorithm", "maml", "--trials", "1", "--storage", storage,
                "--study", "contest", out="first") == 0
    capsys.readouterr()
    before = (tmp_path / "shared.db").read_bytes()
    for options in (["--algorithm", "fomaml"], ["--algorithm", "maml", "--task", "linear"]):
        error = refused(capsys, main(["tune", *TINY, "--trials", "1", "--storage", storage,
                                      "--study", "contest", "--out", str(tmp_path / "second"),
                                      *options]))
        assert "searches maml on sinusoid" in error and "another --study" in error, error
    error = refused(capsys, tune(tmp_path, "--algorithm", "maml", "--trials", "1", "--storage",
                                 storage, "--study", "contest", "--seed", "3", out="second"))
    assert "other options" in error and "seed (stored 0, given 3)" in error, error
    assert tree(tmp_path / "second") == []
    assert (tmp_path / "shared.db").read_bytes() == before


def test_a_study_folder_holds_one_study(tmp_path, capsys):
    assert tune(tmp_path, "--algorithm", "maml", "--trials", "1") == 0
    capsys.readouterr()
    before = tree(tmp_path / "study")
    error = refused(capsys, tune(tmp_path, "--algorithm", "fomaml", "--trials", "1"))
    assert "holds the study 'maml-sinusoid' of maml on sinusoid" in error, error
    assert tree(tmp_path / "study") == before


def test_a_study_folder_in_use_is_refused(tmp_path, capsys):
    from metazoo.fileio import exclusive_lock

    (tmp_path / "study").mkdir()
    with exclusive_lock(tmp_path / "study" / ".lock", "held by this test"):
        error = refused(capsys, tune(tmp_path, "--algorithm", "maml", "--trials", "1"))
    assert "in use by process" in error, error


def test_trials_stop_at_their_budget_unless_iterations_are_given(tmp_path):
    """Equal compute: without --iterations a trial is bounded by its budget alone (a default
    or preset iteration count would stop a fast method first); --iterations caps it."""
    from metazoo.analysis.config import UNBOUNDED

    assert main(["tune", "--task", "sinusoid", "--algorithm", "fomaml", "--trials", "1",
                 "--trial-budget", "0.5", "--val-every", "50", "--val-tasks", "3",
                 "--eval-tasks", "3", "--no-report", "--no-progress",
                 "--out", str(tmp_path / "budget")]) == 0
    trial = json.loads((tmp_path / "budget" / "trials" / "0" / "config.json").read_text())
    assert trial["iterations"] == UNBOUNDED and trial["time_budget"] == 0.5
    assert json.loads((tmp_path / "budget" / "best.json").read_text())["iterations"] == UNBOUNDED
    assert tune(tmp_path, "--algorithm", "fomaml", "--trials", "1", out="capped") == 0
    capped = json.loads((tmp_path / "capped" / "trials" / "0" / "config.json").read_text())
    assert capped["iterations"] == 40


def test_the_first_trial_is_the_run_s_own_settings(tmp_path):
    """A study starts from the defaults (or the preset): its first trial holds them, where
    the space does, so the best found is never one the defaults beat on validation."""
    from metazoo.engine.config import TrainConfig

    assert tune(tmp_path, "--algorithm", "reptile", "--trials", "2") == 0
    first = load(tmp_path, "reptile-sinusoid").trials[0]
    defaults = TrainConfig(algorithm="reptile").resolve()
    assert first.user_attrs["start"] == "defaults"
    assert first.params["outer_lr"] == defaults.outer_lr
    assert first.params["inner_steps"] == defaults.inner_steps
    assert first.params["inner_lr"] == defaults.inner_lr
    assert first.params["meta_batch"] == defaults.meta_batch


def test_the_first_trial_s_values_rebuild_the_defaults_exactly(tmp_path):
    """Where the first trial wins, the best config is the defaults themselves, for every
    registered method: the final runs then train them once (see below)."""
    from metazoo.algorithms import ALGORITHMS
    from metazoo.engine.config import TrainConfig
    from metazoo.search.space import complete, starting_point
    from metazoo.search.trial import run_values, with_values
    from metazoo.search.tune import method_space

    for name in ALGORITHMS:
        base = TrainConfig(algorithm=name, task="sinusoid").resolve()
        space = method_space(base)
        values = complete(space, starting_point(space, run_values(base)), run_values(base))
        assert with_values(base, values) == base, name


def test_final_runs_train_the_defaults_once_when_they_are_the_best(tmp_path):
    import dataclasses

    from metazoo.engine.config import TrainConfig
    from metazoo.search.final import final_runs

    config = dataclasses.replace(TrainConfig(algorithm="fomaml", iterations=5, eval_tasks=4,
                                             time_budget=60.0), budget_clock="cpu").resolve()
    summary = final_runs(config, config, (0,), tmp_path, progress=False)
    assert sorted(p.name for p in (tmp_path / "final" / "runs").iterdir()) == ["tuned-seed0"]
    assert summary["defaults_are_tuned"] and summary["difference"]["mean"] == 0.0
    assert summary["tuned"]["mean"] == summary["defaults"]["mean"]


def test_no_final_defaults_retrains_the_best_settings_alone(tmp_path, capsys):
    assert tune(tmp_path, "--algorithm", "fomaml", "--trials", "2", "--final-budget", "0.2",
                "--no-final-defaults") == 0
    final = json.loads((tmp_path / "study" / "final.json").read_text())
    assert "defaults" not in final and "difference" not in final
    assert final["tuned"]["runs"] == ["tuned-seed0"]
    assert sorted(p.name for p in (tmp_path / "study" / "final" / "runs").iterdir()) == [
        "tuned-seed0"]
    assert "defaults" not in capsys.readouterr().out.split("final runs on the test split")[1]


def test_a_trial_records_what_its_process_used_beside_its_budget_seconds(tmp_path):
    assert tune(tmp_path, "--algorithm", "fomaml", "--trials", "2") == 0
    for trial in load(tmp_path, "fomaml-sinusoid").trials:
        # Validation, building and checkpoints come on top of the meta-training seconds.
        assert trial.user_attrs["process_cpu_seconds"] > trial.user_attrs["cpu_seconds"] > 0


def test_final_runs_validate_about_as_often_per_run_as_the_trials(tmp_path):
    assert tune(tmp_path, "--algorithm", "fomaml", "--trials", "1", "--trial-budget", "0.1",
                "--final-budget", "0.25", "--iterations", "1000") == 0
    study = tmp_path / "study"
    trial = json.loads((study / "trials" / "0" / "config.json").read_text())
    final = json.loads((study / "final" / "runs" / "tuned-seed0" / "config.json").read_text())
    best = json.loads((study / "best.json").read_text())
    assert trial["val_every"] == 20 and final["val_every"] == best["val_every"] == 60  # 20 × ⌈0.25 / 0.1⌉


def test_fewer_startup_trials_let_tpe_choose_sooner(tmp_path):
    for out, extra in (("random", []), ("modelled", ["--startup-trials", "1"])):
        assert tune(tmp_path, "--algorithm", "fomaml", "--trials", "2", "--iterations", "20",
                    *extra, out=out) == 0
    random, modelled = ([t.params for t in load(tmp_path, "fomaml-sinusoid", out).trials]
                        for out in ("random", "modelled"))
    assert random[0] == modelled[0]  # the defaults, in both
    assert random[1] != modelled[1]  # drawn at random, against chosen by TPE from trial 0


def test_startup_trials_must_be_positive(tmp_path, capsys):
    assert tune(tmp_path, "--algorithm", "fomaml", "--trials", "2", "--startup-trials",
                "0") == 2
    assert "startup_trials must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()
