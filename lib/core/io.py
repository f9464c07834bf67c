"""The one atomic file writer: every file the project writes lands whole or not at all.

:func:`atomic_path` yields a temporary path in the destination's folder (``.<name>.<pid>.partial<suffix>``,
so libraries that look at the extension still see it); when the block ends without an exception the file is
flushed to disk (``fsync``), renamed over the destination (``os.replace``, atomic on POSIX) and the folder
entry is flushed too; on an exception (or a kill) the destination keeps its previous content and the
temporary file is removed (a SIGKILL leaves it behind: :func:`remove_orphans` deletes such files of dead
processes at the next start). :func:`atomic_write` and :func:`atomic_copy` are the two common uses.
"""
from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PARTIAL_MARK = '.partial'
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


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield the temporary path to write ``path``'s content to (creating the parent folder); rename it into
    place when the block succeeds, remove it when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


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
