"""Root conftest: applies to the tests and to the docstring examples (``--doctest-modules``)."""

import tempfile

import pytest


@pytest.fixture(autouse=True)
def _temporary_files_in_tmp_path(tmp_path, monkeypatch):
    """``tempfile.mkdtemp()`` and friends write under the test's own ``tmp_path`` (which pytest
    prunes), so docstring examples and tests that make a scratch folder leave nothing in /tmp."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield
