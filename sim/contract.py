"""The stream contract between the network top and its testbenches, read from a manifest.

An inference is ``input.beats`` beats on stream ``i``, each carrying ``values_per_beat``
codes of ``value_bits`` bits packed LSB-first, in the flattened (row, column, channel)
order of the model input; the output is ``output.beats`` beats on stream ``o`` packed the
same way (``kind`` codes, acc or argmax; ``signed`` for accumulators). This module turns
sample arrays into beat words and back; nothing here knows about simulators.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mulfree.gen.model.beats import pack_beats, unpack_beats
from mulfree.gen.errors import MulfreeError

__all__ = ["StreamGeometry", "Ports", "Contract", "ContractError", "load_manifest"]


class ContractError(MulfreeError):
    """A manifest that does not describe a network top the testbench can drive."""


_PORT_ROLES = ("clk", "rst", "i_payload", "i_valid", "i_ready", "o_payload", "o_valid",
               "o_ready")
_DEFAULT_PORTS = {"clk": "clk", "rst": "rst", "i_payload": "i__payload",
                  "i_valid": "i__valid", "i_ready": "i__ready", "o_payload": "o__payload",
                  "o_valid": "o__valid", "o_ready": "o__ready"}


@dataclass(frozen=True)
class StreamGeometry:
    """Beats per inference and how values pack into one beat."""

    beats: int
    values_per_beat: int
    value_bits: int
    signed: bool = False
    kind: str = "codes"

    def __post_init__(self) -> None:
        for name in ("beats", "values_per_beat", "value_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ContractError(f"manifest: {name} must be a positive integer, not {v!r}")

    @property
    def width(self) -> int:
        """Bits of one beat's payload."""
        return self.values_per_beat * self.value_bits

    @property
    def slots(self) -> int:
        """Values per inference including any padding in the last beat."""
        return self.beats * self.values_per_beat

    def pack(self, values: np.ndarray) -> list[int]:
        """``[N, count]`` integers to ``N * beats`` beat words (padding slots are 0)."""
        try:
            return pack_beats(values, self.beats, self.values_per_beat, self.value_bits)
        except ValueError as e:
            raise ContractError(str(e)) from None

    def unpack(self, words: list[int | None], count: int) -> np.ndarray:
        """Beat words (``None`` for an undefined beat) to ``[N, count]`` values as an
        object array (``None`` where a value was undefined)."""
        try:
            out = unpack_beats(words, self.beats, self.values_per_beat, self.value_bits,
                               self.signed)
        except ValueError as e:
            raise ContractError(str(e)) from None
        return out[:, :count]

    @classmethod
    def from_dict(cls, d: Any, where: str) -> "StreamGeometry":
        if not isinstance(d, dict):
            raise ContractError(f"manifest: '{where}' must be an object")
        try:
            return cls(beats=d["beats"], values_per_beat=d.get("values_per_beat", 1),
                       value_bits=d["value_bits"], signed=bool(d.get("signed", False)),
                       kind=str(d.get("kind", "codes")))
        except KeyError as e:
            raise ContractError(f"manifest: '{where}' has no field {e.args[0]!r}") from None


@dataclass(frozen=True)
class Ports:
    """Verilog port names of the network top, by role."""

    clk: str
    rst: str
    i_payload: str
    i_valid: str
    i_ready: str
    o_payload: str
    o_valid: str
    o_ready: str

    @classmethod
    def from_manifest(cls, ports: Any) -> "Ports":
        names = dict(_DEFAULT_PORTS)
        if isinstance(ports, dict):
            for role in _PORT_ROLES:
                for key in (role, role.replace("_", "__", 1), role.replace("_", ".", 1)):
                    v = ports.get(key)
                    if isinstance(v, str):
                        names[role] = v
                    elif isinstance(v, dict) and isinstance(v.get("name"), str):
                        names[role] = v["name"]
        elif isinstance(ports, list):
            listed = [p["name"] if isinstance(p, dict) else str(p) for p in ports]
            for role in _PORT_ROLES:
                want = _DEFAULT_PORTS[role]
                if want not in listed:
                    # e.g. "i_payload" spelled another way: match the stream and member
                    stream_, member = role.split("_", 1)
                    hits = [n for n in listed if n.startswith(stream_) and n.endswith(member)]
                    if len(hits) == 1:
                        names[role] = hits[0]
        return cls(**names)


@dataclass(frozen=True)
class Contract:
    """What a testbench needs from a manifest."""

    top: str
    ports: Ports
    input: StreamGeometry
    output: StreamGeometry
    latency_cycles: int | None
    cycles_per_inference: int | None
    raw: dict
    # memories in SPRAM: 16-bit words the ``load`` port takes after reset, and the file
    # holding them (one hexadecimal word per line), beside the Verilog
    load_words: int = 0
    load_file: Path | None = None

    @classmethod
    def from_manifest(cls, manifest: dict, verilog_path: str | os.PathLike | None = None) -> "Contract":
        if not isinstance(manifest, dict):
            raise ContractError("manifest: expected a JSON object")
        top = manifest.get("top") or manifest.get("top_module") or manifest.get("name")
        if not isinstance(top, str):
            if verilog_path is None:
                raise ContractError("manifest: no 'top' module name")
            top = Path(verilog_path).stem
        for key in ("input", "output"):
            if key not in manifest:
                raise ContractError(f"manifest: missing '{key}'")

        def _int_or_none(v):
            return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

        ports = Ports.from_manifest(manifest.get("ports"))
        geo_in = StreamGeometry.from_dict(manifest["input"], "input")
        geo_out = StreamGeometry.from_dict(manifest["output"], "output")
        details = manifest.get("port_details")
        if isinstance(details, dict):
            for port, geo in ((ports.i_payload, geo_in), (ports.o_payload, geo_out)):
                bits = details.get(port, {}).get("bits") if isinstance(details.get(port), dict) else None
                if isinstance(bits, int) and bits != geo.width:
                    raise ContractError(f"manifest: port {port} is {bits} bits wide, but "
                                        f"{geo.values_per_beat} values of {geo.value_bits} bits "
                                        f"make {geo.width}")
        load = manifest.get("load")
        load_words, load_file = 0, None
        if load is not None:
            if not isinstance(load, dict) or not isinstance(load.get("words"), int) \
                    or not isinstance(load.get("file"), str):
                raise ContractError("manifest: 'load' must give 'words' and 'file'")
            load_words = load["words"]
            load_file = Path(load["file"])
            if verilog_path is not None and not load_file.is_absolute():
                load_file = Path(verilog_path).parent / load_file
        return cls(top=top, ports=ports, input=geo_in, output=geo_out,
                   latency_cycles=_int_or_none(manifest.get("latency_cycles")),
                   cycles_per_inference=_int_or_none(manifest.get("cycles_per_inference")),
                   raw=manifest, load_words=load_words, load_file=load_file)


def load_manifest(path: str | os.PathLike, verilog_path=None) -> Contract:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ContractError(f"{path}: no such manifest") from None
    except json.JSONDecodeError as e:
        raise ContractError(f"{path}: not valid JSON ({e})") from None
    return Contract.from_manifest(doc, verilog_path)
