"""mulfree.sim: the RTL checked against the golden model, bit for bit.

Amaranth-simulator helpers, cocotb testbenches and the runner for Icarus Verilog and
Verilator, waveforms. Imports :mod:`mulfree.gen.model`, :mod:`mulfree.gen.plan` and
:mod:`mulfree.hw`; nothing below imports it.
"""
