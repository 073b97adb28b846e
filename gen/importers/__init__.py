"""mulfree.gen.importers: making a mulfree model from a graph trained elsewhere.

QONNX (Brevitas, QKeras through qonnx) and FINN-ONNX graphs through :mod:`.qonnx`:
normalized by qonnx's transformations and our own passes (:mod:`.passes`), lowered in one
walk (:mod:`.lower`, :mod:`.thresholds`, :mod:`.output_fold`) and checked against qonnx's
executor (:mod:`.selfcheck`). Imports :mod:`mulfree.gen.model` and the shared
:mod:`mulfree.gen.errors`/:mod:`~mulfree.gen.fileio`; qonnx and onnx are optional
dependencies (the ``import`` extra), imported only here.
"""
