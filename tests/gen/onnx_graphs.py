"""Small QONNX graphs built with onnx.helper, for the importer's tests: each test builds the
smallest graph that shows its pattern (no torch, no Brevitas)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

QONNX = "qonnx.custom_op.general"


class GraphBuilder:
    """Nodes in order, constants as initializers, one float input, one output."""

    def __init__(self, in_shape, name: str = "x", dtype: int = 1):
        from onnx import helper

        self.helper = helper
        self.in_name = name
        self.in_shape = list(in_shape)
        self.dtype = dtype
        self.nodes = []
        self.inits = []
        self.annotations: dict[str, str] = {}
        self.count = 0
        self.qonnx_opset = 1

    def _name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def const(self, value, dtype=np.float32) -> str:
        from onnx import numpy_helper

        name = self._name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op: str, inputs: list[str], domain: str = "", outputs: int = 1,
             name: str | None = None, **attrs) -> str | list[str]:
        outs = [self._name(op.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op, inputs, outs, domain=domain,
                                                name=name or self._name(op), **attrs))
        return outs[0] if outputs == 1 else outs

    def quant(self, x: str, scale, bits: int, signed: bool = True, narrow: bool = False,
              zero_point=0.0, rounding: str = "ROUND", name: str | None = None) -> str:
        return self.node("Quant", [x, self.const(scale), self.const(zero_point),
                                   self.const(bits)], domain=QONNX, name=name,
                         signed=int(signed), narrow=int(narrow), rounding_mode=rounding)

    def bipolar(self, x: str, scale=1.0) -> str:
        return self.node("BipolarQuant", [x, self.const(scale)], domain=QONNX)

    def qweight(self, ints, scale, bits: int) -> str:
        """Quant(initializer) whose integers are ``ints`` (signed, narrow)."""
        ints = np.asarray(ints, np.float64)
        s = np.asarray(scale, np.float64)
        return self.quant(self.const(ints * s), s, bits, signed=True, narrow=True)

    def model(self, out: str, out_shape=None, opset: int = 13, out_dtype: int = 1):
        h = self.helper

        inp = h.make_tensor_value_info(self.in_name, self.dtype, self.in_shape)
        outp = h.make_tensor_value_info(out, out_dtype, out_shape)
        graph = h.make_graph(self.nodes, "g", [inp], [outp], initializer=self.inits)
        for tensor, dt in self.annotations.items():
            ann = graph.quantization_annotation.add()
            ann.tensor_name = tensor
            kv = ann.quant_parameter_tensor_names.add()
            kv.key, kv.value = "finn_datatype", dt
        m = h.make_model(graph, opset_imports=[h.make_opsetid("", opset),
                                               h.make_opsetid(QONNX, self.qonnx_opset)])
        m.ir_version = 8
        return m

    def save(self, path: Path, out: str, out_shape=None, opset: int = 13,
             out_dtype: int = 1) -> Path:
        import onnx

        onnx.save(self.model(out, out_shape, opset, out_dtype), str(path))
        return Path(path)


def mlp(tmp_path: Path, *, hidden: int = 6, feats: int = 5, classes: int = 3, seed: int = 0,
        bias: bool = True, gemm: bool = True, relu: bool = True) -> Path:
    """Quant -> Gemm/MatMul (+bias) -> Relu -> unsigned Quant -> Gemm/MatMul: a two-layer MLP."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder([1, feats])
    x = b.quant(b.in_name, 0.05, 8)
    w1 = rng.integers(-7, 8, (hidden, feats))
    w2 = rng.integers(-7, 8, (classes, hidden))
    h = _linear(b, x, w1, 0.11, rng.normal(0, 0.3, hidden) if bias else None, gemm)
    if relu:
        h = b.node("Relu", [h])
    h = b.quant(h, 0.17, 3, signed=False)
    out = _linear(b, h, w2, 0.07, rng.normal(0, 0.3, classes) if bias else None, gemm)
    return b.save(tmp_path / "mlp.onnx", out)


def _linear(b: GraphBuilder, x: str, w, scale, bias, gemm: bool) -> str:
    wq = b.qweight(w, scale, 4)
    if gemm:
        ins = [x, wq] + ([b.const(bias)] if bias is not None else [])
        return b.node("Gemm", ins, transB=1)
    y = b.node("MatMul", [x, b.node("Transpose", [wq], perm=[1, 0])])
    return b.node("Add", [y, b.const(bias)]) if bias is not None else y
