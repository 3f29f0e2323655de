"""The command line every migration here shares.

``-h``/``--help`` prints the script's docstring and exits 0; a missing or unknown argument, or a
path that is not a folder holding the files the script reads, is one line on stderr
(``SCRIPT: error: ...``) and exit status 2, before anything is read or written.

>>> folder_with("results.csv", "runs")("/no/such/folder")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: expected a folder, got '/no/such/folder' (no such path)
"""

from __future__ import annotations

import argparse
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose help is ``doc`` (the script's docstring, as written) and whose
    errors are one line."""

    def __init__(self, doc: str) -> None:
        super().__init__(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)

    def error(self, message: str):  # argparse's own: the usage, then the message (two lines)
        self.exit(2, f"{self.prog}: error: {message}\n")


def folder_with(*needs: str):
    """An argparse ``type``: a path to a folder holding every name in ``needs`` (files or folders)."""

    def check(value: str) -> Path:
        path = Path(value)
        if not path.is_dir():
            raise argparse.ArgumentTypeError(
                f"expected a folder, got {value!r} ({'a file' if path.exists() else 'no such path'})")
        missing = [n for n in needs if not (path / n).exists()]
        if missing:
            raise argparse.ArgumentTypeError(
                f"expected a folder with {', '.join(needs)}, got {value!r} without {', '.join(missing)}")
        return path

    return check
