"""The closed-form period of a streaming conv2d stage (`conv_period`) equals what the
cycle model (`stage_timing`) measures, over random geometries, folds, input beats and
threshold units; the device fit uses it instead of running the cycles."""

import dataclasses

import numpy as np

from mulfree.gen.model.examples import random_conv2d
from mulfree.gen.model.format import Model
from mulfree.gen.plan.stages import plan_stages
from mulfree.hw.timing import conv_period, stage_timing

FOLD = {"default": "serial", "layers": {}, "pipeline": False, "double_buffer": False}


def _divisors(n, most=4):
    return [d for d in range(1, n + 1) if n % d == 0][:most]


def _specs(seed, count):
    rng = np.random.default_rng(seed)
    while count:
        h, w = (int(v) for v in rng.integers(3, 9, 2))
        c = int(rng.choice([1, 2, 3, 4, 6]))
        k, s, p = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(0, 2))
        if k > h + 2 * p or k > w + 2 * p:
            continue
        oc = int(rng.choice([1, 2, 4, 6]))
        conv = random_conv2d(rng, (h, w, c), oc, (k, k), (s, s), (p, p), wbits=2,
                             in_bits=2, out_bits=2)
        model = Model(name="t", input_shape=(h, w, c), input_bits=2, layers=(conv,))
        spec = plan_stages(model, "runtime", FOLD)[0][0]
        pe = int(rng.choice(_divisors(oc, 8)))
        simd = int(rng.choice(_divisors(spec.taps)))
        beat = int(rng.choice(_divisors(h * w * c)))
        thr = str(rng.choice(["parallel", "search"]))
        yield dataclasses.replace(spec, pe=pe, simd=simd, out_beat=pe, in_beat=beat,
                                  window=dataclasses.replace(spec.window, in_beat=beat),
                                  threshold_unit=thr, pipeline=bool(rng.integers(0, 2)))
        count -= 1


def test_conv_period_equals_the_cycle_model():
    checked = 0
    for spec in _specs(1, 150):
        assert conv_period(spec.window, spec.sf * spec.nf) == stage_timing(spec)[1], spec.window
        assert spec.period == stage_timing(spec)[1]
        checked += 1
    assert checked == 150


def test_conv_period_check_can_fail():
    # one step more per window than the engine takes: the formula must then disagree with
    # the cycle model wherever the engine (not the scan) is the bottleneck
    differ = [conv_period(s.window, s.sf * s.nf + 1) != stage_timing(s)[1]
              for s in _specs(2, 20)]
    assert any(differ)
