"""Import a quantized graph (QONNX from Brevitas or QKeras, FINN-ONNX) as a mulfree model.

:func:`import_qonnx` loads the graph, normalizes it (:mod:`.passes`: qonnx's own
transformations and a few of ours), lowers it to mulfree layers in one walk
(:mod:`.lower`; thresholds by :mod:`.thresholds`, the output argmax by
:mod:`.output_fold`) and returns the model with what the self-check
(:mod:`.selfcheck`) compares. ``docs/import.md`` lists every supported node pattern.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..model.format import Model
from .graph import Graph, GraphImportError, load_graph
from .lower import InputDecl, Probe, lower
from .passes import normalize
from .selfcheck import CheckResult, self_check

__all__ = ["import_qonnx", "import_graph", "Imported", "InputDecl", "GraphImportError",
           "check_import", "ImportError_"]

ImportError_ = GraphImportError   # the old name


@dataclass(frozen=True)
class Imported:
    model: Model
    probes: tuple[Probe, ...]
    notes: tuple[str, ...]
    nodes: int            # nodes in the graph as stored
    seconds: float        # time to import (without the self-check)


def import_qonnx(path: str | os.PathLike, name: str | None = None, *,
                 decl: InputDecl | None = None, last: str = "acc") -> Model:
    """Read a QONNX/FINN-ONNX graph and return the equivalent integer model."""
    return import_graph(path, name, decl=decl, last=last).model


def import_graph(path: str | os.PathLike, name: str | None = None, *,
                 decl: InputDecl | None = None, last: str = "acc") -> Imported:
    """:func:`import_qonnx`, with what the self-check needs and the import's notes."""
    t0 = time.perf_counter()
    path = Path(path)
    source = load_graph(path)
    nodes = len(source.graph.node)
    norm = normalize(source)
    lowered = lower(Graph(norm.model), name=name or path.stem, decl=decl, last=last)
    model = lowered.model
    meta = dict(model.metadata)
    meta["source"] = f"QONNX import of {path.name}"
    meta["output_decoding"] = dict(meta["output_decoding"], tail=norm.tail)
    model = Model(name=model.name, input_shape=model.input_shape, input_bits=model.input_bits,
                  layers=model.layers, metadata={"source": meta.pop("source"), **meta})
    return Imported(model, lowered.probes, lowered.notes, nodes, time.perf_counter() - t0)


def check_import(path: str | os.PathLike, imported: Imported, x=None,
                 seed: int = 0) -> CheckResult:
    """The self-check of an import (see :mod:`.selfcheck`)."""
    return self_check(path, imported.model, imported.probes, x=x, seed=seed)
