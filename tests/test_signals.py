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
    with pytest.raises(Interrupted) as e:
        with stop_on_signals():
            obj = _SignalledWhileCollected()
            del obj
            for _ in range(500):  # the signal sent again lands here, long before the loop ends
                time.sleep(0.01)
            reached = True
    assert e.value.signum == signal.SIGTERM and not reached


def test_a_stop_swallowed_by_the_code_it_lands_in_is_not_lost(monkeypatch):
    """A stop caught and dropped by the code it landed in (seen: numpy's lazy import of
    numpy.random during a map's data load) let the command run to its end and exit 0, and every
    later SIGTERM or Ctrl-C was ignored. Now a signal after the cleanup grace stops it again, and a
    body that ends normally after a stop raises at its end."""
    import chainzrule.signals as S

    def swallowed():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(100))
        except Interrupted:
            pass  # what the foreign code did

    with pytest.raises(Interrupted) as e:  # no second signal: raised when the body ends
        with stop_on_signals():
            swallowed()
            os.kill(os.getpid(), signal.SIGINT)  # within the grace: the cleanup is left alone
            sum(range(100))
            reached = True
    assert reached and e.value.signum == signal.SIGTERM
    monkeypatch.setattr(S, "CLEANUP_GRACE", 0.0)
    reached = True
    with pytest.raises(Interrupted) as e:  # past the grace: the next signal stops the body there
        with stop_on_signals():
            swallowed()
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(100))
            reached = False
    assert e.value.signum == signal.SIGINT
