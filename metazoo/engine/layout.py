"""What a run folder holds: its file names, and how its log is read back.

Every module that reads or writes a run folder (the training loop, ``metazoo eval``,
``metazoo compare``) takes the names from here, so the layout is written down once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: θ, optimizer, generator and the resolved config (:mod:`metazoo.engine.checkpoint`).
CHECKPOINT = "checkpoint.pt"
#: The resolved configuration, every option included, written when a run starts.
CONFIG = "config.json"
#: One JSON object per logged meta-iteration.
LOG = "log.jsonl"
#: The learning curve on validation tasks (``val_every``), one JSON object per point.
VALIDATION = "validation.jsonl"
#: The final evaluation, as JSON and as a Markdown table.
RESULTS = "results.json"
RESULTS_TABLE = "results.md"
#: Held (``flock``) by the process that writes the folder, for the life of the run, and
#: removed when it ends (a killed process leaves it, unheld).
LOCK = ".lock"
#: TensorBoard's event files (``--tensorboard``), ``events.out.tfevents.*``, in this folder.
TENSORBOARD = "tensorboard"
EVENTS = "events.out.tfevents."

#: In a study folder of ``metazoo tune``: the best trial's config, which ``metazoo train
#: --config`` accepts unchanged and ``metazoo compare --tuned`` reads.
STUDY_BEST = "best.json"

#: Files a run writes; ``--overwrite`` deletes these and nothing else.
RUN_FILES = (CHECKPOINT, CONFIG, LOG, VALIDATION, RESULTS, RESULTS_TABLE)


def read_records(path: str | Path, is_record: Callable[[Any], bool], what: str
                 ) -> list[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` file, one per line, oldest first.

    A final line without its newline is a record whose write was cut short (the process was
    killed mid-write): it is dropped, as a write-ahead log drops a torn tail. Any other line
    that is not a JSON object passing ``is_record`` is refused, naming the file and line.

    Args:
        path: the file (missing: no records).
        is_record: whether a parsed object is a record of this file.
        what: what a record is, for the error (e.g. "a record with an integer iteration").

    Raises:
        ValueError: a damaged line before the last one.
    """
    path = Path(path)
    if not path.is_file():
        return []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read {path} ({error})") from error
    lines = text.split("\n")
    lines.pop()  # "" when the file ends with a newline; else a torn record, redone on resume
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is damaged at line {number} ({error.msg}); delete that "
                             "line, or start again in another folder") from None
        if not (isinstance(record, dict) and is_record(record)):
            raise ValueError(f"{path} is damaged at line {number} (not {what}); delete that "
                             "line, or start again in another folder")
        records.append(record)
    return records


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``log.jsonl`` (see :func:`read_records`)."""
    return read_records(path, lambda record: isinstance(record.get("iteration"), int),
                        "a record with an integer iteration")


def log_text(records: list[dict[str, Any]]) -> str:
    """``records`` as the lines of a ``log.jsonl``."""
    return "".join(json.dumps(record) + "\n" for record in records)
