"""mulfree.hw: Amaranth 0.5 components only (no knowledge of model files).

- :mod:`.product`: product units with one signature (uniform, PoT, APoT, table)
- :mod:`.mac`: :class:`~.mac.MacLane`, one runtime-weight MAC lane per scheme
- :mod:`.adder_tree`: balanced pairwise adder trees sized by bounds
- :mod:`.threshold`: parallel and sequential threshold units
- :mod:`.window`: :class:`~.window.SlidingWindow`, conv2d windows through a line buffer
- :mod:`.engine`: the layer engine (runtime ROM or baked weights; conv2d streams through
  a sliding window), the frame-based max-pool, argmax
- :mod:`.pool`: :class:`~.pool.MaxPoolSpec`, :class:`~.pool.StreamMaxPool` (max-pool
  through the sliding window)
- :mod:`.truth_table`: :class:`~.truth_table.TruthTable`, a constant table over a few bits
- :mod:`.table_spec`, :mod:`.table_pipeline`: a whole network of neuron tables (and sum
  neurons), fully pipelined, one inference per input frame
- :mod:`.timing`: cycle models of the stages' handshakes (exact latency and throughput)
- :mod:`.network`: :class:`~.network.Network`, the stream-in stream-out network top

``mulfree.gen.plan.network.build_network`` turns a model description into these; see
``docs/hardware.md``.
"""
