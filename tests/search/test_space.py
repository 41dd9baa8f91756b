"""Search spaces: every method declares one in its own file, each range inside what its
option accepts, with a reason; a --space file narrows or widens it, or is refused."""

import json

import optuna
import pytest

from metazoo.algorithms import ALGORITHMS
from metazoo.engine.config import TrainConfig
from metazoo.search.space import SHARED, complete, read_space_file, sample, space_for
from metazoo.search.trial import Budget, run_values, trial_config
from metazoo.search.tune import method_space, searched_options


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_method_declares_a_space_its_options_accept(algorithm):
    space = method_space(TrainConfig(algorithm=algorithm))  # checks every bound and choice
    assert space, algorithm
    assert {entry.name for entry in space} <= set(searched_options(algorithm))
    assert all(len(entry.why) > 20 for entry in space_for(algorithm))


def test_a_method_registered_elsewhere_gets_the_shared_space(still_method):
    assert space_for(still_method) is SHARED
    names = [entry.name for entry in method_space(TrainConfig(algorithm=still_method))]
    assert names == ["outer_lr", "meta_batch", "inner_steps", "inner_lr"]


def test_conditions_follow_the_sampled_and_the_fixed_options():
    space = method_space(TrainConfig(algorithm="imaml"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    solvers = set()
    for _ in range(12):
        trial = study.ask()
        values = sample(trial, space)
        solvers.add(values["inner_solver"])
        newton = values["inner_solver"] == "newton"
        assert ("solver_cg_steps" in values) == newton
        assert ("inner_lr" in values) != newton and ("test_proximal" in values) != newton
        trial_config(TrainConfig(algorithm="imaml"), values, Budget(1.0, "cpu", 10))
        study.tell(trial, 0.0)
    assert solvers == {"newton", "gd"}
    # Adam's step range with Adam, SGD's (Reptile's ε) with SGD: one applies, decided now.
    adam = [e for e in method_space(TrainConfig(algorithm="reptile")) if e.name == "outer_lr"]
    sgd = [e for e in method_space(TrainConfig(algorithm="reptile", outer_optimizer="sgd"))
           if e.name == "outer_lr"]
    assert (adam[0].high, sgd[0].high) == (1e-2, 1.0)


def test_a_space_file_narrows_drops_and_adds(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"lam": {"low": 5, "high": 80}, "cg_damping": None,
                                "inner_solver": {"choices": ["newton"]},
                                "outer_eps": {"low": 1e-8, "high": 1e-3, "log": True}}))
    space = read_space_file(path, space_for("imaml"), searched_options("imaml"))
    by_name = {entry.name: entry for entry in space}
    assert (by_name["lam"].low, by_name["lam"].high, by_name["lam"].log) == (5, 80, True)
    assert "cg_damping" not in by_name
    assert by_name["inner_solver"].choices == ("newton",)
    assert by_name["outer_eps"].log


@pytest.mark.parametrize("entries, words", [
    ({"lambda": {"low": 1, "high": 2}}, ["lambda", "its options are", "lam", "cg_steps"]),
    ({"lam": [1, 2]}, ["entry lam", "low, high and log"]),
    ({"lam": {"low": 9, "high": 2}}, ["entry lam", "low <= high"]),
    ({"lam": {"low": 1, "high": 2, "scale": "log"}}, ["entry lam", "scale"]),
    ({"cg_steps": {"low": 1.5, "high": 4}}, ["entry cg_steps", "integers"]),
    ({"inner_solver": {"choices": []}}, ["entry inner_solver", "choices"]),
    ({"lam": {"when": {"solver": ["newton"]}}}, ["entry lam", "condition names solver"]),
])
def test_an_ill_formed_space_file_is_refused_naming_the_entry(tmp_path, entries, words):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(ValueError) as error:
        read_space_file(path, space_for("imaml"), searched_options("imaml"))
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words), message
    assert "options are: outer_lr, " in message, message


@pytest.mark.parametrize("entries, words", [
    ({"outer_lr": {"low": -1.0, "high": 0.01, "log": False}}, ["outer_lr", "-1.0", "positive"]),
    ({"inner_steps": {"low": 1, "high": 20_000}}, ["inner_steps", "20000", "at most"]),
    ({"cg_steps": {"low": 0, "high": 5}}, ["cg_steps", ">= 1"]),
    ({"inner_solver": {"choices": ["newton", "adam"]}}, ["inner_solver", "'adam'"]),
])
def test_a_range_outside_what_the_option_accepts_is_refused(tmp_path, entries, words):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(ValueError) as error:
        method_space(TrainConfig(algorithm="imaml"), path)
    message = str(error.value)
    assert "outside what" in message and "imaml's options are" in message, message
    assert all(word in message for word in words), message


def test_options_fixed_on_the_command_line_leave_the_space():
    names = {entry.name for entry in method_space(TrainConfig(algorithm="maml"),
                                                   fixed=frozenset({"outer_lr", "inner_lr"}))}
    assert names == {"meta_batch", "inner_steps"}


@pytest.mark.parametrize("base, constrained", [
    # Reptile's Omniglot protocol carries Adam's moment; a trial drawing SGD cannot.
    (TrainConfig(algorithm="reptile", algorithm_options={"inner_optimizer": "adam",
                                                         "carry_moment": True}),
     {"inner_optimizer": "sgd", "carry_moment": False}),
    # The authors' iMAML takes plain steps, then a proximal one; Newton's steps need the
    # proximal objective.
    (TrainConfig(algorithm="imaml", algorithm_options={"inner_solver": "gd",
                                                       "inner_proximal": False}),
     {"inner_solver": "newton", "inner_proximal": True}),
])
def test_a_choice_other_options_constrain_follows_them(base, constrained):
    space = method_space(base)  # every range checked against this base
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    drawn = set()
    for _ in range(16):
        trial = study.ask()
        config = trial_config(base, complete(space, sample(trial, space), run_values(base)),
                              Budget(1.0, "cpu", 10))
        options = {**config.to_dict(), **config.algorithm_options}
        key, value = next(iter(constrained.items()))
        if options[key] == value:
            drawn.add(value)
            assert all(options[name] == want for name, want in constrained.items()), options
        study.tell(trial, 0.0)
    assert drawn, "the constrained case was never drawn"
