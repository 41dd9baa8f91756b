"""The folder a run writes: checked before anything is written, locked while the run lives.

:func:`check_out` looks at the path without writing anything, so that every refusal comes
before a file changes. :func:`locked_folder` creates the folder, takes its exclusive lock for
the life of the run, and clears the temporary files a killed write left behind.
:func:`prepare_new_run` then decides, under that lock, what the folder's contents allow.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from metazoo.engine.layout import CHECKPOINT, EVENTS, LOCK, RUN_FILES, TENSORBOARD
from metazoo.fileio import exclusive_lock, file_kind, remove_temporaries
from metazoo.messages import brief

#: Longest path the kernel accepts (Linux's PATH_MAX).
_PATH_MAX = 4096
#: Written and deleted to prove a folder writable.
_PROBE = ".write-test"


def check_out(out: str | Path, what: str = "out") -> Path:
    """Refuse a folder that cannot be written, without writing anything.

    Args:
        out: the folder (created later if missing).
        what: the option it came from, to name in errors.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: one line naming the folder and the problem.
    """
    if isinstance(out, str) and not out.strip():
        raise ValueError(f"{what} is empty; name a folder (e.g. runs/first)")
    out = Path(out)
    full = out.absolute()
    if len(os.fsencode(full)) >= _PATH_MAX:
        raise ValueError(f"{what} is a path of {len(os.fsencode(full)):,} bytes, longer than "
                         f"this system's limit of {_PATH_MAX - 1}; choose a shorter one")
    existing = full
    while not _exists(existing):
        existing = existing.parent
    limit = _name_max(existing if existing.is_dir() else existing.parent)
    for part in full.parts:
        if len(os.fsencode(part)) > limit:
            raise ValueError(f"{what} has a name of {len(os.fsencode(part)):,} bytes "
                             f"({brief([part], width=40)}), longer than this filesystem's limit "
                             f"of {limit}; choose a shorter one")
    if existing == full and not existing.is_dir():
        raise ValueError(f"{what} {out} is a file, not a folder; choose another folder")
    if not existing.is_dir():
        raise ValueError(f"{what} {out} is under {existing}, which is a file; choose another folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == full else f" (it would be made in {existing})"
        raise ValueError(f"{what} {out} is not writable{where}; choose another folder")
    return out


def check_file_target(path: str | Path, what: str, *, run: str | Path | None = None,
                      inputs: dict[str, str | Path] | None = None) -> Path:
    """Refuse a file that must not or cannot be written, without writing anything.

    An output never replaces what a user has: it is a new name or a regular file, never a
    file of a run folder (``checkpoint.pt``, ``config.json``…, of ``run`` or of any run), nor
    one of the command's ``inputs`` under another name. It must also be writable: not a
    folder, in a folder that exists and may be written, with a name not too long.

    Args:
        path: the file to write.
        what: the option it came from (``--out``), to name in errors.
        run: the run folder the command reads, if any.
        inputs: the command's input files by option (``{"--support": path}``).

    Raises:
        ValueError: one line naming the file, the problem and the fix.
    """
    path = Path(path)
    kind = file_kind(path)
    if kind == "a folder":
        raise ValueError(f"{what} {path} is a folder; name a file")
    if kind not in ("missing", "a regular file"):
        raise ValueError(f"{what} {path} is not a regular file ({kind}), and writing it would "
                         "replace it; name a new file or a regular one")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise ValueError(f"{what} {path}: the folder {folder} does not exist; create it first")
    check_out(folder, what)
    limit = _name_max(folder)
    if len(os.fsencode(path.name)) > limit:
        raise ValueError(f"{what} has a name of {len(os.fsencode(path.name)):,} bytes, longer "
                         f"than this filesystem's limit of {limit}; choose a shorter one")
    if path.name in (*RUN_FILES, LOCK) and any((folder / name).is_file() for name in RUN_FILES):
        own = run is not None and _same(folder, Path(run))
        raise ValueError(f"{what} {path} is {'the' if own else 'a'} run's own {path.name}"
                         f"{'' if own else f' (the run in {folder})'}; name another file")
    for option, source in (inputs or {}).items():
        if _same(path, Path(source)):
            raise ValueError(f"{what} {path} is the {option} file of this command; name "
                             "another file for the output")
    return path


def _same(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (through links, ``..`` or another spelling)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a name too long to look up: treat it as not there
        return False


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


@contextlib.contextmanager
def locked_folder(out: Path, lead: bool = True, files: tuple[str, ...] = RUN_FILES
                  ) -> Iterator[None]:
    """Create ``out`` and hold its exclusive lock for the block (on the writing rank only);
    the lock file is removed as the block ends.

    Under the lock, temporary files that a killed write of one of ``files`` left are
    deleted, and a probe file proves the folder writable, so a read-only folder is refused
    before the run starts.

    Raises:
        ValueError: the folder cannot be created or written, or another process holds it
            (:class:`~metazoo.fileio.FolderInUseError`, naming that process).
    """
    if not lead:
        yield
        return
    with contextlib.ExitStack() as stack:
        try:
            out.mkdir(parents=True, exist_ok=True)
            stack.enter_context(exclusive_lock(out / LOCK, f"run folder {out}", remove=True))
        except OSError as error:
            raise ValueError(f"cannot write in {out} ({_reason(error)}); choose another folder"
                             ) from None
        remove_temporaries(out, files)
        _probe(out)
        yield


def _belongs_to_a_run(path: Path) -> bool:
    """A file a run makes: its own, its lock, its probe, a temporary file of a write in
    flight (another process's) or of one that was killed, or its folder of TensorBoard
    events (holding nothing else)."""
    name = path.name
    if name == TENSORBOARD:
        return file_kind(path) == "a folder" and all(map(_is_events, path.iterdir()))
    return name in (*RUN_FILES, LOCK, _PROBE) or any(
        name.startswith(f".{run_file}.") and name.endswith(".tmp") for run_file in RUN_FILES)


def _is_events(path: Path) -> bool:
    """A TensorBoard event file, as a run writes them."""
    return path.name.startswith(EVENTS) and file_kind(path) == "a regular file"


def _probe(out: Path) -> None:
    probe = out / _PROBE
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"cannot write in {out} ({_reason(error)}); make it writable, or "
                         "choose another folder") from None


def _reason(error: OSError) -> str:
    return os.strerror(error.errno) if error.errno else str(error)


def prepare_new_run(out: Path, overwrite: bool, *, check_only: bool = False) -> None:
    """Make ``out`` ready for a new run, under its lock; delete only what the rules allow.

    With ``check_only`` it deletes nothing and only refuses: called before the lock is taken,
    so that a refused folder does not even get a lock file.

    * an empty folder is used as it is;
    * a run that stopped before its first checkpoint (only ``config.json`` or ``log.jsonl``)
      is started again: there is nothing to resume, and nothing is lost;
    * a run with a checkpoint is deleted only with ``overwrite`` (its own files only, and
      the event files of its ``tensorboard`` folder);
    * other files are never deleted, and without ``overwrite`` they refuse the folder.

    Raises:
        ValueError: the folder holds a run or other files, and ``overwrite`` is false.
    """
    if not out.is_dir():
        return
    foreign = sorted(path.name for path in out.iterdir() if not _belongs_to_a_run(path))
    has_run = (out / CHECKPOINT).exists()
    if not overwrite and has_run:
        raise ValueError(f"{out} already holds a run; resume it, overwrite it, or choose "
                         "another folder")
    if not overwrite and foreign:
        raise ValueError(f"{out} already holds files that are not a metazoo run "
                         f"({brief(foreign)}); choose another folder, or overwrite (which "
                         "deletes only a run's own files)")
    for name in RUN_FILES:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            raise ValueError(f"{path} is a folder where the run writes a file; move it away")
        if check_only:
            continue
        _delete(path)
    board = out / TENSORBOARD
    if not check_only and file_kind(board) == "a folder":
        for events in filter(_is_events, board.iterdir()):
            _delete(events)
        if not any(board.iterdir()):
            _delete(board)


def _delete(path: Path) -> None:
    """Delete the file (or empty folder) ``path``, if it is there."""
    try:
        if file_kind(path) == "a folder":
            path.rmdir()
        else:
            path.unlink(missing_ok=True)
    except OSError as error:
        raise ValueError(f"cannot delete {path} ({_reason(error)})") from None


def missing_checkpoint_message(out: Path) -> str:
    """Why a folder has no checkpoint to resume or evaluate, and what to do instead."""
    if not out.is_dir():
        return f"no run in {out}: the folder does not exist"
    if any((out / name).exists() for name in RUN_FILES):
        return (f"{out} has no {CHECKPOINT}: its run stopped before writing the first one; "
                "start the run again with the same options (not as a resume): nothing is lost")
    return f"no run in {out}: it holds no {CHECKPOINT}"


__all__ = ["check_file_target", "check_out", "locked_folder", "missing_checkpoint_message", "prepare_new_run"]
