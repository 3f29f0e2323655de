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

import numbers
from collections.abc import Iterable, Mapping


def is_int(v) -> bool:
    """Whether ``v`` is an integer (Python or NumPy) and not a bool.

    >>> import numpy as np
    >>> is_int(3), is_int(np.int64(3)), is_int(True), is_int(3.0)
    (True, True, False, False)
    """
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_number(v) -> bool:
    """Whether ``v`` is a real number (Python or NumPy scalar) and not a bool.

    >>> import numpy as np
    >>> is_number(0.5), is_number(np.float32(0.5)), is_number(True), is_number("0.5")
    (True, True, False, False)
    """
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_int(name: str, value, minimum: int = 1, *, or_none: bool = False) -> int | None:
    """``value`` as an ``int`` if it is an integer (Python or NumPy, not a bool or a float such as
    3.0) >= ``minimum``; otherwise a :class:`ConfigError` naming ``name``, what was expected and
    ``repr(value)``. With ``or_none``, None is accepted (and returned) too.

    >>> import numpy as np
    >>> check_int("width", np.int64(8)), check_int("limit", None, or_none=True)
    (8, None)
    >>> check_int("out_features", True)
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: expected out_features to be a positive integer, got True
    >>> check_int("num_classes", 1, minimum=2)
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: expected num_classes to be an integer >= 2, got 1
    """
    if value is None and or_none:
        return None
    if not is_int(value) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"expected {name} to be {what}{' or None' if or_none else ''}, got {value!r}")
    return int(value)


def is_list_like(v) -> bool:
    """A list, tuple, array or other iterable of values (not a string or a mapping)."""
    return isinstance(v, Iterable) and not isinstance(v, (str, bytes, Mapping))


class ChainzRuleError(ValueError):
    """Base class: bad input from the user (file, flag, config, shape)."""


class DataError(ChainzRuleError):
    """A data file or folder is missing, truncated, malformed or inconsistent."""


class ConfigError(ChainzRuleError):
    """A config, spec or flag value is unknown or out of range."""


class RunLost(DataError):
    """A run's worker died before the run was recorded (a local pool worker killed by the
    operating system, a Ray worker or node lost after its retries); finished runs are kept."""
