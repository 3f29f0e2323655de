"""Stopping a command cleanly: SIGTERM and SIGINT become an exception.

:func:`stop_on_signals` turns both signals into :class:`Interrupted` (a ``KeyboardInterrupt``) in
the main thread, so every ``finally`` runs — worker pools are stopped, a Ray cluster the command
started is shut down, temporary files are removed — and the command line prints one line and
exits with 128 + the signal's number (``chainzrule.cli.main`` holds it around every command).

>>> import os, signal
>>> with stop_on_signals():
...     try:
...         os.kill(os.getpid(), signal.SIGTERM)
...     except Interrupted as e:
...         print(e.signum == signal.SIGTERM)
True
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Interrupted", "stop_on_signals"]


class Interrupted(KeyboardInterrupt):
    """SIGTERM/SIGINT received during a command; ``signum`` is the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :class:`Interrupted` in the main thread, so that every
    ``finally`` (closing the worker pool, removing temporary files) runs. A second signal during
    that cleanup is ignored. Outside the main thread this does nothing (Python delivers signals
    to the main thread only). On exit the previous handlers are back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
