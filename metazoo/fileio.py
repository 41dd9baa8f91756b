"""Files shared by every layer: atomic writes (checkpoints, configs, results, data caches)
and an exclusive lock on a folder.

A file is written to a temporary file in the same folder, flushed and fsynced, then renamed
over its target, so a reader (or a run killed mid-write) never sees half a file. A process
killed mid-write leaves its temporary file behind: :func:`remove_temporaries` clears them.
The rename only ever replaces a regular file: a device, a pipe, a socket or a symbolic link
at the target is refused (renaming over ``/dev/full`` would replace the device for everyone).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any


class WriteError(OSError):
    """A file could not be written (disk full, read-only, file too large…): one line naming
    the file and the reason."""

    def __str__(self) -> str:
        return str(self.strerror)


def atomic_write_bytes(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``.

    Raises:
        WriteError: the file could not be written; ``path`` is left as it was.
    """
    path = Path(path)
    _refuse_non_regular(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".tmp")
    except OSError as error:
        raise WriteError(error.errno, f"cannot write {path} ({_reason(error)})") from None
    file = None
    try:
        # mkstemp makes the file private (0600); the result gets the mode any new file gets.
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as raw:
            file = _Recording(raw)
            write(file)
            raw.flush()
            os.fsync(raw.fileno())
        _refuse_non_regular(path)  # again: something may have been put there meanwhile
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        # A writer such as torch.save reports a failed write in its own words ("unexpected
        # pos …"); the operating system's reason, recorded on the way, is the one to give.
        failure = (file.error if file is not None else None) or error
        if isinstance(failure, OSError) and not isinstance(failure, WriteError):
            raise WriteError(failure.errno, f"cannot write {path} ({_reason(failure)}); free "
                             "some space, or choose another folder") from None
        raise


def file_kind(path: str | Path) -> str:
    """What is at ``path``, without following a symbolic link: ``"missing"``, ``"a regular
    file"``, ``"a folder"``, ``"a symbolic link"``, ``"a named pipe"``, ``"a device"`` or
    ``"a socket"``."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError:  # e.g. a name too long to look up: nothing can be there
        return "missing"
    for test, kind in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a device"


def _refuse_non_regular(path: Path) -> None:
    kind = file_kind(path)
    if kind not in ("missing", "a regular file"):
        raise WriteError(0, f"cannot write {path}: it is not a regular file ({kind}), and a "
                         "write would replace it; name a new file or a regular one")


class _Recording:
    """A file whose first failed write is kept (see :func:`atomic_write_bytes`)."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = self.error or error
            raise

    def __getattr__(self, name: str):
        return getattr(self.file, name)


def _reason(error: OSError) -> str:
    return os.strerror(error.errno) if error.errno else str(error)


def atomic_write_data(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write_bytes(path, lambda file: file.write(data))


def append_line(file: IO[str], line: str) -> None:
    """Append ``line`` and a newline to the open text file ``file``, flushed.

    Raises:
        WriteError: naming the file, if the write fails.
    """
    try:
        file.write(line + "\n")
        file.flush()
    except OSError as error:
        raise WriteError(error.errno, f"cannot write {file.name} ({_reason(error)}); free "
                         "some space, or choose another folder") from None


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write_data(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; set it straight back
    os.umask(mask)
    return mask


def remove_temporaries(folder: str | Path, names: Iterable[str]) -> list[Path]:
    """Delete the temporary files :func:`atomic_write_bytes` left in ``folder`` for the files
    ``names`` when a process was killed mid-write. Only call it while holding the folder's
    lock (:func:`exclusive_lock`): another process's write in flight looks the same.

    Returns:
        The files deleted.
    """
    removed = []
    for name in names:
        for stale in Path(folder).glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


class FolderInUseError(ValueError):
    """Another process holds the folder's lock."""


@contextlib.contextmanager
def exclusive_lock(path: str | Path, what: str, *, remove: bool = False) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``path`` (created if needed) for the block.

    A second process is refused with one line that names the holder's process id, which the
    kernel reports (``/proc/locks``); nothing is written into the file, so taking the lock
    changes no file. The kernel releases the lock when the holder exits, however it exits,
    so a killed run never leaves its folder locked.

    With ``remove`` the file is deleted at the end of the block, while the lock is still held,
    so a finished run leaves no lock file behind (a killed one leaves it, unheld). That is safe
    because every taker checks, once it holds a lock, that the file it locked is still the one
    at ``path``: a process that opened the file just before it was deleted, and then locked
    it, holds a lock on a file no one else can open, and takes the one at ``path`` instead.

    Args:
        path: the lock file.
        what: how to name the locked thing in the error, e.g. ``"run folder runs/a"``.
        remove: delete the file as the block ends.

    Raises:
        FolderInUseError: another process holds the lock.
    """
    while True:
        handle = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(os.fstat(handle))
            os.close(handle)
            raise FolderInUseError(
                f"{what} is in use by {f'process {holder}' if holder else 'another process'}; "
                "wait for it to finish, stop it, or choose another folder") from None
        except BaseException:
            os.close(handle)
            raise
        if _same_file(handle, path):
            break
        os.close(handle)  # its holder removed it as it let go: lock the file there now
    try:
        yield
    finally:
        # A lock file that cannot be removed (its folder made read-only meanwhile) is left
        # as a killed run leaves it: unheld, and harmless.
        with contextlib.suppress(OSError):
            if remove and _same_file(handle, path):
                os.unlink(path)
        os.close(handle)  # releases the lock


def _same_file(handle: int, path: str | Path) -> bool:
    """Whether the open file ``handle`` is the file at ``path``."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(handle)
    return (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino)


def _lock_holder(stat: os.stat_result) -> str:
    """The process id holding a ``flock`` on the file ``stat`` describes ("" if unknown)."""
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    try:
        with open("/proc/locks") as locks:  # Linux: "1: FLOCK ADVISORY WRITE <pid> <dev:inode> …"
            for line in locks:
                fields = line.split()
                if "FLOCK" in fields and "->" not in fields and device in fields:
                    return fields[fields.index(device) - 1]
    except OSError:
        pass
    return ""
