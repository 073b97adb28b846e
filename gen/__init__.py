"""mulfree.gen: the front end, from a model to a plan of hardware, in rooms by stage.

Rooms, each importing only the ones listed before it: :mod:`.errors` and :mod:`.fileio`
(shared by every stage); :mod:`.model` (the numeric contract: model description, golden
model, beat packing); :mod:`.train` (quantizers, tables, folding, NumPy training, data
sets) and :mod:`.importers` (QONNX and FINN-ONNX graphs), which both make models;
:mod:`.plan` (folding, device fit, cost and timing models, Verilog emission), the only room
that imports :mod:`mulfree.hw`. Nothing here imports :mod:`mulfree.sim`,
:mod:`mulfree.boards`, :mod:`mulfree.compare` or :mod:`mulfree.cli`.
"""
