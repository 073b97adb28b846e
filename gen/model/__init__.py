"""mulfree.gen.model: the numeric contract every other part obeys.

The model description and its file format (:mod:`.format`), the integer golden model
(:mod:`.golden`), stream beat packing (:mod:`.beats`) and random example models
(:mod:`.examples`). Imports only :mod:`mulfree.gen.errors` and :mod:`mulfree.gen.fileio`.
"""
