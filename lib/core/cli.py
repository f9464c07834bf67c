"""Shared command-line plumbing for train.py, evaluate.py and demo.py.

Options (``--cfg``, ``--checkpoint``, ...) may come before, between or after the ``KEY VALUE`` config
overrides; everything after ``--`` is taken as overrides (for a value that starts with ``-`` and is not a
plain number). Paths typed as options are relative to the current folder (:func:`cli_path`); values of
config keys, in a YAML file or as ``KEY VALUE`` overrides, follow :mod:`lib.core.config`'s rule.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable

import torch

from lib.core.config import load_config
from lib.core.errors import UserError
from lib.core.logs import console_logging

logger = logging.getLogger(__name__)


class ConfigArgumentParser(argparse.ArgumentParser):
    """An argument parser whose options may also follow the positional ``KEY VALUE`` overrides."""

    def parse_args(self, args=None, namespace=None):
        return self.parse_intermixed_args(args, namespace)


def config_argument_parser(description: str, epilog: str = '') -> ConfigArgumentParser:
    """A parser with ``--cfg FILE`` and ``KEY VALUE`` config overrides (``opts``), options anywhere."""
    parser = ConfigArgumentParser(description=description, epilog=epilog,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cfg', metavar='FILE', help='YAML config (merged over lib/core/config.py defaults)')
    parser.add_argument('opts', nargs='*', metavar='KEY VALUE',
                        help='config overrides, e.g. TRAIN.BATCH_SIZE 32 DEVICE cpu (options may come before or '
                             'after them)')
    parser.add_argument('--gpu', metavar='N', help='official flag: use GPU N when DEVICE is auto or cuda (a DEVICE '
                        'naming a device wins); without GPU N, one log line and the device auto picks')
    return parser


def cli_path(path: str | os.PathLike | None) -> str | None:
    """A path typed on the command line, made absolute against the current folder (None stays None), so that
    :func:`lib.core.config.resolve_path` keeps it as it is."""
    return None if path is None else os.path.abspath(os.path.expanduser(path))


def config_from_args(args: argparse.Namespace, extra_opts: list[str] | None = None,
                     base_opts: list[str] | None = None):
    """The frozen config from ``args.cfg`` and ``args.opts`` (plus ``extra_opts`` from dedicated flags, after
    them; ``base_opts``, e.g. a checkpoint's stored architecture, before them), with ``args.gpu`` applied to
    ``DEVICE`` (:func:`gpu_device`)."""
    opts = list(base_opts or []) + list(args.opts or []) + list(extra_opts or [])
    cfg = load_config(args.cfg, opts)
    gpu = getattr(args, 'gpu', None)
    if gpu is None:
        return cfg
    device = gpu_device(cfg.DEVICE, gpu)
    return cfg if device == cfg.DEVICE else load_config(args.cfg, opts + ['DEVICE', device])


def gpu_device(cfg_device: str, gpu: str) -> str:
    """The ``DEVICE`` value for the official ``--gpu`` flag.

    ``gpu`` is a GPU index (the official script sets ``CUDA_VISIBLE_DEVICES`` to it and runs on ``cuda``;
    a comma list takes its first entry). With ``DEVICE`` ``auto`` or ``cuda`` the result is ``cuda:<gpu>`` when
    torch sees that GPU, else ``auto`` with one log line; any other ``DEVICE`` is kept (it wins) with one
    log line when it is not that GPU.
    """
    first = str(gpu).split(',')[0].strip()
    if not first.isdigit():
        raise UserError(f"--gpu {gpu}: expected a GPU index such as 0 (or leave it out)")
    index = int(first)
    if cfg_device not in ('auto', 'cuda'):
        if cfg_device != f'cuda:{index}':
            logger.info('--gpu %s: DEVICE %s is set and wins; running on %s', gpu, cfg_device, cfg_device)
        return cfg_device
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if index < count:
        return f'cuda:{index}'
    fallback = 'cuda' if count else 'cpu'
    logger.info('--gpu %s: torch sees %s; running on %s', gpu,
                f'{count} GPU(s), no GPU {index}' if count else 'no GPU', fallback)
    return 'auto'


def run_main(main: Callable[[], object]) -> None:
    """Run ``main`` with ``lib.*`` INFO logs on the console; a :class:`UserError` becomes one ``error:`` line
    on stderr and exit status 2, Ctrl-C exit status 130. Anything else is a bug and keeps its traceback."""
    console_logging()
    try:
        main()
    except UserError as err:
        logging.shutdown()
        print(f'error: {err}', file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        sys.exit(130)
