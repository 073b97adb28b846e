"""The host side: run inferences on a board (or the simulated one) over a serial port.

:class:`BoardLink` speaks the framing of :mod:`mulfree.boards.framing` through pyserial:
it identifies the board (frame lengths and model fingerprint must match what the host
expects), then sends one input frame at a time and waits for its reply (stop-and-wait, so
the board never has to buffer more than one frame). A reply that does not come in time
triggers one resynchronization (a frame's worth of zero bytes, a pause, a flush) and a
retry.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from mulfree.gen.errors import MulfreeError

from .framing import FRAME_OUT, IDENT, IDENT_LEN, FrameFormat, parse_ident

__all__ = ["BoardLink", "LinkError"]

log = logging.getLogger(__name__)


class LinkError(MulfreeError):
    """The board did not answer, or answered something else than expected."""


class BoardLink:
    """A serial connection to a board running the mulfree harness.

    Parameters
    ----------
    port : str
        Serial device (``/dev/ttyUSB1``, a pseudo-terminal, ...), or an open object with
        pyserial's ``read``/``write``/``reset_input_buffer``.
    frames : FrameFormat
        What the host expects the board to speak.
    baud : int
    timeout : float
        Seconds to wait for a reply before resynchronizing.
    """

    def __init__(self, port, frames: FrameFormat, *, baud: int = 115200,
                 timeout: float = 2.0) -> None:
        self.frames = frames
        self.timeout = timeout
        if isinstance(port, str):
            try:
                import serial
            except ImportError:
                raise MulfreeError("pyserial is not installed: pip install pyserial") from None
            try:
                self.port = serial.Serial(port, baudrate=baud, timeout=timeout)
            except (serial.SerialException, OSError) as e:
                raise LinkError(f"cannot open {port}: {e}") from None
            self._own = True
        else:
            self.port, self._own = port, False

    def close(self) -> None:
        if self._own:
            self.port.close()

    def __enter__(self) -> "BoardLink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_exact(self, n: int) -> bytes:
        data = bytearray()
        deadline = time.monotonic() + self.timeout
        while len(data) < n and time.monotonic() < deadline:
            chunk = self.port.read(n - len(data))
            if chunk:
                data += chunk
        return bytes(data)

    def resync(self) -> None:
        """Finish any partial frame on the board with zero bytes, then drop what it sent."""
        self.port.write(bytes(self.frames.inp.frame_bytes))
        self.port.flush()
        time.sleep(min(0.5, self.timeout))
        self._drain()

    def _drain(self) -> None:
        self.port.reset_input_buffer()
        end = time.monotonic() + 0.05
        while time.monotonic() < end:
            if not self.port.read(256):
                break

    def identify(self) -> tuple[int, int, int, int]:
        """Ask the board who it is; check the frame lengths and the fingerprint."""
        for attempt in range(2):
            self.port.write(bytes([IDENT]))
            self.port.flush()
            reply = self._read_exact(IDENT_LEN)
            if len(reply) == IDENT_LEN:
                break
            log.info("no identify reply (%d bytes), resynchronizing", len(reply))
            self.resync()
        else:
            raise LinkError(f"no answer from the board within {self.timeout:g} s (is the "
                            f"bitstream loaded, the port and the baud rate right?)")
        try:
            version, in_len, out_len, fp = parse_ident(reply)
        except ValueError as e:
            raise LinkError(str(e)) from None
        f = self.frames
        if (in_len, out_len) != (f.inp.frame_bytes, f.out.frame_bytes):
            raise LinkError(f"the board speaks {in_len}-byte input and {out_len}-byte output "
                            f"frames; this model needs {f.inp.frame_bytes} and "
                            f"{f.out.frame_bytes}: it was built from another model or options")
        if fp != f.fingerprint:
            log.warning("the board's model fingerprint %08x differs from %08x (built with "
                        "other options?)", fp, f.fingerprint)
        return version, in_len, out_len, fp

    def infer_one(self, x: np.ndarray) -> np.ndarray:
        frame = self.frames.encode(x)
        n = 1 + self.frames.out.frame_bytes
        for attempt in range(2):
            self.port.write(frame)
            self.port.flush()
            reply = self._read_exact(n)
            if len(reply) == n and reply[0] == FRAME_OUT:
                return self.frames.decode(reply[1:])
            log.info("bad or missing reply (%s), resynchronizing", reply.hex())
            self.resync()
        raise LinkError(f"no valid reply from the board after a resynchronization (last: "
                        f"{len(reply)} of {n} bytes)")

    def infer(self, xs: np.ndarray, progress=None) -> np.ndarray:
        """Outputs for a batch ``[N, ...]``: ``[N, output values]``."""
        outs = []
        for i, x in enumerate(xs):
            outs.append(self.infer_one(x))
            if progress is not None:
                progress(i + 1, len(xs))
        return np.array(outs, np.int64).reshape(len(xs), -1)
