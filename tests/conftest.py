"""Shared test setup: deterministic seeds, the repo's paths, the real data next to it."""

import getpass
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

# Tests use tiny tensors: one intra-op thread is faster than two and immune to a busy machine.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
#: the real SST-5 of the workspace (``../shared/data/sst5``, not in the repository)
SST5 = SHARED / "data" / "sst5"
#: tests that read the real SST-5: on a user's clone without it they skip (saying where it was
#: looked for); in CI (``CI=true``), where the workspace has it, they always run, so a missing copy fails
needs_sst5 = pytest.mark.skipif(not (SST5 / "train.txt").is_file() and os.environ.get("CI") != "true",
                                reason=f"real SST-5 not at {SST5} (the workspace's shared/ folder)")
#: tests that run torch.compile's inductor backend, which needs a C++ compiler on CPU: skipped on a
#: user's machine without one (saying so); in CI, which installs one (.ci/run), they always run
needs_cxx = pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++"))
                               and os.environ.get("CI") != "true",
                               reason="no C++ compiler (g++, c++ or clang++) on PATH for torch.compile's inductor")
#: modules whose tests start process pools, Ray clusters or torchrun and time how they stop: the
#: suite runs on pytest-xdist workers (pyproject's addopts, ``--dist loadgroup``), and these modules
#: all go to one worker, one test after another, so two of them never compete for the cores while the
#: other workers run the in-process tests (``-n 0`` runs the whole suite in one process)
own_processes = pytest.mark.xdist_group("own-processes")


def pytest_configure(config):
    """``tempfile``'s folder for this test process is a fresh one, removed at the end, so the
    scratch folders of docstring examples (``tempfile.mkdtemp()``) are not left in /tmp (this
    conftest is an initial one: its hook runs for the tests and the doctests of src/ alike, on
    every xdist worker). torch.compile's kernel cache stays where it was (it follows tempdir)."""
    base = tempfile.gettempdir()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(base, f"torchinductor_{getpass.getuser()}"))
    config._chainzrule_tempdir = tempfile.mkdtemp(prefix="chainzrule-tests-", dir=base)
    tempfile.tempdir = config._chainzrule_tempdir


def pytest_unconfigure(config):
    folder = getattr(config, "_chainzrule_tempdir", None)
    if folder:
        tempfile.tempdir = None
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
