"""The byte framing between a host and the board harness (see docs/boards.md).

Host to board:

- ``0xA5`` then the input frame: the network's input beats, each ``ceil(beat_bits / 8)``
  bytes, least significant byte first; a beat holds ``values_per_beat`` codes of
  ``value_bits`` bits, the first code in the least significant bits. Codes are taken from
  the input array in (row, column, channel) order; the last beat is padded with zeros.
- ``0x3F`` (``?``): identify. The board answers with the identify reply.
- Any other byte between frames is ignored, so a host resynchronizes by sending one
  input frame's worth of ``0x00`` (finishing any partial frame), waiting, and flushing.

Frames may follow each other without gaps: the board keeps a receive FIFO of
:func:`rx_fifo_depth` bytes, so a host may have :func:`window` frames in flight (sent, reply
not yet read) without ever overrunning it, whatever the network's speed.

Board to host:

- ``0x5A`` then the output frame: the output beats, packed the same way (signed values in
  two's complement of ``value_bits`` bits).
- ``0xEE`` (:data:`LOST`): a received byte was lost (the FIFO was full, or a byte had a bad
  stop bit). Sent as soon as the transmitter is between two replies, so it follows the reply
  that was going out when the byte was lost (that reply, and every one after the ``0xEE``,
  may be wrong until the host resynchronizes).
- The identify reply (13 bytes): ``b"MF"``, the framing version (2), the input frame length
  and the output frame length (each 16 bits, little-endian, without the start byte), a
  32-bit little-endian fingerprint of the model, the mode and the fold (so a host can tell
  that the bitstream on the board was built from the model it holds), and the receive
  FIFO's depth in bytes (16 bits). Version 1 (11 bytes, without the depth) had a one-byte
  receive buffer: a host talks to it stop-and-wait.

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

__all__ = ["FRAME_IN", "FRAME_OUT", "IDENT", "LOST", "IDENT_MAGIC", "FRAMING_VERSION",
           "IDENT_LEN", "StreamFormat", "FrameFormat", "ident_bytes", "parse_ident", "fingerprint",
           "rx_fifo_depth", "window", "MIN_RX_FIFO"]

FRAME_IN = 0xA5
FRAME_OUT = 0x5A
IDENT = 0x3F
LOST = 0xEE
IDENT_MAGIC = b"MF"
FRAMING_VERSION = 2
IDENT_LEN = {1: 11, 2: 13}          # by version
MIN_RX_FIFO = 16


def rx_fifo_depth(in_frame_bytes: int, block_bytes: int = 512) -> int:
    """Bytes of the harness's receive FIFO for input frames of ``in_frame_bytes`` (without
    the start byte): room for two whole frames (start bytes included), rounded up to a
    power of two, so that a host keeps three frames in flight (see :func:`window`); at most
    one memory block of ``block_bytes`` bytes, at least :data:`MIN_RX_FIFO`.
    docs/boards.md has the measurements behind this."""
    if isinstance(in_frame_bytes, bool) or not isinstance(in_frame_bytes, int) \
            or in_frame_bytes < 1:
        raise ValueError(f"Frame length must be a positive integer, not {in_frame_bytes!r}")
    want = 1 << (2 * (in_frame_bytes + 1) - 1).bit_length()
    return max(MIN_RX_FIFO, min(block_bytes, want))


def window(in_frame_bytes: int, fifo_depth: int | None) -> int:
    """Frames a host may have in flight (sent, reply not yet read) with a board whose
    receive FIFO holds ``fifo_depth`` bytes (None: a version-1 board, stop-and-wait).

    Safe whatever the network's speed: of the frames in flight, the oldest is being answered
    (its input has left the FIFO), and the others fit the FIFO whole."""
    if fifo_depth is None:
        return 1
    return 1 + fifo_depth // (in_frame_bytes + 1)


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

    def ident(self, fifo_depth: int) -> bytes:
        return ident_bytes(self.inp.frame_bytes, self.out.frame_bytes, self.fingerprint,
                           fifo_depth)


def ident_bytes(in_bytes: int, out_bytes: int, fp: int, fifo_depth: int) -> bytes:
    return IDENT_MAGIC + struct.pack("<BHHIH", FRAMING_VERSION, in_bytes, out_bytes, fp,
                                     fifo_depth)


def parse_ident(data: bytes) -> tuple[int, int, int, int, int | None]:
    """(version, input frame bytes, output frame bytes, fingerprint, receive FIFO bytes or
    None for version 1) from an identify reply."""
    version = data[2] if len(data) > 2 and data[:2] == IDENT_MAGIC else None
    if version not in IDENT_LEN or len(data) != IDENT_LEN[version]:
        raise ValueError(f"not a mulfree identify reply: {data.hex()}")
    if version == 1:
        return struct.unpack("<BHHI", data[2:]) + (None,)
    return struct.unpack("<BHHIH", data[2:])


def fingerprint(model_json: str, options: dict) -> int:
    """CRC-32 of the model description and the options that change what the network
    computes or how it packs its streams (mode, fold)."""
    text = model_json + json.dumps(options, sort_keys=True)
    return zlib.crc32(text.encode("utf-8")) & 0xFFFFFFFF
