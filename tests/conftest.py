"""Shared test setup: deterministic seeds, the repo's paths."""

from pathlib import Path

import pytest
import torch

# Tests use tiny tensors: one intra-op thread is faster than two and immune to a busy machine.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
