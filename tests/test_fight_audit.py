"""The fight runner's promises under a user's mistakes and stops (audit): one line on stderr and
exit 2, nothing written; a stop is never lost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from chainzrule.signals import Interrupted, stop_on_signals

from conftest import REPO, own_processes

pytestmark = own_processes

TINY = REPO / "tests" / "fixtures" / "tiny_fight.toml"


def _one_line_exit_2(res, *words):
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chainzrule: error: "), res.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_a_ray_address_that_accepts_connections_but_is_no_cluster_is_refused_at_a_deadline(tmp_path):
    """A HOST:PORT that accepts TCP connections but never answers as Ray (a web server, Ray's
    dashboard port) kept ray.init retrying for many minutes, deaf to SIGTERM, with a C++ warning
    on stderr every few seconds; now it is one line and exit 2 at the deadline, nothing written."""
    pytest.importorskip("ray", reason="the ray extra (pip install 'chainzrule[ray]') is not installed")
    out = tmp_path / "f"
    with socket.socket() as silent:  # listening: the kernel completes connections, nobody answers
        silent.bind(("0.0.0.0", 0))
        silent.listen(16)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        code = ("import chainzrule.fight.ray_executor as r; r.ANSWER_TIMEOUT = 3.0; "
                "from chainzrule.console import main; "
                f"main(['fight', {str(TINY)!r}, '--out', {str(out)!r}, '--executor', 'ray', "
                f"'--ray-address', {address!r}])")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    _one_line_exit_2(res, f"--ray-address {address}", "no Ray cluster answered within 3 s", "6379")
    assert not out.exists()


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
