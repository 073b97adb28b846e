"""Table-based neural units (Covell et al. 2019): one lookup instead of each multiply.

A table-based layer has ``K`` learned weight levels ``d[k]`` (LUT-Q, see
:mod:`mulfree.gen.train.quant`) and ``N`` learned activation levels ``l[c]`` (the values of the
input codes). Its product table is

    P[k][c] = round(d[k] * l[c] / s)     with  s = max |d[k] * l[c]| / (2**(p-1) - 1)

at a chosen integer precision ``p`` bits, so ``|P| < 2**(p-1)`` and the layer computes
``acc = sum_i P[k_i][c_i]`` exactly, standing for ``s * acc`` in the float network.
(A table need not be a product; this one starts as one and is then rounded.)

The table size ``K * N`` is the knob: :func:`levels_for_entries` gives the number of
weight levels ``K = entries // N`` for a budget of table entries, so the paper's 40
entries (for example 10 weight levels x 4 activation codes, or 5 x 8) and 320 entries
(80 x 4, 40 x 8) are reachable.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..model.format import MAX_CODE_BITS, Scheme, Weights
from .quant import check_float_array

__all__ = ["levels_for_entries", "product_table", "table_weights", "MAX_TABLE_PRECISION"]

MAX_TABLE_PRECISION = 24


def levels_for_entries(entries: int, act_codes: int, wbits: int | None = None) -> int:
    """Weight levels ``K`` for a table of at most ``entries`` entries and ``act_codes``
    activation codes. ``K`` must be at least 2 and representable in ``wbits`` bits (if
    given) and in the format's 16-bit codes."""
    if isinstance(entries, bool) or not isinstance(entries, (int, np.integer)) or entries < 1:
        raise InputError(f"table entries must be a positive integer, got {entries!r}")
    k = int(entries) // int(act_codes)
    if k < 2:
        raise InputError(f"{entries} table entries with {act_codes} activation codes leave "
                         f"{k} weight level(s); at least 2 are needed (use at least "
                         f"{2 * act_codes} entries or fewer activation bits)")
    limit = 2 ** (MAX_CODE_BITS if wbits is None else int(wbits))
    if k > limit:
        raise InputError(f"{entries} table entries with {act_codes} activation codes need "
                         f"{k} weight levels, more than the {limit} representable with "
                         f"{MAX_CODE_BITS if wbits is None else wbits}-bit weight codes")
    return k


def product_table(weight_levels, act_levels, precision: int = 8
                  ) -> tuple[np.ndarray, float]:
    """``(P, s)`` with ``P[k][c] = round(d[k] * l[c] / s)`` (see the module docstring)."""
    d = check_float_array(weight_levels, "table weight levels").ravel()
    a = check_float_array(act_levels, "table activation levels").ravel()
    if isinstance(precision, bool) or not isinstance(precision, (int, np.integer)) \
            or not 2 <= precision <= MAX_TABLE_PRECISION:
        raise InputError(f"table precision must be 2 to {MAX_TABLE_PRECISION} bits, "
                         f"got {precision!r}")
    prod = np.multiply.outer(d, a)
    top = float(np.abs(prod).max())
    if top == 0.0:
        return np.zeros(prod.shape, np.int64), 1.0
    s = top / (2 ** (precision - 1) - 1)
    return np.round(prod / s).astype(np.int64), s


def table_weights(codes: np.ndarray, table: np.ndarray) -> Weights:
    """Model-format weights of the table scheme (code width from the number of rows)."""
    k = int(table.shape[0])
    bits = max(1, (k - 1).bit_length())
    return Weights(Scheme.TABLE, bits, np.asarray(codes, np.int64), products=table)
