"""mulfree.gen.train: making a quantized model by training it here.

Quantizers (:mod:`.quant`), table-based products (:mod:`.tbn`), threshold folding
(:mod:`.fold`), data sets (:mod:`.datasets`) and the NumPy trainer. Imports
:mod:`mulfree.gen.model` and the shared :mod:`mulfree.gen.errors`/:mod:`~mulfree.gen.fileio`.
"""
