"""The import's self-check: the source graph through qonnx's executor (a reference nobody
here wrote) against the imported model through the golden model, on a batch of inputs.

Compared: the input codes (the source graph's input quantizer against the model's input
encoding, bit for bit), every hidden activation the import maps to a graph tensor (each
quantizer's output and each max-pool's), and the outputs (quantized outputs exactly;
logits to float32 rounding; class indices exactly). The first difference is reported with
the layer, the graph tensor, the sample and the index.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model.encoding import (apply_steps, decode_outputs, encode_inputs, quant_range,
                              source_input_shape)
from ..model.format import Model
from ..model.golden import GoldenResult, run as golden_run
from .graph import load_graph
from .lower import Probe
from .passes import unify_quant_domains

__all__ = ["CheckResult", "check_inputs", "reference_run", "self_check", "RTOL"]

RTOL = 1e-5   # logits: float32 rounding of the executor's sums, relative to their magnitude


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    samples: int
    values: int           # activation values compared
    tensors: int          # hidden activation tensors compared
    inputs: int           # input quantizer tensors compared (0 when the input is declared)
    max_abs_diff: float   # largest output difference (float outputs)
    classes_agree: int    # samples whose class (argmax of the outputs) agrees
    message: str          # the first difference, or a summary
    class_ties: int = 0   # samples whose class differs where the exact logits tie
    value_ties: int = 0   # activation values that differ on a float32 rounding tie

    def summary(self) -> str:
        if not self.ok:
            return self.message
        what = "input codes and " if self.inputs else ""
        return (f"self-check passed: {self.samples} inputs through qonnx's executor and the "
                f"golden model: {what}{self.tensors} hidden activation tensors "
                f"({self.values:,} values) identical"
                + (f" but {self.value_ties} on float32 rounding ties of the exact value"
                   if self.value_ties else "")
                + f"; outputs within {self.max_abs_diff:.2g}"
                + (f", class {self.classes_agree}/{self.samples}" if self.classes_agree >= 0 else "")
                + (f" (the other {self.class_ties} on a tie of the exact logits, which the "
                   f"executor's float32 sums break)" if self.class_ties else ""))


def _quiet_ort() -> None:
    try:
        import onnxruntime as ort
        ort.set_default_logger_severity(3)
    except Exception:  # pragma: no cover - onnxruntime is a qonnx dependency
        pass


def reference_run(path: str | Path, x: np.ndarray, tensors: list[str]) -> dict[str, np.ndarray]:
    """The named tensors (and the graph output, under ``"<output>"``) of the source graph on
    ``x`` (``[N, *input shape]``), by ``qonnx.core.onnx_exec.execute_onnx``. The graph is
    run as stored, after qonnx's domain fix and shape inference; in one batch when qonnx's
    ``ChangeBatchSize`` makes that possible, else one sample at a time."""
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    _quiet_ort()
    base = unify_quant_domains(load_graph(path))
    iname = base.graph.input[0].name
    oname = base.graph.output[0].name
    want = list(dict.fromkeys(tensors))

    def run(model, xb):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ctx = execute_onnx(model, {iname: xb}, return_full_exec_context=True)
        return {t: np.asarray(ctx[t]) for t in want} | {"<output>": np.asarray(ctx[oname])}

    n = x.shape[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batched = load_graph(path)
            batched = unify_quant_domains(batched).transform(ChangeBatchSize(n))
            batched = batched.transform(InferShapes())
        out = run(batched, x)
        if all(v.shape[:1] == (n,) for v in out.values()):
            return out
    except Exception:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = base.transform(InferShapes())
    parts = [run(single, x[i:i + 1]) for i in range(n)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def check_inputs(model: Model, random: int = 64, ties: int = 16, seed: int = 0) -> np.ndarray:
    """Float inputs in the source model's shape: ``random`` samples spread over the input
    quantizer's range (and a step beyond it), then ``ties`` samples whose values sit on the
    quantizer's rounding ties (or thresholds), mapped back through the encoding's steps."""
    enc = model.metadata["input_encoding"]
    shape = source_input_shape(model)
    n = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    q = enc["quantizer"]
    total = random + ties
    tie = np.arange(total) >= random
    kind = q["kind"]
    if kind == "int" and not (q["bits"] == 1 and q["signed"]):
        lo, hi = quant_range(int(q["bits"]), bool(q["signed"]), bool(q.get("narrow", False)))
        s, z = float(q["scale"]), float(q.get("zero_point", 0.0))
        declared = enc.get("origin") != "graph"
        k = rng.integers(lo - (0 if declared else 1), hi + (1 if declared else 2), (total, n))
        r = np.where(tie[:, None], 0.5, rng.uniform(-0.5, 0.5, (total, n)))
        if declared:   # a declared encoding: values on the grid only (the graph rounds nothing)
            r = np.zeros((total, n))
            k[tie] = rng.choice([lo, hi], (int(tie.sum()), n))
        u = (k + r - z) * s
    elif kind in ("int", "bipolar"):
        s = float(q.get("scale", 1.0))
        u = rng.normal(0, 1, (total, n)) * s
        u[tie] = rng.choice([0.0, -1e-30, 1e-30], (int(tie.sum()), n))
        if enc.get("origin") != "graph":
            u = np.where(u >= 0, 1.0, -1.0) * s
    else:
        t = np.asarray(q["thresholds"], np.float64)
        t = np.broadcast_to(t, (n, t.shape[1]))
        pick = rng.integers(0, t.shape[1], (total, n))
        base = t[np.arange(n)[None, :], pick]
        span = max(float(np.ptp(t)) if t.size > 1 else 1.0, 1e-3)
        u = np.where(tie[:, None], base, base + rng.uniform(-span, span, (total, n)))
    dt = enc.get("datatype")
    if dt is not None and enc.get("origin") == "graph":
        # The graph annotates its input as integers (FINN): qonnx's executor refuses
        # anything else, so the check's inputs are integers of that type.
        if dt["kind"] == "bipolar":
            x = rng.choice([-1.0, 1.0], (total, n))
        else:
            lo, hi = quant_range(int(dt["bits"]), bool(dt["signed"]), False)
            x = rng.integers(lo, hi + 1, (total, n)).astype(np.float64)
            x[tie] = rng.choice([lo, hi], (int(tie.sum()), n))
        return x.astype(np.float32).reshape(total, *shape)
    target = u
    for step in reversed(enc.get("steps", [])):
        k = np.asarray(step["value"], np.float64)
        u = {"mul": lambda v: v / k, "div": lambda v: v * k, "add": lambda v: v - k,
             "sub": lambda v: v + k, "rsub": lambda v: k - v}[step["op"]](u)
    x = u.astype(np.float32)
    if kind == "int" and tie.any():
        x[tie] = _exact_ties(x[tie], target[tie], enc, n)
    return x.reshape(total, *shape)


def _exact_ties(x: np.ndarray, target: np.ndarray, enc: dict, n: int) -> np.ndarray:
    """Nudge float32 inputs by up to 16 ulps so that the encoding's float32 arithmetic (as
    QONNX computes it) lands exactly on the tie, where some neighbour does."""
    q = enc["quantizer"]
    f32 = np.float32
    s, z = f32(q["scale"]), f32(q.get("zero_point", 0.0))
    want = (target / float(q["scale"]) + float(q.get("zero_point", 0.0))).astype(f32)
    steps = list(enc.get("steps", []))

    def y(c):
        return apply_steps(c, steps, n) / s + z

    best = x.copy()
    found = y(x) == want
    up, down = x.copy(), x.copy()
    for _ in range(16):
        up, down = np.nextafter(up, f32(np.inf)), np.nextafter(down, f32(-np.inf))
        for c in (up, down):
            hit = (y(c) == want) & ~found
            best[hit] = c[hit]
            found |= hit
    return best


def _probe_values(probe: Probe, codes: np.ndarray, channels: int) -> np.ndarray:
    """The values of ``probe``'s tensor from the imported model's codes ``[N, size]``."""
    pos = probe.idx.ravel()
    c = codes[:, pos]
    scale = np.asarray(probe.scale, np.float64)
    s = scale[pos % channels][None, :] if scale.ndim else scale
    return probe.levels[c] * s + probe.offset


def _ties(p: Probe, bad: np.ndarray, acc: np.ndarray, theirs: np.ndarray,
          channels: int) -> np.ndarray:
    """Where a difference is a float32 tie: the exact value sits within float32 rounding
    of the boundary between the imported code and the executor's."""
    s_, i_ = np.nonzero(bad)
    pos = p.idx.ravel()[i_]
    ch = pos % channels
    lo, hi = p.chain.tie_codes(acc[s_, pos], ch)
    scale = np.asarray(p.scale, np.float64)
    s = scale[ch] if scale.ndim else scale
    want = theirs[s_, i_]
    near = (np.abs(p.levels[lo] * s + p.offset - want) <= 0.25 * _step(p)) | \
           (np.abs(p.levels[hi] * s + p.offset - want) <= 0.25 * _step(p))
    tie = np.zeros_like(bad)
    tie[s_, i_] = near & (lo != hi)
    return tie


def _codes_from(p: Probe, theirs: np.ndarray, size: int) -> np.ndarray | None:
    """The executor's values of a mapped tensor as the imported layer's output codes (in
    its layout), when each code has its own value; else None."""
    scale = np.asarray(p.scale, np.float64)
    if scale.ndim or np.any(np.diff(p.levels) <= 0) or p.idx.size != size:
        return None
    y = (theirs - p.offset) / float(scale)
    mids = (p.levels[1:] + p.levels[:-1]) / 2.0
    codes = np.searchsorted(mids, y) if float(scale) > 0 else np.searchsorted(mids, -y)
    out = np.empty((theirs.shape[0], size), np.int64)
    out[:, p.idx.ravel()] = codes
    return out


def _step(probe: Probe) -> float:
    lv = np.unique(probe.levels)
    d = np.diff(lv).min() if lv.size > 1 else 1.0
    return float(d * np.abs(np.asarray(probe.scale, np.float64)).min())


def self_check(path: str | Path, model: Model, probes: tuple[Probe, ...],
               x: np.ndarray | None = None, seed: int = 0) -> CheckResult:
    """Run the check on ``x`` (float inputs in the source model's shape) or on
    :func:`check_inputs`."""
    if x is None:
        x = check_inputs(model, seed=seed)
    else:
        x = np.asarray(x)
        shape = source_input_shape(model)
        if x.shape == shape:
            x = x[None]
        if x.shape[1:] != shape or x.dtype.kind not in "fiu":
            raise InputError(f"--check-inputs: expected float inputs of shape [N, "
                             f"{', '.join(map(str, shape))}], got {list(x.shape)} of {x.dtype}")
        x = x.astype(np.float32)
    n = x.shape[0]
    ref = reference_run(path, x, [p.tensor for p in probes])
    codes = encode_inputs(model, x)
    # Layer by layer: each stretch of layers between two mapped tensors runs on the
    # reference's own codes for the first of them, so one float32 tie cannot cascade.
    feed, start = codes, 0
    values, act_ties = 0, 0
    outs: dict[int, tuple] = {}     # layer -> (its output, its accumulators) on the feed
    for p in sorted(probes, key=lambda p: p.layer):
        theirs = ref[p.tensor].reshape(n, -1).astype(np.float64)
        if p.layer < 0:
            ours = _probe_values(p, codes.reshape(n, -1), 1)
            acc, flat = None, codes.reshape(n, -1)
        else:
            if p.layer not in outs:
                part = golden_run(model, feed, start, p.layer + 1)
                for k, (o, a) in enumerate(zip(part.outputs, part.accumulators)):
                    outs[start + k] = (o, a)
            out, acc = outs[p.layer]
            flat = out.reshape(n, -1)
            ours = _probe_values(p, flat, int(out.shape[-1]))
        bad = np.abs(ours - theirs) > 0.25 * _step(p)
        values += ours.size
        if bad.any() and p.chain is not None and acc is not None:
            tie = _ties(p, bad, acc.reshape(n, -1), theirs, int(acc.shape[-1]))
            act_ties += int(tie.sum())
            bad &= ~tie
        if bad.any():
            s_, i_ = (int(v) for v in np.argwhere(bad)[0])
            where = "the input codes" if p.layer < 0 else \
                f"layer {p.layer} '{model.layers[p.layer].name}'"
            index = [int(v) for v in np.unravel_index(i_, p.idx.shape)]
            msg = (f"self-check FAILED at {where} (graph tensor '{p.tensor}' of {p.node}): "
                   f"sample {s_}, index {index}: imported {ours[s_, i_]:.6g}, qonnx "
                   f"{theirs[s_, i_]:.6g} ({int(bad.sum())} of {bad.size} values differ)")
            return CheckResult(False, n, values, 0, 0, float("nan"), -1, msg)
        mapped = _codes_from(p, theirs, flat.shape[1])
        if p.layer >= start - 1 and p.layer >= 0 and mapped is not None:
            feed, start = mapped.reshape(n, *model.io[p.layer].out_shape), p.layer + 1
    if start < len(model.layers):
        res = golden_run(model, feed, start)
    else:               # the last layer's output is a mapped tensor: the reference's codes
        res = GoldenResult((feed,), (None,))
    got = decode_outputs(model, res)
    want = ref["<output>"]
    inputs = sum(p.layer < 0 for p in probes)
    hidden = len(probes) - inputs
    if got.shape != want.shape:
        got = got.reshape(want.shape) if got.size == want.size else got
    if got.shape != want.shape:
        return CheckResult(False, n, values, hidden, inputs, float("nan"), -1,
                           f"self-check FAILED: the outputs have shape {list(got.shape)}, qonnx's "
                           f"{list(want.shape)}")
    agree, ties = -1, 0
    if want.dtype.kind in "iu":
        bad = got != want
        diff = 0.0
    else:
        g64, w64 = got.astype(np.float64), want.astype(np.float64)
        tol = RTOL * max(1.0, float(np.abs(w64).max(initial=0)))
        diff = float(np.abs(g64 - w64).max(initial=0))
        bad = np.abs(g64 - w64) > tol
        if want.ndim == 2 and want.shape[1] > 1:
            mine, theirs = g64.argmax(1), w64.argmax(1)
            agree = int((mine == theirs).sum())
            rows = np.arange(n)
            # Where the exact logits tie, the executor's float32 sums may break the tie
            # either way: a different class there is a tie, not a difference.
            ties = int(((mine != theirs) & (w64[rows, theirs] - w64[rows, mine] <= tol)).sum())
    if np.any(bad):
        s_ = int(np.argwhere(bad)[0][0])
        index = [int(v) for v in np.argwhere(bad)[0][1:]]
        return CheckResult(False, n, values, hidden, inputs, diff, agree,
                           f"self-check FAILED at the outputs: sample {s_}, index {index}: "
                           f"imported {got[(s_, *index)]!r}, qonnx {want[(s_, *index)]!r} "
                           f"({int(np.sum(bad))} of {bad.size} values differ)")
    if agree >= 0 and agree + ties != n:
        return CheckResult(False, n, values, hidden, inputs, diff, agree,
                           f"self-check FAILED: the class differs on {n - agree - ties} of {n} "
                           f"samples")
    return CheckResult(True, n, values, hidden, inputs, diff, agree, "", ties, act_ties)
