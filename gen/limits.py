"""Limits on the work an input may ask for, checked before anything is allocated.

A model file, an ``.npy`` header or an option can claim sizes far beyond what it costs
to write down: a 300-byte conv2d model with a 20000 x 20000 input map, an array header
claiming 10**12 rows, ``--hidden 1000000``. Every such size is checked with
:func:`check` against :data:`MAX_ELEMENTS` (values in one array the work would hold)
before the allocation, and refused with a :class:`LimitError` that gives the size, the
limit and the option that raises it (``--max-elements N`` on the command line, or the
``MULFREE_MAX_ELEMENTS`` environment variable).
"""

from __future__ import annotations

import os

from .errors import InputError, LimitError

__all__ = ["DEFAULT_MAX_ELEMENTS", "max_elements", "set_max_elements", "check"]

# 2**26 values: 512 MiB as int64, about what one array of the golden model or the trainer
# may take on a laptop; the largest shipped model needs under 10**6.
DEFAULT_MAX_ELEMENTS = 2**26

_max: int | None = None


def _parse(text: str, source: str) -> int:
    try:
        value = int(str(text).replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"{source} must be a positive integer, not {text!r}")
    return value


def max_elements() -> int:
    """The current limit: set by :func:`set_max_elements`, else ``$MULFREE_MAX_ELEMENTS``,
    else :data:`DEFAULT_MAX_ELEMENTS`."""
    if _max is not None:
        return _max
    env = os.environ.get("MULFREE_MAX_ELEMENTS")
    return DEFAULT_MAX_ELEMENTS if not env else _parse(env, "MULFREE_MAX_ELEMENTS")


def set_max_elements(value: int | None) -> None:
    """Set the limit for this process (None: back to the environment or the default)."""
    global _max
    _max = None if value is None else _parse(value, "--max-elements")


def check(size: int, what: str) -> int:
    """Refuse ``size`` values of ``what`` (e.g. "layer 0 'c': the output map") when it is
    past the limit; returns ``size``."""
    limit = max_elements()
    if size > limit:
        raise LimitError(f"{what} has {size:,} values, over the limit of {limit:,} "
                         f"(raise it with --max-elements N or MULFREE_MAX_ELEMENTS)")
    return size
