"""A stop is never lost: SIGTERM or Ctrl-C stops a command even when it lands in a finalizer."""

from __future__ import annotations

import os
import signal
import time

import pytest

from chainzrule.signals import Interrupted, stop_on_signals


class _SignalledWhileCollected:
    """An object whose finalizer receives SIGTERM: the handler's exception is raised inside
    ``__del__``, where Python drops it (as in the garbage collector's or torch's callbacks)."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(100))  # the handler runs here, inside the finalizer


def test_a_signal_landing_in_a_finalizer_still_stops_the_command():
    """A SIGTERM whose Interrupted was raised inside a finalizer was lost ("Exception ignored in
    ..." on stderr, the command went on and exited 0) and every later SIGTERM or Ctrl-C was
    ignored; now it is raised again in the command's own code."""
    reached = False
    with stop_on_signals():
        with pytest.raises(Interrupted) as e:
            obj = _SignalledWhileCollected()
            del obj
            for _ in range(500):  # the signal sent again lands here, long before the loop ends
                time.sleep(0.01)
            reached = True
    assert e.value.signum == signal.SIGTERM and not reached
