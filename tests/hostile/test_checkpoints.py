"""Hostile checkpoints: a checkpoint never runs code, and one that is not this run's own,
whole and well-formed, is refused by `train --resume` and `eval` alike in one line, exit 2,
with nothing changed."""

import json
import os
import zipfile

import pytest
import torch

from tests.hostile.harness import REFUSED, TINY, cli, refused


class RunsCode:
    """Unpickling this calls os.system: what a hostile checkpoint would hold."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def state_of(run):
    return torch.load(run / "checkpoint.pt", weights_only=True)


def save(run, state, **kwargs):
    torch.save(state, run / "checkpoint.pt", **kwargs)


COMMANDS = {"resume": lambda run: ["train", "--resume", run, "--no-progress"],
            "eval": lambda run: ["eval", run, "--tasks", "2"]}


@pytest.fixture(params=sorted(COMMANDS))
def command(request):
    return COMMANDS[request.param]


def test_code_in_a_checkpoint_never_runs(run, tmp_path, command):
    marker = tmp_path / "ran"
    state = state_of(run)
    state["params"]["0.weight"] = RunsCode(marker)
    save(run, state)
    refused(*command(run), message="refers to code (posix.system", watch=run, absent=[marker])
    # The legacy (pre-zip) format too: it is never unpickled.
    save(run, {"x": RunsCode(marker)}, _use_new_zipfile_serialization=False)
    refused(*command(run), message="corrupt or not a metazoo checkpoint", watch=run,
            absent=[marker])


def edit(key, value):
    def change(state):
        state[key] = value
    return change


def drop_parameter(state):
    del state["params"]["0.weight"]


def reshape_parameter(state):
    state["params"]["0.weight"] = torch.zeros(3, 3)


def float64_parameter(state):
    state["params"]["0.weight"] = state["params"]["0.weight"].double()


def short_generator(state):
    state["generator"] = state["generator"][:100]


def reshape_optimizer_state(state):
    state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(7)


def other_optimizer_settings(state):
    state["optimizer"]["param_groups"][0]["betas"] = (0.0, 0.0)


def extra_key(state):
    state["payload"] = "x"


def missing_key(state):
    del state["generator"]


def past_the_end(state):
    state["iteration"] = 10**6


def nested_deep(state):
    value = []
    for _ in range(20):
        value = [value]
    state["config"]["eval_steps"] = value


EDITS = [
    (drop_parameter, "missing parameter(s) 0.weight"),
    (reshape_parameter, "0.weight is [3, 3], the model's is [40, 1]"),
    (float64_parameter, "0.weight is torch.float64"),
    (short_generator, "the generator state is not 5056 bytes"),
    (reshape_optimizer_state, "optimizer state 'exp_avg' of parameter 0"),
    (other_optimizer_settings, "optimizer settings differ from the run's (betas)"),
    (extra_key, "holds keys a metazoo checkpoint has not (payload)"),
    (missing_key, "missing generator"),
    (edit("format", 99), "format 99 is not one this metazoo reads"),
    (edit("version", "99.0.0"), "written by metazoo 99.0.0, newer than this one"),
    (edit("version", "tomorrow"), "version 'tomorrow' is not a metazoo version"),
    (edit("strategy", "threads"), "strategy 'threads' is not vmap or loop"),
    (edit("chunk_size", 0), "chunk_size 0 is not a positive integer or None"),
    (edit("chunk_size", "2"), "chunk_size '2' is not a positive integer or None"),
    (edit("train_seconds", float("nan")), "train_seconds nan is not a number of seconds"),
    (edit("iteration", -1), "iteration -1 is not an integer >= 0"),
    (past_the_end, "iteration 1000000 is past the 2 iterations of its config"),
    (edit("config", {"algorithm": "nope"}), "its config is not valid"),
    (nested_deep, "nested deeper than a checkpoint is"),
]


@pytest.mark.parametrize("change, message", EDITS, ids=[e[0].__name__ if hasattr(e[0], "__name__")
                                                        and e[0].__name__ != "change"
                                                        else e[1][:30] for e in EDITS])
def test_malformed_checkpoint(change, message, run, command):
    state = state_of(run)
    change(state)
    save(run, state)
    refused(*command(run), message=message, watch=run)


@pytest.mark.parametrize("value, message", [
    (torch.zeros(3), "it holds a Tensor, not a metazoo checkpoint"),
    (7, "it holds a int, not a metazoo checkpoint"),
    ([1, 2], "it holds a list, not a metazoo checkpoint"),
])
def test_checkpoint_that_is_not_a_dict(value, message, run, command):
    save(run, value)
    refused(*command(run), message=message, watch=run)


def test_truncated_or_foreign_files(run, command):
    whole = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(whole[: len(whole) // 2])
    refused(*command(run), message="corrupt or not a metazoo checkpoint", watch=run)
    with zipfile.ZipFile(run / "checkpoint.pt", "w") as archive:
        archive.writestr("notes.txt", "a zip, but not a checkpoint")
    refused(*command(run), message="corrupt or not a metazoo checkpoint", watch=run)


def test_checkpoint_of_another_run_is_refused(run, tmp_path, command):
    other = tmp_path / "fomaml"
    assert cli("train", *TINY, "--algorithm", "fomaml", "--out", other).code == 0
    (run / "checkpoint.pt").write_bytes((other / "checkpoint.pt").read_bytes())
    refused(*command(run), message="does not belong to the run in", watch=run)


def test_damaged_config_json_is_refused(run, command):
    (run / "config.json").write_text("{torn")
    refused(*command(run), message="config.json is damaged", watch=run)


def test_a_checkpoint_shared_on_its_own_is_evaluated(run, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes())
    result = cli("eval", shared, "--tasks", "2")
    assert result.code == 0 and result.err == "" and "after 2 iterations" in result.out
    assert REFUSED == 2 and json.loads((run / "config.json").read_text())["algorithm"] == "maml"
