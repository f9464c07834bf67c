"""Logging for the entry points: ``lib.*`` log lines on the console (without breaking tqdm bars) and in a
``log.txt`` beside each run's outputs, which starts with the run record.

The run record (:func:`log_run`, :func:`write_run_config`) is the same for every tool: the command line, the
versions, the device and the merged config in ``log.txt`` (the config in the file only), and the merged
config as ``config.yaml`` beside the outputs (:data:`CONFIG_FILE`), so that any output folder can be traced
back to the command and overrides that made it.

``train.py``, ``evaluate.py`` and ``demo.py`` call :func:`console_logging` once at start-up (through
:func:`lib.core.cli.run_main`); training and evaluation wrap their work in :func:`log_file` as soon as their
output folder is known, the demo collects its lines with :func:`captured_log` and writes them with its
outputs. Records logged with ``extra={'file_only': True}`` (the full config dump) go to the file only.
"""
from __future__ import annotations

import logging
import platform
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from tqdm import tqdm

from lib.core.io import atomic_write

LOG_FILE = 'log.txt'
CONFIG_FILE = 'config.yaml'
FORMAT = logging.Formatter('[%(asctime)s] %(message)s', '%Y-%m-%d %H:%M:%S')
_PACKAGE = 'lib'


logger = logging.getLogger(__name__)


def log_run(cfg, device, out_dir: str | Path | None, processes: int = 1) -> None:
    """Log the run record: the command, then python / torch / platform versions with the ``device`` and the
    number of ``processes``, then the merged config (to the log file only)."""
    logger.info('command: %s', shlex.join(sys.argv))
    logger.info('python %s, torch %s, %s, device %s, %d process(es)', platform.python_version(),
                torch.__version__, platform.platform(), device, processes)
    where = f' (also in {Path(out_dir) / CONFIG_FILE})' if out_dir is not None else ''
    logger.info('config%s:\n%s', where, cfg.dump(), extra={'file_only': True})


def write_run_config(out_dir: str | Path, cfg) -> Path:
    """Write the merged config as ``out_dir/config.yaml`` (atomically); returns its path."""
    return atomic_write(Path(out_dir) / CONFIG_FILE, cfg.dump())


class TqdmHandler(logging.StreamHandler):
    """Console lines on stderr through ``tqdm.write`` (bars stay intact); skips ``file_only`` records."""

    def emit(self, record):
        if getattr(record, 'file_only', False):
            return
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def console_logging(level: int = logging.INFO) -> None:
    """Show ``lib.*`` records of ``level`` and above on the console (idempotent)."""
    package = logging.getLogger(_PACKAGE)
    if not any(isinstance(h, TqdmHandler) for h in package.handlers):
        handler = TqdmHandler()
        handler.setFormatter(FORMAT)
        package.addHandler(handler)
    package.setLevel(level)


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]):
        super().__init__()
        self.lines = lines

    def emit(self, record):
        self.lines.append(self.format(record))


@contextmanager
def captured_log() -> Iterator[list[str]]:
    """Collect the ``lib.*`` INFO records (formatted as in ``log.txt``) while the block runs, for a log file
    written together with a run's outputs (the demo writes nothing before it has found a person)."""
    package = logging.getLogger(_PACKAGE)
    old_level = package.level
    lines: list[str] = []
    handler = _ListHandler(lines)
    handler.setFormatter(FORMAT)
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        package.removeHandler(handler)
        package.setLevel(old_level)


@contextmanager
def log_file(out_dir: str | Path | None, is_main: bool = True) -> Iterator[Path | None]:
    """Also write ``lib.*`` INFO records to ``out_dir/log.txt`` (appending) while the block runs; on other
    processes of a distributed job (``is_main`` False) only warnings are logged and no file is written.
    Yields the log file's path (None when none is written)."""
    package = logging.getLogger(_PACKAGE)
    old_level = package.level
    handler = None
    path = None
    if is_main and out_dir is not None:
        path = Path(out_dir) / LOG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding='utf-8')
        handler.setFormatter(FORMAT)
        package.addHandler(handler)
    package.setLevel(logging.INFO if is_main else logging.WARNING)
    try:
        yield path
    finally:
        if handler is not None:
            package.removeHandler(handler)
            handler.close()
        package.setLevel(old_level)
