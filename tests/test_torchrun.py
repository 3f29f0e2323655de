"""``torchrun --nproc-per-node 2 -m chainzrule train`` (DistributedDataParallel, gloo on CPU) gives
the single-process run's weights for the same global batch, and writes one result (rank 0); so
does the same with ``--compile`` (each rank trains through ``torch.compile`` of its DDP module)
and with ``--reg jr`` (random projections drawn for the global batch)."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import tempfile

import pytest
import torch
from safetensors.torch import load_file

from conftest import needs_cxx, own_processes

pytestmark = own_processes

ARGS = ["train", "--dataset", "synthetic", "--model", "chainzrule", "--hidden", "16,16", "--epochs", "2",
        "--batch-size", "64", "--dtype", "float64", "--dreg", "3e-3", "--seed", "3", "--quiet"]


def _run(cmd, tmp_path):
    # torchrun leaves a torchelastic_* folder in the temporary directory: point it at tmp_path (pytest
    # removes old ones), and keep torch.compile's kernel cache where it would be anyway
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    inductor_cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "CHAINZRULE_CACHE": str(tmp_path),
           "TMPDIR": str(scratch), "TORCHINDUCTOR_CACHE_DIR": inductor_cache}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


#: Jacobian regularization draws random directions per row: each process draws the global batch's
#: and keeps its rows (a batch of 33 splits 17 / 16), so two processes still equal one
JR = ["train", "--dataset", "synthetic", "--model", "mlp", "--hidden", "16", "--epochs", "2", "--batch-size", "33",
      "--dtype", "float64", "--reg", "jr", "--reg-strength", "0.01", "--seed", "3", "--quiet"]


@pytest.mark.parametrize("args, compiled", [
    pytest.param(ARGS, [], id="eager"),
    pytest.param(ARGS, ["--compile"], id="compiled", marks=needs_cxx),  # torch.compile of the DDP module
    pytest.param(JR, [], id="jr"),
])
def test_two_processes_match_one(tmp_path, args, compiled):
    one = _run([sys.executable, "-m", "chainzrule", *args, "--out", tmp_path / "one"], tmp_path)
    assert one.returncode == 0, one.stderr
    two = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "chainzrule", *args, *compiled, "--out", tmp_path / "two"], tmp_path)
    assert two.returncode == 0, two.stderr
    w1, w2 = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-5, atol=1e-5)
    r1 = json.loads((tmp_path / "one" / "result.json").read_text())
    r2 = json.loads((tmp_path / "two" / "result.json").read_text())
    assert abs(r1["test"]["accuracy"] - r2["test"]["accuracy"]) < 1e-9
    for a, b in zip(r1["history"]["train_loss"], r2["history"]["train_loss"]):
        assert abs(a - b) <= 1e-6 * abs(a)  # epoch sums all-reduced across the ranks
    assert two.stdout.count("wrote ") == 1  # rank 0 alone writes
