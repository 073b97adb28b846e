"""The byte framing between a host and the board harness (see docs/boards.md).

Host to board:

- ``0xA5`` then the input frame: the network's input beats, each ``ceil(beat_bits / 8)``
  bytes, least significant byte first; a beat holds ``values_per_beat`` codes of
  ``value_bits`` bits, the first code in the least significant bits. Codes are taken from
  the input array in (row, column, channel) order; the last beat is padded with zeros.
- ``0x3F`` (``?``): identify. The board answers with :data:`IDENT_REPLY` bytes.
- Any other byte between frames is ignored, so a host resynchronizes by sending one
  input frame's worth of ``0x00`` (finishing any partial frame), waiting, and flushing.

Board to host:

- ``0x5A`` then the output frame: the output beats, packed the same way (signed values in
  two's complement of ``value_bits`` bits).
- The identify reply: ``b"MF"``, the framing version (1), the input frame length and the
  output frame length (each 16 bits, little-endian, without the start byte), and a 32-bit
  little-endian fingerprint of the model, the mode and the fold, so a host can tell that the
  bitstream on the board was built from the model it holds.

This module is plain Python: the harness takes its constants from here, and the host
driver and the tests use its packing functions.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from mulfree.gen.model.beats import pack_beats, unpack_beats
from mulfree.gen.errors import InputError

__all__ = ["FRAME_IN", "FRAME_OUT", "IDENT", "IDENT_MAGIC", "FRAMING_VERSION", "StreamFormat",
           "FrameFormat", "ident_bytes", "parse_ident", "fingerprint"]

FRAME_IN = 0xA5
FRAME_OUT = 0x5A
IDENT = 0x3F
IDENT_MAGIC = b"MF"
FRAMING_VERSION = 1
IDENT_LEN = 11


@dataclass(frozen=True)
class StreamFormat:
    """One direction of the network's stream: beats of packed values."""

    beats: int
    values_per_beat: int
    value_bits: int
    beat_bits: int
    signed: bool = False

    def __post_init__(self) -> None:
        for name in ("beats", "values_per_beat", "value_bits", "beat_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if self.values_per_beat * self.value_bits > self.beat_bits:
            raise ValueError(f"{self.values_per_beat} values of {self.value_bits} bits do not "
                             f"fit a {self.beat_bits}-bit beat")

    @property
    def bytes_per_beat(self) -> int:
        return (self.beat_bits + 7) // 8

    @property
    def frame_bytes(self) -> int:
        return self.beats * self.bytes_per_beat

    @property
    def values(self) -> int:
        return self.beats * self.values_per_beat

    def pack(self, values: np.ndarray) -> bytes:
        """Values (flat, ``<= beats * values_per_beat``) to the frame's bytes."""
        flat = np.asarray(values).reshape(-1).astype(np.int64)
        if flat.size > self.values:
            raise InputError(f"{flat.size} values do not fit {self.beats} beats of "
                             f"{self.values_per_beat}")
        lo = -(1 << (self.value_bits - 1)) if self.signed else 0
        hi = (1 << (self.value_bits - 1)) if self.signed else (1 << self.value_bits)
        if flat.size and (flat.min() < lo or flat.max() >= hi):
            raise InputError(f"values must lie in [{lo}, {hi}), got {flat.min()}..{flat.max()}")
        words = pack_beats(flat[None], self.beats, self.values_per_beat, self.value_bits)
        return b"".join(w.to_bytes(self.bytes_per_beat, "little") for w in words)

    def unpack(self, data: bytes, count: int | None = None) -> np.ndarray:
        """The frame's bytes to ``count`` values (default: all)."""
        if len(data) != self.frame_bytes:
            raise ValueError(f"expected {self.frame_bytes} bytes, got {len(data)}")
        n = self.bytes_per_beat
        words = [int.from_bytes(data[b * n:(b + 1) * n], "little") for b in range(self.beats)]
        arr = unpack_beats(words, self.beats, self.values_per_beat, self.value_bits,
                           self.signed)[0].astype(np.int64)
        return arr if count is None else arr[:count]

    def to_json(self) -> dict:
        return {"beats": self.beats, "values_per_beat": self.values_per_beat,
                "value_bits": self.value_bits, "beat_bits": self.beat_bits,
                "signed": self.signed, "bytes_per_beat": self.bytes_per_beat,
                "frame_bytes": self.frame_bytes}

    @classmethod
    def from_json(cls, d: dict) -> "StreamFormat":
        return cls(int(d["beats"]), int(d["values_per_beat"]), int(d["value_bits"]),
                   int(d["beat_bits"]), bool(d.get("signed", False)))


@dataclass(frozen=True)
class FrameFormat:
    """Both directions, the output's kind and how many values are meaningful."""

    inp: StreamFormat
    out: StreamFormat
    in_values: int
    out_values: int
    out_kind: str
    fingerprint: int

    def encode(self, x: np.ndarray) -> bytes:
        """One sample's input codes to a complete host-to-board frame (with ``0xA5``)."""
        flat = np.asarray(x).reshape(-1)
        if flat.size != self.in_values:
            raise InputError(f"expected {self.in_values} input codes per sample, got {flat.size}")
        return bytes([FRAME_IN]) + self.inp.pack(flat)

    def decode(self, payload: bytes) -> np.ndarray:
        """An output frame's bytes (after ``0x5A``) to the output values."""
        return self.out.unpack(payload, self.out_values)

    def to_json(self) -> dict:
        return {"version": FRAMING_VERSION, "input": self.inp.to_json(),
                "output": self.out.to_json(), "in_values": self.in_values,
                "out_values": self.out_values, "out_kind": self.out_kind,
                "fingerprint": f"{self.fingerprint:08x}"}

    @classmethod
    def from_json(cls, d: dict) -> "FrameFormat":
        return cls(StreamFormat.from_json(d["input"]), StreamFormat.from_json(d["output"]),
                   int(d["in_values"]), int(d["out_values"]), str(d["out_kind"]),
                   int(d["fingerprint"], 16))

    def ident(self) -> bytes:
        return ident_bytes(self.inp.frame_bytes, self.out.frame_bytes, self.fingerprint)


def ident_bytes(in_bytes: int, out_bytes: int, fp: int) -> bytes:
    return IDENT_MAGIC + struct.pack("<BHHI", FRAMING_VERSION, in_bytes, out_bytes, fp)


def parse_ident(data: bytes) -> tuple[int, int, int, int]:
    """(version, input frame bytes, output frame bytes, fingerprint) from an identify reply."""
    if len(data) != IDENT_LEN or data[:2] != IDENT_MAGIC:
        raise ValueError(f"not a mulfree identify reply: {data.hex()}")
    return struct.unpack("<BHHI", data[2:])


def fingerprint(model_json: str, options: dict) -> int:
    """CRC-32 of the model description and the options that change what the network
    computes or how it packs its streams (mode, fold)."""
    text = model_json + json.dumps(options, sort_keys=True)
    return zlib.crc32(text.encode("utf-8")) & 0xFFFFFFFF
