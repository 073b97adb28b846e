"""mulfree.hw: Amaranth 0.5 components only (no knowledge of model files).

- :mod:`.product`: product units with one signature (uniform, PoT, APoT, table)
- :mod:`.mac`: :class:`~.mac.MacLane`, one runtime-weight MAC lane per scheme
- :mod:`.adder_tree`: balanced pairwise adder trees sized by bounds
- :mod:`.threshold`: parallel and sequential threshold units
- :mod:`.engine`: the layer engine (runtime ROM or baked weights), max-pool, argmax
- :mod:`.network`: :class:`~.network.Network`, the stream-in stream-out network top

``mulfree.gen.plan.build_network`` turns a model description into these; see
``docs/hardware.md``.
"""
