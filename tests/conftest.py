"""Shared test setup: deterministic seeds, the repo's paths."""

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
