"""Verilog emission: a model in, ``<top>.v`` and ``manifest.json`` out.

Emission goes through Amaranth's built-in Yosys (``AMARANTH_USE_YOSYS=builtin`` is set for
the conversion), without source-location attributes, so the same model, mode and fold
give byte-identical files on any machine.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import MulfreeError
from ..fileio import atomic_write_text, safe_name
from ..model.format import Model
from .network import build_network

__all__ = ["emit_verilog", "to_verilog", "verilog_ports"]


@contextmanager
def _builtin_yosys():
    old = os.environ.get("AMARANTH_USE_YOSYS")
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    try:
        yield
    finally:
        if old is None:
            del os.environ["AMARANTH_USE_YOSYS"]
        else:
            os.environ["AMARANTH_USE_YOSYS"] = old


def verilog_ports(text: str, top: str) -> list[str]:
    """The port names of module ``top`` in emitted Verilog, in order."""
    match = re.search(r"^module\s+" + re.escape(top) + r"\s*\(([^)]*)\)", text, re.M)
    if not match:
        raise MulfreeError(f"emitted Verilog has no module {top}")
    return [p.strip() for p in match.group(1).split(",") if p.strip()]


def to_verilog(model: Model, mode: str = "runtime", fold: Any = None) -> tuple[str, dict]:
    """``(verilog text, manifest)`` without writing anything."""
    from amaranth.back import verilog

    net, manifest = build_network(model, mode, fold)
    with _builtin_yosys():
        text = verilog.convert(net, name=manifest["top"], emit_src=False)
    ports = verilog_ports(text, manifest["top"])
    if sorted(ports) != sorted(manifest["ports"]):
        raise MulfreeError(f"emitted ports {ports} differ from the planned {manifest['ports']}")
    width = {"clk": 1, "rst": 1, "i__valid": 1, "i__ready": 1, "o__valid": 1, "o__ready": 1,
             "i__payload": len(net.i.payload), "o__payload": len(net.o.payload)}
    direction = {"clk": "in", "rst": "in", "i__payload": "in", "i__valid": "in",
                 "i__ready": "out", "o__payload": "out", "o__valid": "out", "o__ready": "in"}
    manifest["port_details"] = {p: {"direction": direction[p], "bits": width[p]}
                                for p in manifest["ports"]}
    return text, manifest


def emit_verilog(model: Model, out_dir: str | os.PathLike, mode: str = "runtime",
                 fold: Any = None) -> Path:
    """Write ``out_dir/<top>.v`` and ``out_dir/manifest.json``; return the Verilog path."""
    text, manifest = to_verilog(model, mode, fold)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise MulfreeError(f"{out}: exists and is not a directory")
    # the file name through the one sanitizer (the module name is an identifier already;
    # this also bounds its length)
    path = out / f"{safe_name(manifest['top'], 120)}.v"
    manifest["verilog"] = path.name
    atomic_write_text(path, text)
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return path
