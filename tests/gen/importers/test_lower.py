"""The lowering walk, one node pattern per test on the smallest graph that shows it. Every
imported graph is checked against qonnx's executor (the import's self-check: input codes,
every mapped hidden activation and the outputs); every refusal names the node, its op type
and what would make it importable."""

import numpy as np
import pytest

pytest.importorskip("qonnx")

from onnx_graphs import GraphBuilder, mlp  # noqa: E402

from mulfree.gen.importers.graph import GraphImportError  # noqa: E402
from mulfree.gen.importers.qonnx import InputDecl, check_import, import_graph  # noqa: E402
from mulfree.gen.model import golden  # noqa: E402
from mulfree.gen.model.encoding import decode_outputs, encode_inputs  # noqa: E402
from mulfree.gen.model.format import Conv2d, Dense, Flatten, MaxPool  # noqa: E402

RNG = np.random.default_rng(11)


def _imported(path, **kw):
    imp = import_graph(path, **kw)
    result = check_import(path, imp)
    assert result.ok, result.message
    return imp


def _dense_head(b: GraphBuilder, x: str, feats: int, out: int = 3, bits: int = 4) -> str:
    w = b.qweight(RNG.integers(-7, 8, (feats, out)), 0.09, bits)
    return b.node("MatMul", [x, w])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("gemm", [True, False])
def test_gemm_and_matmul_with_and_without_bias(tmp_path, gemm, bias):
    imp = _imported(mlp(tmp_path, gemm=gemm, bias=bias))
    assert [type(l) for l in imp.model.layers] == [Dense, Dense]
    assert imp.model.input_shape == (5,)


def test_relu_before_signed_quant_and_clip_fold_into_thresholds(tmp_path):
    b = GraphBuilder([1, 6])
    x = b.quant(b.in_name, 0.1, 6)
    h = b.node("Relu", [_dense_head(b, x, 6, 5)])
    h = b.quant(h, 0.2, 4, signed=True)              # Relu kept: the Quant is signed
    h = b.node("Clip", [_dense_head(b, h, 5, 4), b.const(-0.3), b.const(0.45)])
    h = b.quant(h, 0.1, 3, signed=True)
    imp = _imported(b.save(tmp_path / "g.onnx", _dense_head(b, h, 4)))
    codes = imp.model.layers[0].output.thresholds
    assert codes.shape == (5, 15)


@pytest.mark.parametrize("shape", [(), (4,), (1, 4)])
@pytest.mark.parametrize("op", ["Mul", "Div", "Add", "Sub"])
def test_constant_arithmetic_per_tensor_and_per_channel(tmp_path, op, shape):
    b = GraphBuilder([1, 6])
    x = b.quant(b.in_name, 0.1, 5)
    h = _dense_head(b, x, 6, 4)
    k = RNG.uniform(0.5, 2.0, shape) * (1 if op in ("Mul", "Div") else RNG.choice([-1, 1]))
    h = b.node(op, [h, b.const(k)])
    h = b.quant(h, 0.15, 3)
    _imported(b.save(tmp_path / "g.onnx", _dense_head(b, h, 4)))


def test_negative_scale_flips_the_channel(tmp_path):
    b = GraphBuilder([1, 6])
    x = b.quant(b.in_name, 0.1, 5)
    h = b.node("Mul", [_dense_head(b, x, 6, 4), b.const([1.0, -1.0, 0.5, -2.0])])
    h = b.quant(h, 0.15, 3, signed=False)
    _imported(b.save(tmp_path / "g.onnx", _dense_head(b, h, 4)))


def test_batchnorm_after_matmul(tmp_path):
    b = GraphBuilder([1, 6])
    x = b.quant(b.in_name, 0.1, 5)
    params = [b.const(v) for v in (RNG.uniform(-2, 2, 4), RNG.normal(0, 1, 4),
                                   RNG.normal(0, 1, 4), RNG.uniform(0.5, 2, 4))]
    h = b.node("BatchNormalization", [_dense_head(b, x, 6, 4), *params], epsilon=1e-5)
    h = b.quant(h, 0.3, 2, signed=False)
    _imported(b.save(tmp_path / "g.onnx", _dense_head(b, h, 4)))


def test_finn_multithreshold_on_integer_accumulators_keeps_its_thresholds(tmp_path):
    """FINN's streamlined form: integer weights without a Quant, MultiThreshold on the
    integer accumulator. Its thresholds are mulfree's (rounded up to integers)."""
    b = GraphBuilder([1, 6])
    b.annotations[b.in_name] = "UINT2"
    w = RNG.integers(-1, 2, (6, 4)).astype(np.float32)
    acc = b.node("MatMul", [b.in_name, b.const(w)])
    t = np.sort(RNG.uniform(-6, 6, (4, 3)), axis=1).astype(np.float32)
    h = b.node("MultiThreshold", [acc, b.const(t)], domain="qonnx.custom_op.general",
               out_dtype="UINT2")
    imp = _imported(b.save(tmp_path / "g.onnx", _dense_head(b, h, 4)))
    first = imp.model.layers[0]
    assert imp.model.input_bits == 2 and first.weights.scheme.value == "ternary"
    b = golden.accumulator_bounds(first)
    want = np.clip(np.ceil(t), b.low[:, None], b.high[:, None] + 1)   # unreachable: clamped
    np.testing.assert_array_equal(first.output.thresholds, want.astype(np.int64))


def _conv(b, x, cin, cout, k=3, stride=1, pad=1, group=1, bits=4):
    w = RNG.integers(-7, 8, (cout, cin // group, k, k))
    wq = b.qweight(w, 0.05, bits)
    return b.node("Conv", [x, wq, b.const(RNG.normal(0, 0.2, cout))],
                  kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4,
                  group=group, dilations=[1, 1])


def _cnn(tmp_path, layout="NCHW", group=1, stride=2, pad=1, tail_flatten="Reshape"):
    b = GraphBuilder([1, 4, 6, 6])
    x = b.quant(b.in_name, 0.1, 6, signed=True)
    h = _conv(b, x, 4, 4, group=group, stride=1, pad=pad)
    h = b.quant(b.node("Relu", [h]), 0.2, 3, signed=False)
    h = _conv(b, h, 4, 6, stride=stride, pad=pad)
    h = b.quant(b.node("Relu", [h]), 0.3, 2, signed=False)
    h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 0, 0])
    n = int(np.prod(_spatial(6, pad, stride))) * 6
    if tail_flatten == "Reshape":
        h = b.node("Reshape", [h, b.const([1, -1], np.int64)])
    else:
        h = b.node("Flatten", [h], axis=1)
    out = _dense_head(b, h, n, 3)
    path = b.save(tmp_path / "g.onnx", out)
    if layout == "NHWC":  # as hls4ml-style graphs are made: qonnx's own conversion
        import warnings
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
        from qonnx.util.cleanup import cleanup_model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = cleanup_model(ModelWrapper(str(path)))
            m = m.transform(ConvertToChannelsLastAndClean(make_input_channels_last=True))
        m.save(str(path))
    return path


def _spatial(size, pad, stride):
    a = size + 2 * pad - 2          # first conv, stride 1
    a = (a + 2 * pad - 3) // stride + 1
    return (a - 1, a - 1)           # max-pool 2x2 stride 1


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_cnn_conv_stride_padding_maxpool_flatten(tmp_path, layout):
    imp = _imported(_cnn(tmp_path, layout=layout))
    kinds = [type(l) for l in imp.model.layers]
    assert kinds == [Conv2d, Conv2d, MaxPool, Flatten, Dense]
    assert imp.model.layers[1].stride == (2, 2) and imp.model.layers[1].padding == (1, 1)
    assert imp.model.input_shape == (6, 6, 4)
    if layout == "NCHW":   # the model input is (row, column, channel): reordered from NCHW
        assert imp.model.metadata["input_encoding"]["order"][:2] == [0, 36]
    else:
        assert "order" not in imp.model.metadata["input_encoding"]


@pytest.mark.parametrize("group", [2, 4])
def test_grouped_and_depthwise_conv_become_block_diagonal(tmp_path, group):
    imp = _imported(_cnn(tmp_path, group=group, tail_flatten="Flatten"))
    w = imp.model.layers[0].weights
    vals = w.codebook[w.codes]
    per = 4 // group
    for o in range(4):
        others = [c for c in range(4) if c // per != o // per]
        assert np.all(vals[o][..., others] == 0)


def test_signed_input_codes_are_offset_and_padding_stays_zero(tmp_path):
    """A signed input is codes x + 2**(N-1); the first layer's activation codebook carries
    the offset back (A[c] = c - 2**(N-1)), so zero padding still contributes 0."""
    imp = _imported(_cnn(tmp_path, pad=1))
    assert imp.model.input_bits == 6
    assert imp.model.layers[0].activation_codebook[:3].tolist() == [-32, -31, -30]
    x = np.zeros((1, 4, 6, 6), np.float32)
    assert np.all(encode_inputs(imp.model, x) == 32)


def test_wide_signed_input_becomes_identity_codes_and_a_bias(tmp_path):
    """An 8-bit signed input into a dense layer: codes x + 128 read directly (A[c] = c,
    no decode table) with -128 * sum_i W[j, i] in each bias: the same accumulators."""
    b = GraphBuilder([1, 6])
    x = b.quant(b.in_name, 0.02, 8, signed=True)
    h = b.quant(b.node("Relu", [_dense_head(b, x, 6, 4)]), 0.5, 3, signed=False)
    imp = _imported(b.save(tmp_path / "g.onnx", _dense_head(b, h, 4)))
    first = imp.model.layers[0]
    assert first.activation_codebook.tolist() == list(range(256))
    w = first.weights.codebook[first.weights.codes]
    np.testing.assert_array_equal(first.bias, -128 * w.sum(axis=1))


def test_unquantized_matmul_chain_folds_exactly(tmp_path):
    """MatMul -> Add -> MatMul with no quantizer between used to import as one layer with
    the first MatMul dropped (32 inputs for a 16-input graph). Now: folded exactly into
    one layer of the graph's 16 inputs, and the check against qonnx passes."""
    b = GraphBuilder([1, 16])
    x = b.quant(b.in_name, 0.02, 8)
    h = b.node("Add", [_dense_head(b, x, 16, 32), b.const(RNG.normal(0, 0.5, 32))])
    out = b.node("Add", [_dense_head(b, h, 32, 4), b.const(RNG.normal(0, 0.5, 4))])
    imp = _imported(b.save(tmp_path / "g.onnx", out))
    assert imp.model.input_shape == (16,)
    assert len(imp.model.layers) == 1 and imp.model.layers[0].in_features == 16
    assert any("folded exactly" in n for n in imp.notes)


def test_unquantized_chain_with_per_channel_scales_is_refused(tmp_path):
    b = GraphBuilder([1, 8])
    x = b.quant(b.in_name, 0.02, 8)
    h = b.node("Mul", [_dense_head(b, x, 8, 6), b.const(RNG.uniform(0.5, 2, 6))])
    w = b.qweight(RNG.integers(-7, 8, (6, 3)), 0.09, 4)
    b.node("MatMul", [h, w], name="second")
    with pytest.raises(GraphImportError, match=r"node 'second' \(MatMul\): multiplies the output "
                                               r"of .* with no quantizer between them.*put a "
                                               r"quantizer"):
        import_graph(b.save(tmp_path / "g.onnx", b.nodes[-1].output[0]))


def test_input_without_quantizer_names_the_option_and_imports_when_declared(tmp_path):
    b = GraphBuilder([1, 6])
    h = b.quant(b.node("Relu", [_dense_head(b, b.in_name, 6, 4)]), 0.5, 3, signed=False)
    path = b.save(tmp_path / "g.onnx", _dense_head(b, h, 4))
    with pytest.raises(GraphImportError, match=r"takes the graph input 'x' without a quantizer: "
                                               r"declare its encoding with --input-bits N "
                                               r"\[--input-signed\] \[--input-scale S\]"):
        import_graph(path)
    imp = _imported(path, decl=InputDecl(4, True, 0.25))
    assert imp.model.input_bits == 4
    assert imp.model.layers[0].activation_codebook.tolist() == list(range(-8, 8))


def test_declared_input_on_a_graph_with_its_own_quantizer_is_refused(tmp_path):
    with pytest.raises(GraphImportError, match="--input-bits .* does not apply: drop it"):
        import_graph(mlp(tmp_path), decl=InputDecl(8))


@pytest.mark.parametrize("rounding", ["ROUND", "FLOOR", "CEIL", "HALF_UP", "HALF_DOWN", "UP",
                                      "DOWN"])
def test_rounding_modes(tmp_path, rounding):
    b = GraphBuilder([1, 6])
    x = b.quant(b.in_name, 0.1, 5, rounding=rounding)
    h = b.quant(_dense_head(b, x, 6, 4), 0.15, 3, rounding=rounding)
    _imported(b.save(tmp_path / "g.onnx", _dense_head(b, h, 4)))


@pytest.mark.parametrize("glob", [False, True])
def test_average_pool_then_trunc_or_quant(tmp_path, glob):
    """Brevitas' TruncAvgPool: AveragePool then Trunc; and a global average pool then a Quant.
    The window sum is a conv2d layer of ones from each channel to itself."""
    b = GraphBuilder([1, 1, 8, 8])
    b.qonnx_opset = 2                       # Trunc with an output scale
    x = b.quant(b.in_name, 0.1, 6, signed=False)
    h = b.quant(b.node("Relu", [_conv(b, x, 1, 3)]), 0.25, 3, signed=False)
    if glob:
        h = b.quant(b.node("GlobalAveragePool", [h]), 0.1, 4, signed=False)
    else:
        h = b.node("AveragePool", [h], kernel_shape=[4, 4], strides=[4, 4])
        h = b.node("Trunc", [h, *(b.const(v) for v in (0.25 / 16, 0.0, 8.0, 0.25 / 4, 6.0))],
                   domain="qonnx.custom_op.general", rounding_mode="FLOOR", signed=0)
    h = b.node("Flatten", [h], axis=1)
    imp = _imported(b.save(tmp_path / "g.onnx", _dense_head(b, h, 3 if glob else 12)))
    pool = imp.model.layers[1]
    assert pool.name == "avgpool1" and pool.kernel == ((8, 8) if glob else (4, 4))


def test_integer_zero_point_and_requantized_pool(tmp_path):
    b = GraphBuilder([1, 1, 4, 4])
    x = b.quant(b.in_name, 0.1, 4, signed=False, zero_point=3.0)
    h = b.quant(_conv(b, x, 1, 2), 0.2, 3, signed=False)
    h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.quant(h, 0.5, 2, signed=False)                  # a second quantizer, no layer
    h = b.node("Flatten", [h], axis=1)
    _imported(b.save(tmp_path / "g.onnx", _dense_head(b, h, 8)))


@pytest.mark.parametrize("tail,dtype", [("Softmax", np.float32), ("TopK", np.int64)])
def test_tails_are_decoded(tmp_path, tail, dtype):
    b = GraphBuilder([1, 6])
    x = b.quant(b.in_name, 0.1, 5)
    y = _dense_head(b, x, 6, 4)
    if tail == "Softmax":
        y = b.node("Softmax", [y], axis=-1)
    else:
        y = b.node("TopK", [y, b.const([1], np.int64)], outputs=2, axis=-1)[1]
    imp = _imported(b.save(tmp_path / "g.onnx", y, out_dtype=1 if tail == "Softmax" else 7))
    x = np.random.default_rng(0).normal(0, 1, (5, 6)).astype(np.float32)
    out = decode_outputs(imp.model, golden.run(imp.model, encode_inputs(imp.model, x)))
    assert out.dtype.kind == np.dtype(dtype).kind
    assert out.shape == ((5, 4) if tail == "Softmax" else (5, 1))


@pytest.mark.parametrize("make,match", [
    ("residual", r"tensor 'quant\d+' feeds 2 nodes \(.*node 'join' \(Add\)\): branches and "
                 r"residual connections are not supported"),
    ("floatquant", r"\(FloatQuant\): not supported \(minifloat"),
    ("avgpool", r"node 'avg' \(AveragePool\): padded average pooling is not supported"),
    ("trunc", r"\(Trunc\): truncates a tensor that is not a sum pooling or layer output"),
    ("asym", r"node 'c' \(Conv\): pads \[1, 0, 0, 0\] are not symmetric"),
    ("dilated", r"node 'c' \(Conv\): dilations \[2, 2\] are not supported"),
    ("padpool", r"node 'p' \(MaxPool\): padded max-pooling is not supported"),
    ("float_weights", r"\(MatMul\): its weight .* is a float constant with non-integer values"),
    ("zeropoint", r"its zero point \[0.5\] is not an integer"),
])
def test_unsupported_patterns_name_the_node(tmp_path, make, match):
    b = GraphBuilder([1, 2, 4, 4] if make in ("asym", "dilated", "padpool", "avgpool")
                     else [1, 6])
    x = b.quant(b.in_name, 0.1, 5, zero_point=0.5 if make == "zeropoint" else 0.0)
    if make == "residual":
        h = _dense_head(b, x, 6, 6)
        y = b.node("Add", [h, x], name="join")
    elif make == "floatquant":
        y = b.node("FloatQuant", [x, b.const(1.0), b.const(4.0), b.const(3.0), b.const(7.0)],
                   domain="qonnx.custom_op.general")
    elif make == "avgpool":
        y = b.node("AveragePool", [x], name="avg", kernel_shape=[2, 2], pads=[1, 1, 1, 1])
    elif make == "trunc":
        y = b.node("Trunc", [x, *(b.const(v) for v in (0.1, 0.0, 8.0, 0.4, 4.0))],
                   domain="qonnx.custom_op.general", rounding_mode="FLOOR")
    elif make in ("asym", "dilated"):
        wq = b.qweight(RNG.integers(-3, 4, (2, 2, 3, 3)), 0.1, 3)
        y = b.node("Conv", [x, wq], name="c", kernel_shape=[3, 3],
                   pads=[1, 0, 0, 0] if make == "asym" else [0, 0, 0, 0],
                   dilations=[2, 2] if make == "dilated" else [1, 1])
    elif make == "padpool":
        y = b.node("MaxPool", [x], name="p", kernel_shape=[2, 2], pads=[1, 1, 1, 1])
    elif make == "float_weights":
        y = b.node("MatMul", [x, b.const(RNG.normal(0, 1, (6, 3)))])
    else:
        y = _dense_head(b, x, 6)
    path = b.save(tmp_path / "g.onnx", y)
    with pytest.raises(GraphImportError, match=match):
        import_graph(path)
