"""Stop requests of a training run: SIGINT / SIGTERM finish the current step instead of killing it."""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def stop_signals(request_stop: Callable[[int], None]) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM call ``request_stop(signum)`` (the loop honours it after the
    current step); a second SIGINT raises KeyboardInterrupt at once. Previous handlers come back afterwards;
    outside the main thread nothing is installed."""
    requested = []

    def handler(signum, frame):
        if signum == signal.SIGINT and requested:
            raise KeyboardInterrupt
        requested.append(signum)
        request_stop(signum)

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:          # not the main thread: no signal handling
        previous = {}
    try:
        yield
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)
