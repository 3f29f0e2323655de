"""The one-off scripts in results/migrations/ as a user meets them on the command line.

They took ``--help`` (or any wrong argument) as a folder name and went on into a traceback, or
did nothing at all without an argument; now ``-h``/``--help`` prints the script's docstring and
exits 0, and a missing argument, a file or a folder without the files the script reads is one
line on stderr and exit status 2, before anything is read or written.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from conftest import REPO

MIGRATIONS = REPO / "results" / "migrations"
SCRIPTS = sorted(p.name for p in MIGRATIONS.glob("*.py") if 'if __name__ == "__main__"' in p.read_text())


def run(tmp_path, script: str, *args: str) -> subprocess.CompletedProcess:
    """``python results/migrations/SCRIPT ARGS`` in ``tmp_path`` (as from the repository root)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(MIGRATIONS / script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def refused(proc: subprocess.CompletedProcess, script: str, *phrases: str) -> None:
    assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"{script}: error: "), proc.stderr
    for p in phrases:
        assert p in proc.stderr, proc.stderr


def test_every_script_is_covered():
    assert len(SCRIPTS) == 7, SCRIPTS  # a new migration gets the same command line (arguments.py)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_prints_the_docstring(tmp_path, script):
    proc = run(tmp_path, script, "--help")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    doc = ast.get_docstring(ast.parse((MIGRATIONS / script).read_text()), clean=False)
    assert doc.strip().splitlines()[0] in proc.stdout and doc.strip().splitlines()[-1].strip() in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_missing_argument_a_file_or_a_bare_folder_is_one_line_and_exit_2(tmp_path, script):
    (tmp_path / "afile").write_text("")
    (tmp_path / "bare").mkdir()
    refused(run(tmp_path, script), script, "required")
    refused(run(tmp_path, script, "afile", "--retrained", "bare"), script, "expected a folder, got 'afile' (a file)")
    refused(run(tmp_path, script, "bare", "--retrained", "bare"), script, "expected a folder with", "got 'bare' without")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "bare"] and not list((tmp_path / "bare").iterdir())
