"""Shared command-line plumbing for train.py, evaluate.py and demo.py."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from lib.core.config import load_config
from lib.core.errors import UserError
from lib.core.logs import console_logging


def config_argument_parser(description: str, epilog: str = '') -> argparse.ArgumentParser:
    """A parser with ``--cfg FILE`` and trailing ``KEY VALUE`` config overrides (``opts``)."""
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cfg', metavar='FILE', help='YAML config (merged over lib/core/config.py defaults)')
    parser.add_argument('opts', nargs=argparse.REMAINDER, metavar='KEY VALUE',
                        help='config overrides, e.g. TRAIN.BATCH_SIZE 32 DEVICE cpu')
    return parser


def config_from_args(args: argparse.Namespace, extra_opts: list[str] | None = None):
    """The frozen config from ``args.cfg`` and ``args.opts`` (plus ``extra_opts`` from dedicated flags)."""
    return load_config(args.cfg, list(args.opts or []) + list(extra_opts or []))


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
