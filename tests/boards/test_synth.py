"""Board-free synthesis (boards/synth.py) on real Yosys and nextpnr runs of tiny designs."""

from __future__ import annotations

import re

import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from mulfree.boards.synth import (Flow, SynthResult, Target, design_key, emit_verilog,
    harness_verilog, synthesize, synthesize_component)
from mulfree.boards.toolchain import ToolchainError


class SmallMac(wiring.Component):
    """acc <= acc + w * a: a multiplier and an accumulator, a few dozen LUTs."""

    def __init__(self, wbits=3, abits=3, accw=10):
        super().__init__({"w": In(signed(wbits)), "a": In(abits), "en": In(1),
                          "acc": Out(signed(accw))})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.acc.eq(self.acc + self.w * self.a)
        return m


def test_flow_checks_its_parameters():
    with pytest.raises(ValueError, match=r"^Target must be one of ice40, ecp5, generic, not 'asic'$"):
        Flow(target="asic")
    with pytest.raises(ValueError, match=r"^Frequency must be a positive number of MHz, not 0$"):
        Flow(freq_mhz=0)
    with pytest.raises(TypeError, match=r"^pnr must be a bool, not 1$"):
        Flow(pnr=1)
    with pytest.raises(TypeError, match=r"^Seed must be an integer, not 'x'$"):
        Flow(seed="x")
    assert Flow(target="generic").runs_pnr is False
    assert Flow(target="generic").freq is None
    assert Flow(target="ice40").freq == 100.0
    assert Flow(target=Target.ECP5, freq_mhz=50).freq == 50.0


def test_verilog_has_no_source_locations_and_the_key_is_stable():
    a, b = emit_verilog(SmallMac()), emit_verilog(SmallMac())
    assert a == b
    assert "src =" not in a and "module top" in a
    f = Flow(target="ice40")
    assert design_key(a, f) == design_key(b, f)
    assert design_key(a, f) != design_key(a, Flow(target="ecp5"))
    assert design_key(a, f) != design_key(a, Flow(target="ice40", seed=2))
    assert design_key(a, f) != design_key(emit_verilog(SmallMac(accw=11)), f)


def test_harness_drives_every_input_from_one_pin():
    text = harness_verilog(SmallMac())
    header = re.search(r"module harness\((.*?)\);", text, re.S).group(1)
    ports = sorted(p.strip() for p in header.split(","))
    assert ports == ["clk", "rst", "sin", "sout"]


def test_generic_flow_counts_gates_and_area():
    r = synthesize_component(SmallMac(), Flow(target="generic"))
    assert isinstance(r, SynthResult)
    assert r.fmax_mhz is None
    assert r.report.ff == 10
    assert r.report.lut > 20
    assert r.report.lut == sum(v for k, v in r.report.cells.items()
                               if k in ("$_AND_", "$_NAND_", "$_OR_", "$_NOR_", "$_XOR_",
                                        "$_XNOR_", "$_MUX_", "$_NOT_"))
    assert r.area_ge > r.report.lut
    # Round trip through the cache's JSON.
    assert SynthResult.from_json(r.to_json()) == r


@pytest.mark.slow
def test_ice40_synthesis_and_fmax():
    r = synthesize_component(SmallMac(), Flow(target="ice40"))
    assert r.report.dsp == 0 and r.report.cells.get("SB_MAC16", 0) == 0
    assert 10 < r.report.lut < 100
    assert r.report.ff == 10
    assert 20 < r.fmax_mhz < 400
    # The harness's shift chain and capture registers show in the placed count only.
    assert r.report.placed["ICESTORM_LC"]["used"] > r.report.lut


@pytest.mark.slow
def test_ecp5_synthesis_uses_no_dsp():
    r = synthesize_component(SmallMac(), Flow(target="ecp5"))
    assert r.report.dsp == 0
    assert r.report.lut > 10
    assert r.fmax_mhz > 20


def test_synthesis_errors_name_the_tool():
    with pytest.raises(ToolchainError, match=r"Yosys \(generic\) failed"):
        synthesize("module top(input a, output b); assign b = ; endmodule\n",
                   Flow(target="generic"))
    with pytest.raises(ValueError, match="harness"):
        synthesize("module top(); endmodule\n", Flow(target="ice40"))
