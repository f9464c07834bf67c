"""The one atomic file writer: every file the project writes lands whole or not at all.

:func:`atomic_path` yields a temporary path in the destination's folder (``.<name>.<pid>.partial<suffix>``,
so libraries that look at the extension still see it); when the block ends without an exception the file is
flushed to disk (``fsync``), renamed over the destination (``os.replace``, atomic on POSIX) and the folder
entry is flushed too; on an exception (or a kill) the destination keeps its previous content and the
temporary file is removed (a SIGKILL leaves it behind: :func:`remove_orphans` deletes such files of dead
processes at the next start). :func:`atomic_write` and :func:`atomic_copy` are the two common uses.

A write that fails for a reason the user can fix (read-only folder or mount, a file where a folder should
be, a full disk) raises :class:`OutputError`: one line naming the path, the reason, what to do and, for a full
disk, the free space. Clean-up after a failure never replaces that error (on a read-only mount even removing
a file that does not exist fails). :func:`probe_output_dir` checks an output folder with a small write that
is removed again, creating nothing, so that entry points fail before they touch their output folder or start
their work; :func:`prepare_output_dir` then creates it. :class:`RunLock` gives one process a folder for its
life.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from lib.core.errors import UserError

PARTIAL_MARK = '.partial'
OUTPUT_FIX = 'choose another output folder'   # what an OutputError tells the user to do, by default
_PARTIAL_RE = re.compile(r'^\.(?P<name>.+)\.(?P<pid>\d+)\.partial')


def temporary_path(path: Path) -> Path:
    """Where :func:`atomic_path` writes ``path`` before renaming it: same folder, hidden, pid-stamped, with
    ``path``'s suffix kept (``.video.mp4.1234.partial.mp4``)."""
    return path.with_name(f'.{path.name}.{os.getpid()}{PARTIAL_MARK}{path.suffix}')


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OutputError(UserError, OSError):
    """An output that cannot be written (read-only, not a folder, disk full, ...): one line, exit 2."""


def output_error(path: str | os.PathLike, err: BaseException, fix: str = OUTPUT_FIX) -> OutputError:
    """The :class:`OutputError` for a failed write of ``path`` (free space named when the disk is full);
    ``fix`` says what to do (after "free some space or" for a full disk)."""
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0]
    full = (isinstance(err, OSError) and err.errno == errno.ENOSPC) or 'enforce fail' in str(err)
    if full:
        reason = 'no space left on the device'
    hint = ''
    if full or (isinstance(err, OSError) and err.errno in (errno.EDQUOT,)):
        try:
            hint = f' ({shutil.disk_usage(_existing_parent(Path(path))).free / 2**20:.0f} MiB free there)'
        except OSError:
            pass
    return OutputError(f"cannot write {path}: {reason}{hint}; free some space or {fix}"
                       if full else f"cannot write {path}: {reason}; {fix}")


def _remove_quietly(path: Path) -> None:
    """Remove ``path`` if it is there, ignoring every error: clean-up must not replace the error that is being
    raised (``unlink`` on a read-only mount fails with EROFS even for a missing file); a temporary file left
    behind is removed by :func:`remove_orphans` at the next start."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield the temporary path to write ``path``'s content to (creating the parent folder); rename it into
    place when the block succeeds, remove it when it raises. OSErrors of the folder, the rename and the
    writes (and torch's disk-full RuntimeError) become :class:`OutputError`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(path.parent, err) from err
    tmp = temporary_path(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except OutputError:
        raise
    except OSError as err:
        raise output_error(path, err) from err
    except RuntimeError as err:
        if 'enforce fail' not in str(err) and 'write failed' not in str(err):   # torch.save's disk errors
            raise
        raise output_error(path, err) from err
    finally:
        _remove_quietly(tmp)
    fsync_dir(path.parent)


def probe_output_dir(folder: str | os.PathLike, fix: str = OUTPUT_FIX) -> None:
    """Check, creating nothing, that ``folder`` can be created and written: its nearest existing ancestor
    (``folder`` itself when it exists) must be a folder that takes a small file, written, flushed and removed
    again (``.write_probe.<pid>.partial``). ``fix`` says what to do in the error.

    Raises:
        OutputError: a path component is a file, or the folder that would hold the outputs cannot be written
            (read-only folder or mount, full disk, no permission).
    """
    folder = Path(folder)
    existing = _existing_parent(folder)
    if not existing.is_dir():
        what = 'it is' if existing == folder else f'{existing} is'
        raise OutputError(f"cannot write into {folder}: {what} a file, not a folder; {fix}")
    probe = existing / f'.write_probe.{os.getpid()}{PARTIAL_MARK}'
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b'probe\n')
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as err:
        raise output_error(folder, err, fix) from err
    finally:
        _remove_quietly(probe)


def prepare_output_dir(folder: str | os.PathLike, fix: str = OUTPUT_FIX) -> Path:
    """Probe ``folder`` (:func:`probe_output_dir`), create it (and parents) and remove temporary files of killed
    writers found there; returns it.

    Raises:
        OutputError: the folder cannot be created or written.
    """
    folder = Path(folder)
    probe_output_dir(folder, fix)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(folder, err, fix) from err
    remove_orphans(folder)
    return folder


class RunLock:
    """An exclusive ``fcntl`` lock on ``<folder>/.lock`` held for a run's life (released by the kernel if the
    process dies). A second process asking for the same folder gets one line naming the holder's pid.

    The lock file holds the holder's pid as text; it is a lock, not an output, so it is written in place.
    """

    NAME = '.lock'

    def __init__(self, folder: str | os.PathLike, what: str = 'run'):
        self.path = Path(folder) / self.NAME
        self.what = what
        self._file = None

    def __enter__(self) -> 'RunLock':
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, 'a+', encoding='utf-8')
        except OSError as err:
            raise output_error(self.path, err) from err
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or 'unknown'
            handle.close()
            raise UserError(f"another {self.what} (pid {holder}) is using {self.path.parent}; wait for it to end, "
                            f"or choose another OUTPUT_DIR / EXP_NAME") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f'{os.getpid()}\n')
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def atomic_write(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding='utf-8')
    return Path(path)


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy ``src`` to ``dst`` atomically (``dst`` is never seen half-copied); returns ``dst``."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def remove_orphans(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writers (processes no longer running) left in ``folder``;
    returns what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _PARTIAL_RE.match(entry.name)
        if match and entry.is_file() and not _pid_alive(int(match['pid'])):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
