"""mulfree.gen.plan: from a model to hardware parameters, and to Verilog.

Folds and device fit (:mod:`.fit`, :mod:`.devices`), resource and timing estimates
(:mod:`.cost`), the stage plan and network top (:mod:`.network`), Verilog and manifest
emission (:mod:`.verilog`). Imports :mod:`mulfree.gen.model` and :mod:`mulfree.hw`, never
the training or import rooms.
"""
