"""Exceptions raised for bad user input.

Every error a user can cause (bad file, bad flag, wrong shape) is a :class:`ChainzRuleError`,
which is a ``ValueError``: the library raises it with a message naming what was expected and
what was given, and the command line turns it into one line on stderr and exit status 2.

>>> from chainzrule.errors import DataError
>>> try:
...     raise DataError("expected 4 IDX files, found 3")
... except ValueError as e:
...     print(e)
expected 4 IDX files, found 3
"""


class ChainzRuleError(ValueError):
    """Base class: bad input from the user (file, flag, config, shape)."""


class DataError(ChainzRuleError):
    """A data file or folder is missing, truncated, malformed or inconsistent."""


class ConfigError(ChainzRuleError):
    """A config, spec or flag value is unknown or out of range."""


class RunLost(DataError):
    """A run's worker died before the run was recorded (a local pool worker killed by the
    operating system, a Ray worker or node lost after its retries); finished runs are kept."""
