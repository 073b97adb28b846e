import numpy as np
from hypothesis import given, strategies as st

from mulfree.gen.model.beats import pack_beats, unpack_beats


@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 9), st.booleans(), st.integers(1, 3),
       st.integers(0, 2**32 - 1))
def test_round_trip(beats, per_beat, bits, signed, n, seed):
    rng = np.random.default_rng(seed)
    count = rng.integers(1, beats * per_beat + 1)
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    values = rng.integers(lo, hi, (n, count))
    words = pack_beats(values, beats, per_beat, bits)
    assert len(words) == n * beats and all(0 <= w < 1 << (per_beat * bits) for w in words)
    back = unpack_beats(words, beats, per_beat, bits, signed)
    assert back[:, :count].astype(np.int64).tolist() == values.tolist()
    assert (back[:, count:] == 0).all()          # padding slots are zero


def test_lsb_first_layout_and_undefined_beats():
    assert pack_beats(np.array([[1, 2, 3]]), 2, 2, 4) == [0x21, 0x3]
    out = unpack_beats([0x21, None], 2, 2, 4)
    assert out.tolist() == [[1, 2, None, None]]
    assert unpack_beats([0xF], 1, 1, 4, signed=True).tolist() == [[-1]]
