"""mulfree.gen.importers: making a mulfree model from a graph trained elsewhere.

QONNX (Brevitas, QKeras exports) through :mod:`.qonnx`. Imports :mod:`mulfree.gen.model`
and the shared :mod:`mulfree.gen.errors`/:mod:`~mulfree.gen.fileio`; qonnx and onnx are
optional dependencies, imported only here.
"""
