"""Stopping a command cleanly: SIGTERM and SIGINT become an exception.

:func:`stop_on_signals` turns both signals into :class:`Interrupted` (a ``KeyboardInterrupt``) in
the main thread, so every ``finally`` runs — worker pools are stopped, a Ray cluster the command
started is shut down, temporary files are removed — and the command line prints one line and
exits with 128 + the signal's number (``chainzrule.cli.main`` holds it around every command).

>>> import os, signal
>>> try:
...     with stop_on_signals():
...         os.kill(os.getpid(), signal.SIGTERM)
... except Interrupted as e:
...     print(e.signum == signal.SIGTERM)
True
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Interrupted", "stop_on_signals"]

#: seconds after which a signal whose exception a finalizer dropped is sent again
RESEND_DELAY = 0.05
#: seconds after a stop during which further signals are ignored (the cleanup runs); a later one
#: stops the command again (its first stop may have been swallowed by code that caught it)
CLEANUP_GRACE = 10.0


class Interrupted(KeyboardInterrupt):
    """SIGTERM/SIGINT received during a command; ``signum`` is the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :class:`Interrupted` in the main thread, so that every
    ``finally`` (closing the worker pool, removing temporary files) runs. A second signal within
    :data:`CLEANUP_GRACE` seconds, during that cleanup, is ignored; a later one raises again, and a
    body that ends normally after a stop raises at its end, so code that catches the exception (a
    C extension's lazy import was seen to) cannot lose a stop for good. A signal that lands in a
    ``__del__`` or a weakref callback (the garbage collector's, torch's), where Python drops the
    exception, is sent again
    :data:`RESEND_DELAY` later (from :data:`sys.unraisablehook`): it is never lost, nor are the
    signals after it ignored. Outside the main thread this does nothing (Python delivers signals
    to the main thread only). On exit the previous handlers are back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    stopping: list[tuple[int, float]] = []  # (signal, time.monotonic()) of the last one raised

    def handler(signum, frame):
        if stopping and time.monotonic() - stopping[-1][1] < CLEANUP_GRACE:
            return  # the cleanup of the stop just raised runs undisturbed
        stopping.append((signum, time.monotonic()))
        raise Interrupted(signum)

    def unraisable(u) -> None:
        if not isinstance(u.exc_value, Interrupted):
            return old_hook(u)
        stopping.clear()  # dropped where it was raised: not a stop under way; sent again shortly, after this hook
        resend = threading.Timer(RESEND_DELAY, os.kill, args=(os.getpid(), u.exc_value.signum))
        resend.daemon = True
        resend.start()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    old_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
        if stopping:  # the body ended normally after a stop: its Interrupted was swallowed on the way
            raise Interrupted(stopping[-1][0])
    finally:
        sys.unraisablehook = old_hook
        for s, h in old.items():
            signal.signal(s, h)
