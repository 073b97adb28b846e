"""The network stream's beat packing, the one definition every consumer uses.

A beat carries ``values_per_beat`` values of ``value_bits`` bits, value ``k`` at bits
``[k * value_bits, (k + 1) * value_bits)``; an inference is ``beats`` beats, values in
(row, column, channel) order, the last beat padded with zeros. Signed values are two's
complement. The manifest written by :mod:`mulfree.gen.plan.verilog` describes each stream this
way; the testbenches (:mod:`mulfree.sim`) and the board framing (:mod:`mulfree.boards`)
pack and unpack through these two functions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pack_beats", "unpack_beats"]


def pack_beats(values: np.ndarray, beats: int, values_per_beat: int, value_bits: int) -> list[int]:
    """``[N, count]`` integers (``count <= beats * values_per_beat``) to ``N * beats`` beat
    words. Values are masked to ``value_bits``; range checks are the caller's."""
    values = np.asarray(values, dtype=np.int64)
    n, count = values.shape
    slots = beats * values_per_beat
    if count > slots:
        raise ValueError(f"{count} values do not fit {beats} beats of {values_per_beat}")
    mask = (1 << value_bits) - 1
    flat = np.zeros((n, slots), np.int64)
    flat[:, :count] = values
    words = []
    for row in flat.reshape(n * beats, values_per_beat).tolist():
        word = 0
        for k, v in enumerate(row):
            word |= (v & mask) << (k * value_bits)
        words.append(word)
    return words


def unpack_beats(words: list[int | None], beats: int, values_per_beat: int, value_bits: int,
                 signed: bool = False) -> np.ndarray:
    """Beat words to ``[N, beats * values_per_beat]`` values, an object array in which an
    undefined beat (``None``, e.g. X in simulation) gives ``None`` values."""
    if len(words) % beats:
        raise ValueError(f"{len(words)} beats are not whole inferences of {beats}")
    mask = (1 << value_bits) - 1
    half = 1 << (value_bits - 1)
    out = np.empty((len(words) // beats, beats * values_per_beat), dtype=object)
    for b, word in enumerate(words):
        row, base = divmod(b, beats)
        for k in range(values_per_beat):
            v = None
            if word is not None:
                v = (word >> (k * value_bits)) & mask
                if signed and v >= half:
                    v -= 1 << value_bits
            out[row, base * values_per_beat + k] = v
    return out
