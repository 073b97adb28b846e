"""mulfree.boards: bitstreams for open FPGA boards, and the host side of the link.

Board targets (amaranth-boards), the UART harness around the network, Yosys/nextpnr
builds and their reports, programming and the host driver. Imports gen (model, plan), hw
and sim; only :mod:`mulfree.compare` and :mod:`mulfree.cli` import it.
"""
