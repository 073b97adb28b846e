#!/usr/bin/env python3
"""Train a small quantized MLP on scikit-learn's digits with Brevitas and export it to
QONNX: the start of the worked example in docs/import.md (Brevitas script -> mulfree
import -> Verilog -> simulation -> bitstream).

Needs torch and Brevitas, which mulfree itself does not (keep them out of its .venv):

    python3 -m venv /work/venvs/brevitas
    /work/venvs/brevitas/bin/pip install torch==2.13.0 brevitas==0.13.4 onnx==1.19.1 \\
        onnxoptimizer==0.4.2 onnxscript==0.7.2 onnxruntime==1.32.0 qonnx==1.0.0 scikit-learn
    /work/venvs/brevitas/bin/python examples/brevitas_digits_mlp.py -o digits_mlp.onnx

The model sees a digit as its 64 pixels / 16 (values in [0, 1]); `mulfree eval` takes the
same with `--data-scale 0.0625`.
"""

import argparse

import numpy as np
import torch
from brevitas import nn as qnn
from brevitas.export import export_qonnx
from brevitas.quant import Int8ActPerTensorFloat
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", default="digits_mlp.onnx")
    p.add_argument("--epochs", type=int, default=40)
    args = p.parse_args()
    torch.manual_seed(0)

    d = load_digits()
    x = (d.images.reshape(-1, 64) / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, d.target, test_size=0.2, random_state=0,
                                              stratify=d.target)
    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
        qnn.QuantLinear(64, 32, bias=True, weight_bit_width=4),
        torch.nn.BatchNorm1d(32),
        qnn.QuantReLU(bit_width=4, return_quant_tensor=True),
        qnn.QuantLinear(32, 10, bias=True, weight_bit_width=4),
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    xt, yt = torch.tensor(x_tr), torch.tensor(y_tr)
    for _ in range(args.epochs):
        model.train()
        for i in torch.randperm(len(xt)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[i]), yt[i]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(torch.tensor(x_te)).argmax(1).numpy() == y_te).mean()
    print(f"test accuracy (torch, quantized): {acc:.4f}")
    export_qonnx(model, torch.zeros(1, 64), args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
