"""Checkpoints: written atomically, and read back only as data, after a schema check.

A checkpoint is shared between people (posted with a paper, copied between machines), so
reading one must never run code, and must not quietly resume or score the wrong run. The one
reader, :func:`read_checkpoint`, serves ``train --resume``, ``metazoo eval`` and
:func:`metazoo.engine.rebuild_run`:

1. the pickle is scanned, without running it, for references to code: a metazoo checkpoint
   holds none (only tensors, numbers, strings, lists and dicts), so any is refused;
2. it is loaded with ``torch.load(weights_only=True)``, PyTorch's restricted unpickler, which
   builds tensors and plain containers and nothing else;
3. every value is checked against the schema below: the keys, the format version, the
   metazoo version (not newer than this one), the stored config (a valid one), the iteration,
   the generator state's size, the strategy, its chunk size and counters. :meth:`Checkpoint.fitted` then
   reads an older format as today's and checks the names, shapes and dtypes of θ and of the
   method's carried state, and the optimizer's and scheduler's state, against the run the
   config builds.

Formats: 3 holds the method's carried state under ``state``; 2 kept it among ``params`` (under
its flattened names, e.g. Reptile's ``inner_rms.<name>``), with the outer optimizer's state
indexed over both; 1 also lacks ``skipped`` (read as 0). ``chunk_size`` (vmap's tasks at once,
which ``strategy="auto"`` may choose) is optional in every format: a checkpoint without it
ran with its config's.

Anything else is refused with one line naming the file and the problem.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from metazoo._version import __version__
from metazoo.core.tree import flatten, unflatten
from metazoo.engine.config import TrainConfig
from metazoo.engine.setup import Setup, initial_meta_params, make_optimizer
from metazoo.fileio import atomic_write_bytes, write_json
from metazoo.messages import brief
from metazoo.types import Params

__all__ = ["FORMAT", "Checkpoint", "atomic_write_bytes", "read_checkpoint", "save_checkpoint",
           "write_json"]

#: The layout :func:`save_checkpoint` writes (see the module docstring for the others).
FORMAT = 3
READABLE_FORMATS = (1, 2, 3)
_REQUIRED = ("format", "version", "config", "iteration", "params", "optimizer", "scheduler",
             "generator", "strategy", "train_seconds")
_OPTIONAL = ("skipped", "state", "chunk_size")
#: The size of a CPU ``torch.Generator``'s state (the Mersenne Twister's words, and more).
GENERATOR_STATE_SIZE = torch.Generator().get_state().numel()


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Save ``state`` with ``torch.save``, atomically (see :mod:`metazoo.fileio`)."""
    atomic_write_bytes(path, lambda file: torch.save(state, file))


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint that passed the schema check: plain tensors and values, on the CPU."""

    path: Path
    format: int
    version: str
    config: TrainConfig
    iteration: int
    params: Params
    state: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    generator: torch.Tensor
    strategy: str
    train_seconds: float
    skipped: int
    #: With vmap, the most tasks at once: as chosen by ``strategy="auto"``, else the config's.
    chunk_size: int | None = None

    @property
    def finished(self) -> bool:
        """Whether the run it belongs to had nothing left to do: all its iterations, or its
        time budget spent."""
        budget = self.config.time_budget
        return self.iteration >= self.config.iterations or bool(
            budget and self.train_seconds >= budget)

    def fitted(self, setup: Setup) -> Checkpoint:
        """This checkpoint in today's format, once checked against the run ``setup``: θ and
        the carried state (names, shapes, dtypes) against what its config builds, the
        optimizer's and scheduler's state against fresh ones of the same kind.

        Raises:
            ValueError: one line, naming the first differences.
        """
        expected, state = initial_meta_params(setup, "cpu")
        return self.fitted_to(expected, state, setup.config)

    def fitted_to(self, expected: Params, state: dict[str, Any],
                  config: TrainConfig | None = None) -> Checkpoint:
        """This checkpoint in today's format, once checked against the fresh meta-parameters
        ``expected`` and carried ``state`` of the model its config builds; with ``config``
        (to resume or evaluate the run, not only to predict with it), the optimizer's and
        scheduler's state too.

        Raises:
            ValueError: one line, naming the first differences.
        """
        checkpoint = self.upgraded(expected, state)
        problems = params_problems(checkpoint.params, expected) or state_problems(
            checkpoint.state, state)
        if config is not None and not problems:
            optimizer, scheduler = make_optimizer(config, expected)
            problems = _optimizer_problems(checkpoint.optimizer, optimizer.state_dict(),
                                           list(expected.values())) or \
                _scheduler_problems(checkpoint.scheduler, scheduler.state_dict(), self.iteration)
        if problems:
            raise ValueError(f"refused checkpoint {self.path}: it does not fit the run its "
                             f"config builds: {brief(problems, limit=3, separator='; ')}")
        return checkpoint

    def tensors(self, device: str, dtype: torch.dtype) -> tuple[Params, dict[str, Any]]:
        """θ and the carried state on ``device`` in ``dtype`` (of a fitted checkpoint)."""
        params = {name: value.to(device, dtype) for name, value in self.params.items()}
        state = unflatten({name: value.to(device, dtype)
                           for name, value in flatten(self.state).items()}, self.state)
        return params, state

    def upgraded(self, expected: Params, state: dict[str, Any]) -> Checkpoint:
        """This checkpoint in today's format, for a run whose fresh meta-parameters are
        ``expected`` and fresh carried state ``state``. Formats 1 and 2 kept the carried state
        among the parameters, under its flattened names, and the outer optimizer indexed its
        state over both: they are split here (the fit check follows)."""
        names = set(flatten(state))
        if self.format >= 3 or not names:
            return self
        carried = {name: value for name, value in self.params.items() if name in names}
        if carried.keys() != names:
            return self  # not this run's: the fit check names what is missing
        params = {name: value for name, value in self.params.items() if name not in names}
        old = list(self.params)
        index = {old.index(name): new for new, name in enumerate(params)}
        groups = self.optimizer.get("param_groups")
        per_param = self.optimizer.get("state")
        if not (isinstance(groups, list) and len(groups) == 1 and isinstance(per_param, dict)
                and isinstance(groups[0], dict)):
            return replace(self, params=params, state=unflatten(carried, state))
        optimizer = {"state": {index[key]: value for key, value in per_param.items()
                               if key in index},
                     "param_groups": [{**groups[0], "params": list(range(len(params)))}]}
        return replace(self, params=params, state=unflatten(carried, state), optimizer=optimizer)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check the checkpoint at ``path`` (see the module docstring).

    Raises:
        FileNotFoundError: there is no file at ``path``.
        ValueError: one line naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = _load_data_only(path)
    problem = _schema_problem(state)
    if problem:
        raise ValueError(f"refused checkpoint {path}: {problem}")
    try:
        config = TrainConfig.from_dict(state["config"])
    except (ValueError, TypeError) as error:
        raise ValueError(f"refused checkpoint {path}: its config is not valid "
                         f"({brief([str(error)], width=200)})") from None
    if state["iteration"] > config.iterations:
        raise ValueError(f"refused checkpoint {path}: iteration {state['iteration']} is past "
                         f"the {config.iterations} iterations of its config")
    return Checkpoint(
        path=path, format=state["format"], version=state["version"], config=config,
        iteration=state["iteration"], params=dict(state["params"]),
        state=dict(state.get("state", {})), optimizer=state["optimizer"], scheduler=state["scheduler"],
        generator=state["generator"], strategy=state["strategy"],
        train_seconds=float(state["train_seconds"]), skipped=state.get("skipped", 0),
        # Before auto chose chunk sizes, a run's was its config's.
        chunk_size=state.get("chunk_size", config.chunk_size),
    )


def _load_data_only(path: Path) -> dict[str, Any]:
    # torch < 2.5 cannot scan; its weights_only loader still builds nothing but data.
    scan = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", lambda path: [])
    try:
        code = scan(path)
    except Exception as error:  # noqa: BLE001 - not a zip written by torch.save: never unpickled
        raise ValueError(f"refused checkpoint {path}: it is corrupt or not a metazoo checkpoint "
                         f"({_first_line(error)})") from None
    if code:
        raise ValueError(f"refused checkpoint {path}: it refers to code ({brief(sorted(code))}),"
                         " which a metazoo checkpoint never holds; it was not loaded")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever the restricted unpickler refuses
        raise ValueError(f"refused checkpoint {path}: it is corrupt or not a metazoo checkpoint "
                         f"({_first_line(error)})") from None


def _is_state(value: Any, depth: int = 0) -> bool:
    """A carried state: a dict of tensors by name, nested dicts allowed."""
    return isinstance(value, dict) and depth < 4 and all(
        isinstance(name, str) and (isinstance(item, torch.Tensor) or _is_state(item, depth + 1))
        for name, item in value.items())


def _first_line(error: BaseException, limit: int = 200) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _schema_problem(state: Any) -> str:
    """What is wrong with a loaded checkpoint's structure ("" if nothing)."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a metazoo checkpoint (a dict)"
    keys = {key for key in state if isinstance(key, str)}
    missing = [key for key in _REQUIRED if key not in keys]
    extra = [str(key) for key in state if key not in _REQUIRED + _OPTIONAL]
    if missing:
        return f"it is not a metazoo checkpoint (missing {brief(missing)})"
    if extra:
        return f"it holds keys a metazoo checkpoint has not ({brief(extra)})"
    plain = _plain_data_problem(state)
    if plain:
        return plain
    if not _is_int(state["format"]) or state["format"] not in READABLE_FORMATS:
        return (f"format {_value(state['format'])} is not one this metazoo reads "
                f"({', '.join(map(str, READABLE_FORMATS))})")
    version = state["version"]
    if not isinstance(version, str) or not re.fullmatch(r"\d+(\.\d+){0,3}", version):
        return f"version {_value(version)} is not a metazoo version"
    if _version(version) > _version(__version__):
        return (f"it was written by metazoo {version}, newer than this one "
                f"({__version__}); upgrade metazoo to read it")
    if not isinstance(state["config"], dict):
        return "its config is not a dict of options"
    if not _is_int(state["iteration"]) or state["iteration"] < 0:
        return f"iteration {_value(state['iteration'])} is not an integer >= 0"
    params = state["params"]
    if not isinstance(params, dict) or not params or not all(
            isinstance(name, str) and isinstance(value, torch.Tensor)
            for name, value in params.items()):
        return "params is not a dict of named tensors"
    if state["format"] >= 3 and "state" not in keys:
        return "it is not a metazoo checkpoint (missing state)"
    if not _is_state(state.get("state", {})):
        return "state is not a dict of named tensors"
    for key in ("optimizer", "scheduler"):
        if not isinstance(state[key], dict):
            return f"{key} is not a state dict"
    generator = state["generator"]
    if not (isinstance(generator, torch.Tensor) and generator.dtype == torch.uint8
            and generator.shape == (GENERATOR_STATE_SIZE,)):
        return (f"the generator state is not {GENERATOR_STATE_SIZE} bytes (a CPU "
                "torch.Generator's state)")
    try:
        torch.Generator().set_state(generator)
    except RuntimeError as error:
        return f"the generator state is not valid ({_first_line(error)})"
    if state["strategy"] not in ("vmap", "loop"):
        return f"strategy {_value(state['strategy'])} is not vmap or loop"
    chunk_size = state.get("chunk_size")
    if chunk_size is not None and not (_is_int(chunk_size) and chunk_size >= 1):
        return f"chunk_size {_value(chunk_size)} is not a positive integer or None"
    seconds = state["train_seconds"]
    if not (isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
            and math.isfinite(seconds) and seconds >= 0):
        return f"train_seconds {_value(seconds)} is not a number of seconds >= 0"
    skipped = state.get("skipped", 0)
    if not _is_int(skipped) or not 0 <= skipped <= state["iteration"]:
        return f"skipped {_value(skipped)} is not a count of iterations"
    return ""


def _plain_data_problem(value: Any, depth: int = 0) -> str:
    """Refuse anything but tensors, numbers, strings, None, and lists, tuples and dicts of
    them: what a checkpoint holds, whatever else the restricted unpickler may build."""
    if depth > 8:
        return "it is nested deeper than a checkpoint is"
    if isinstance(value, torch.Tensor):
        if type(value) not in (torch.Tensor, torch.nn.Parameter) or value.layout != torch.strided:
            return f"it holds a {type(value).__name__} ({value.layout}), not a plain tensor"
        return ""
    if value is None or type(value) in (bool, int, float, str):
        return ""
    if type(value) in (list, tuple):
        items = value
    elif isinstance(value, dict) and type(value).__module__ in ("builtins", "collections"):
        if not all(type(key) in (str, int) for key in value):
            return "it holds a dict whose keys are not strings or integers"
        items = value.values()
    else:
        return f"it holds a {type(value).__name__}, which a checkpoint never does"
    for item in items:
        problem = _plain_data_problem(item, depth + 1)
        if problem:
            return problem
    return ""


def params_problems(params: Params, expected: Params) -> list[str]:
    """What differs between ``params`` and the ``expected`` ones: names, shapes, dtypes."""
    missing = [name for name in expected if name not in params]
    extra = [name for name in params if name not in expected]
    problems = ([f"missing parameter(s) {brief(missing)}"] if missing else []) + (
        [f"unknown parameter(s) {brief(extra)}"] if extra else [])
    for name, reference in expected.items():
        if name in params:
            value = params[name]
            if value.shape != reference.shape:
                problems.append(f"{name} is {list(value.shape)}, the model's is "
                                f"{list(reference.shape)}")
            elif value.dtype != reference.dtype:
                problems.append(f"{name} is {value.dtype}, the run's is {reference.dtype}")
    return problems


def state_problems(state: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """What differs between the carried ``state`` and the ``expected`` one."""
    problems = params_problems(flatten(state), flatten(expected))
    return [f"carried state: {problem}" for problem in problems]


def _optimizer_problems(state: dict[str, Any], fresh: dict[str, Any],
                        params: list[torch.Tensor]) -> list[str]:
    """The optimizer's settings must be the run's (only the step size moves, with the
    schedule), and its per-parameter state tensors shaped like their parameters."""
    groups, per_param = state.get("param_groups"), state.get("state")
    reference = fresh["param_groups"][0]
    if not (set(state) == {"state", "param_groups"} and isinstance(per_param, dict)
            and isinstance(groups, list) and len(groups) == 1 and isinstance(groups[0], dict)
            and set(groups[0]) == set(reference)):
        return ["its optimizer state is not one of this run's optimizer"]
    differing = [key for key in reference if key != "lr" and groups[0][key] != reference[key]]
    if differing or not _is_number(groups[0]["lr"]):
        return [f"its optimizer settings differ from the run's ({brief(differing or ['lr'])})"]
    for index, entry in per_param.items():
        if not (_is_int(index) and 0 <= index < len(params) and isinstance(entry, dict)):
            return ["its optimizer state is not one for these parameters"]
        for key, value in entry.items():
            if value is None:
                continue
            if not isinstance(value, torch.Tensor) or (
                    value.dim() and value.shape != params[index].shape):
                return [f"optimizer state {key!r} of parameter {index} does not match its shape"]
    return []


def _scheduler_problems(state: dict[str, Any], fresh: dict[str, Any], iteration: int
                        ) -> list[str]:
    """The step-size schedule's state must be the run's, at the checkpoint's iteration."""
    if set(state) != set(fresh):
        return ["its scheduler state is not one of this run's schedule"]
    if state["base_lrs"] != fresh["base_lrs"] or state["lr_lambdas"] != fresh["lr_lambdas"]:
        return ["its scheduler's base step size differs from the run's"]
    if state["last_epoch"] != iteration or not all(
            _is_number(value) for value in state.get("_last_lr") or [None]):
        return [f"its scheduler state is not at iteration {iteration}"]
    return []


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


def _value(value: Any) -> str:
    """A value from the file, as an error may echo it: its repr, cut short."""
    return brief([repr(value)])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))
