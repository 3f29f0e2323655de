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

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Interrupted", "stop_on_signals"]

#: seconds after which a signal whose exception a finalizer dropped is sent again
RESEND_DELAY = 0.05


class Interrupted(KeyboardInterrupt):
    """SIGTERM/SIGINT received during a command; ``signum`` is the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :class:`Interrupted` in the main thread, so that every
    ``finally`` (closing the worker pool, removing temporary files) runs. A second signal during
    that cleanup is ignored. A signal that lands in a ``__del__`` or a weakref callback (the
    garbage collector's, torch's), where Python drops the exception, is sent again
    :data:`RESEND_DELAY` later (from :data:`sys.unraisablehook`): it is never lost, nor are the
    signals after it ignored. Outside the main thread this does nothing (Python delivers signals
    to the main thread only). On exit the previous handlers are back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    def unraisable(u) -> None:
        if not isinstance(u.exc_value, Interrupted):
            return old_hook(u)
        for s in old:  # dropped where it was raised: sent again shortly, so that it lands after this hook
            signal.signal(s, handler)
        resend = threading.Timer(RESEND_DELAY, os.kill, args=(os.getpid(), u.exc_value.signum))
        resend.daemon = True
        resend.start()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    old_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    finally:
        sys.unraisablehook = old_hook
        for s, h in old.items():
            signal.signal(s, h)
