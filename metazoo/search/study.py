"""A study: one method searched on one task family, in Optuna storage, by one or more
processes (``metazoo tune``).

The storage is a SQLite file in the study folder unless ``storage`` names another SQLAlchemy
URL; several processes (on several machines, with a PostgreSQL URL) given the same study run
it together, each trial once, the way Optuna itself scales. Every trial sends a heartbeat: a
trial whose process died is failed once its heartbeat is stale and retried with the same
values (:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`), resuming from its checkpoint where
this machine has it (:mod:`metazoo.search.trial`). Trials are counted only once they are
complete or pruned, so a failed one is never counted, and its retry is counted once.

The study records what it searches (method, task, base configuration, space, budget); the
same command continues it, and a different one is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from metazoo.engine.config import TrainConfig
from metazoo.engine.folder import check_out, locked_folder
from metazoo.engine.layout import STUDY_BEST
from metazoo.engine.run import NOT_RESULTS
from metazoo.fileio import write_json
from metazoo.messages import brief
from metazoo.search.space import Space, starting_point, to_json
from metazoo.search.trial import TRIALS, Budget, run_values

#: The default storage, a SQLite file in the study folder.
STUDY_DB = "study.db"
#: The best configuration found, as ``metazoo train --config`` takes it.
BEST = STUDY_BEST
#: Which study the folder holds (its trial folders are that study's): name, storage, method.
STUDY_JSON = "study.json"
#: What a study folder may hold besides temporary files.
STUDY_FILES = (STUDY_JSON, STUDY_DB, f"{STUDY_DB}-journal", f"{STUDY_DB}-wal", f"{STUDY_DB}-shm", TRIALS,
               BEST, "final", "final.json", "report", ".lock", ".write-test")
#: The study's record of what it searches, a user attribute of the Optuna study.
IDENTITY = "metazoo"
#: Trial states that count toward ``trials`` (a failed trial is retried, not counted).
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


class NoTrialComplete(RuntimeError):
    """Every trial of the study was pruned or failed: there is no best config."""


@dataclass(frozen=True)
class Search:
    """How a study runs: its folder, storage and name, the trials or total budget it stops
    at, the seed of its sampler and its random startup trials, and the heartbeat of its
    trials."""

    out: Path
    budget: Budget
    trials: int = 0
    total_seconds: float = 0.0
    storage: str = ""
    study: str = ""
    search_seed: int = 0
    startup_trials: int = 10
    heartbeat: int = 10
    progress: bool = True

    def __post_init__(self) -> None:
        if self.trials < 0 or (self.trials == 0 and not self.total_seconds):
            raise ValueError("trials must be a positive integer (or give --budget, total CPU "
                             f"seconds), got {self.trials}")
        for name, value in (("trial_budget", self.budget.seconds),
                            ("budget", self.total_seconds)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.budget.seconds <= 0:
            raise ValueError(f"trial_budget must be a positive number of seconds, got "
                             f"{self.budget.seconds!r}")
        if self.startup_trials < 1:
            raise ValueError(f"startup_trials must be a positive integer, got "
                             f"{self.startup_trials!r}")
        if self.heartbeat < 1:
            raise ValueError(f"heartbeat must be a positive number of seconds, got "
                             f"{self.heartbeat!r}")

    @property
    def url(self) -> str:
        return self.storage or f"sqlite:///{(self.out / STUDY_DB).absolute()}"


def default_study_name(config: TrainConfig) -> str:
    return f"{config.algorithm}-{config.task}"


def identity(base: TrainConfig, space: Space, search: Search, direction: str) -> dict[str, Any]:
    """What a study searches: two processes may share a study only if these agree (as
    stored: JSON)."""
    return json.loads(json.dumps({"algorithm": base.algorithm, "task": base.task, "base": base.to_dict(),
            "space": to_json(space), "trial_budget": search.budget.seconds,
            "clock": search.budget.clock, "val_every": search.budget.val_every,
            "direction": direction}))


def open_storage(search: Search) -> RDBStorage:
    """The study's storage, with heartbeats and the retry of dead trials.

    Raises:
        ValueError: one line naming the URL and why it cannot be opened.
    """
    import sqlalchemy.exc

    url = search.url
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite") and url.split("///", 1)[-1] in ("", ":memory:", url):
        raise ValueError(f"--storage {brief([url], width=80)} is an in-memory database, which "
                         "keeps nothing and no other process sees; name a file, e.g. "
                         "sqlite:///study.db")
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 60}}  # several processes share the file
    elif url.startswith("postgresql"):
        kwargs = {"connect_args": {"connect_timeout": 10}}
    def connect() -> RDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=search.heartbeat,
                              grace_period=2 * search.heartbeat,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback())

    try:
        for _ in range(2):
            try:
                return _serialized(connect())
            except sqlalchemy.exc.IntegrityError:
                # Two processes made the tables of a new database at once: the other won.
                time.sleep(1.0)
        return _serialized(connect())
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, OSError) as error:
        hint = ("; install the driver: pip install 'metazoo[tune-postgres]'"
                if isinstance(error, ImportError) else
                "; give a SQLAlchemy URL that opens, e.g. sqlite:///study.db or "
                "postgresql://user:password@host/database")
        reason = brief([str(error).splitlines()[0] if str(error) else type(error).__name__],
                       width=160)
        raise ValueError(f"--storage {shown_url(url)} cannot be opened ({reason}){hint}") from None


def _serialized(storage: RDBStorage) -> RDBStorage:
    """``storage`` with each SQLite transaction taking the database's write lock when it
    begins (``BEGIN IMMEDIATE``).

    Optuna takes a queued trial (the first trial, a retry) by reading that it waits and
    writing that it runs, under ``SELECT … FOR UPDATE``; SQLite ignores ``FOR UPDATE`` and
    by default locks only at the first write, so two processes could both read "waiting"
    and both run the trial. PostgreSQL and MySQL honour the row lock and are left as they are.
    """
    from sqlalchemy import event

    engine = storage.engine
    if engine.name != "sqlite":
        return storage

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy, not the driver, begins

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the listeners are not reused
    return storage


def shown_url(url: str) -> str:
    """A URL without its password, for messages."""
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):  # not a URL: show it cut short
        return brief([url], width=80)


def check_study(storage: RDBStorage, name: str, wanted: dict[str, Any], url: str) -> bool:
    """Whether the study ``name`` exists in ``storage``; refuses one that searches something
    else (another method, task, base configuration, space or budget)."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return False
    stored = storage.get_study_user_attrs(study_id).get(IDENTITY)
    if stored is None:
        raise ValueError(f"study {name!r} in {shown_url(url)} was not made by metazoo tune; "
                         "choose another --study")
    if (stored["algorithm"], stored["task"]) != (wanted["algorithm"], wanted["task"]):
        raise ValueError(f"study {name!r} in {shown_url(url)} searches {stored['algorithm']} on "
                         f"{stored['task']}, not {wanted['algorithm']} on {wanted['task']}; "
                         "choose another --study (or --storage)")
    differing = [key for key in wanted if key != "base" and stored.get(key) != wanted[key]]
    differing += [f"{key} (stored {stored['base'].get(key)!r}, given {value!r})"
                  for key, value in wanted["base"].items()
                  if stored["base"].get(key) != value and key not in NOT_RESULTS]
    if differing:
        raise ValueError(f"study {name!r} in {shown_url(url)} was made with other options: "
                         f"{brief(differing, width=100)}; give the same options to continue "
                         "it, or choose another --study")
    return True


def check_folder(out: Path, record: dict[str, Any]) -> None:
    """Refuse a study folder that holds other files, or another study (its trial folders
    belong to that one), before anything is written."""
    check_out(out, "--out")
    held = out / STUDY_JSON
    if held.is_file():
        try:
            stored = json.loads(held.read_text())
            same = {key: stored[key] for key in record} == record
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"{held} is damaged; put it back, or choose another --out"
                             ) from None
        if not same:
            raise ValueError(f"--out {out} holds the study {stored['study']!r} of "
                             f"{stored['algorithm']} on {stored['task']} in {stored['storage']}; "
                             "choose another --out for this one")
    if out.is_dir():
        foreign = sorted(path.name for path in out.iterdir()
                         if path.name not in STUDY_FILES and not path.name.endswith(".tmp"))
        if foreign:
            raise ValueError(f"--out {out} holds files that are not a metazoo study "
                             f"({brief(foreign)}); choose another folder")


@contextlib.contextmanager
def opened_study(base: TrainConfig, space: Space, search: Search, direction: str
                 ) -> Iterator[optuna.Study]:
    """The study, created or continued, with the study folder locked for the block.

    Every refusal comes before a file is written: the folder, the storage URL (a storage
    given by URL is opened first; the default one lives in the folder) and the study's record.
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    name = search.study or default_study_name(base)
    record = {"study": name, "storage": shown_url(search.url), "algorithm": base.algorithm,
              "task": base.task}
    check_folder(search.out, record)
    wanted = identity(base, space, search, direction)
    if search.storage or (search.out / STUDY_DB).is_file():
        check_study(open_storage(search), name, wanted, search.url)
    with locked_folder(search.out, files=(BEST, STUDY_JSON, "final.json")):
        storage = open_storage(search)
        exists = check_study(storage, name, wanted, search.url)
        study = optuna.create_study(storage=storage, study_name=name, direction=direction,
                                    load_if_exists=True, pruner=pruner(search))
        if not exists:
            study.set_user_attr(IDENTITY, wanted)
            study.set_user_attr("search_seed", search.search_seed)
            # The first trial is the run's own settings (defaults or preset), where the space
            # holds them: the search starts from what it is meant to beat.
            start = starting_point(space, run_values(base))
            if start:
                study.enqueue_trial(start, user_attrs={"start": "defaults"})
        if not (search.out / STUDY_JSON).is_file():
            write_json(search.out / STUDY_JSON, record)
        yield study


def pruner(search: Search) -> optuna.pruners.BasePruner:
    # The median rule, from each trial's second validation point on, once 3 trials are done.
    return optuna.pruners.MedianPruner(n_startup_trials=3,
                                       n_warmup_steps=search.budget.val_every + 1)


def trials_of(study: optuna.Study, *states: TrialState) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=states or None)


def spent_seconds(study: optuna.Study) -> float:
    """Budget seconds used by the counted trials (a retry's include its dead trial's)."""
    return sum(float(t.user_attrs.get("cpu_seconds", 0.0)) for t in trials_of(study, *COUNTED))


def used_seconds(study: optuna.Study) -> float | None:
    """CPU seconds the counted trials' processes used in all: meta-training, validation,
    building and checkpoints (a trial resumed by another process: that process's share).
    None where a trial did not record it (a study begun before trials recorded it)."""
    counted = trials_of(study, *COUNTED)
    if any("process_cpu_seconds" not in t.user_attrs for t in counted):
        return None
    return sum(float(t.user_attrs["process_cpu_seconds"]) for t in counted)


def best_config(study: optuna.Study, base: TrainConfig, space: Space, seconds: float
                ) -> TrainConfig:
    """The best trial's values in the base configuration, for a run of ``seconds``.

    Raises:
        NoTrialComplete: no trial of the study is complete.
    """
    from metazoo.search.space import complete
    from metazoo.search.trial import with_values

    if not trials_of(study, TrialState.COMPLETE):
        raise NoTrialComplete(f"no trial of study {study.study_name!r} is complete (each was pruned "
                         "or failed); widen the space or raise --trial-budget")
    values = complete(space, study.best_trial.params, run_values(base))
    return dataclasses.replace(with_values(base, values), time_budget=seconds)


__all__ = ["BEST", "COUNTED", "IDENTITY", "STUDY_DB", "NoTrialComplete", "Search", "best_config",
           "check_study", "default_study_name", "open_storage", "opened_study", "pruner", "shown_url",
           "spent_seconds", "trials_of", "used_seconds"]
