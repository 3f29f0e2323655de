"""The ``chainzrule`` console script: checks that the harness is installed, then runs the CLI.

``pip install chainzrule`` installs the library only (torch and numpy); the command line, the
data loaders, training and the Fair Fight are the ``fight`` extra. Without it, this entry point
prints one line naming what to install and exits with status 2 instead of a traceback. It
imports nothing heavy itself, so the check costs no time when the extra is there.

>>> missing_harness_modules(["json", "chainzrule"])
[]
>>> missing_harness_modules(["no_such_module_xyz"])
['no_such_module_xyz']
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable, Sequence

__all__ = ["main", "missing_harness_modules", "HARNESS_MODULES", "EXTRA_HINT"]

#: Import names of the ``fight`` extra's packages (pyproject.toml), all needed by the CLI.
HARNESS_MODULES = ("click", "tqdm", "safetensors", "scipy", "sklearn", "optuna", "matplotlib", "rdata",
                   "xgboost")
EXTRA_HINT = "pip install 'chainzrule[fight]'"
EXIT_USAGE = 2


def missing_harness_modules(modules: Iterable[str] = HARNESS_MODULES) -> list[str]:
    """The top-level modules in ``modules`` that cannot be imported (found without importing)."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``chainzrule`` command (and ``python -m chainzrule``)."""
    missing = missing_harness_modules()
    if missing:
        print(f"chainzrule: error: the command line needs the 'fight' extra (missing: {', '.join(missing)}); "
              f"install it with: {EXTRA_HINT}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    from .cli import main as cli_main

    cli_main(None if argv is None else list(argv))


if __name__ == "__main__":  # pragma: no cover
    main()
