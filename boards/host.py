"""The host side: run inferences on a board (or the simulated one) over a serial port.

:class:`BoardLink` speaks the framing of :mod:`mulfree.boards.framing` through pyserial:
it identifies the board (frame lengths and model fingerprint must match what the host
expects; the reply also gives the board's receive FIFO depth), then streams the batch:
it keeps up to :func:`~mulfree.boards.framing.window` frames in flight (sent, reply not
yet read), so the link runs without gaps while the board never overruns its FIFO. A board
built before the FIFO (framing version 1) is driven stop-and-wait. A missing reply, a
``LOST`` byte (the board lost a received byte) or anything else unexpected stops the
stream; the host then resynchronizes (a frame's worth of zero bytes, a pause, a flush) and
sends again every frame without a valid reply, at most twice.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import numpy as np

from mulfree.gen.errors import MulfreeError

from .framing import (FRAME_OUT, IDENT, IDENT_LEN, IDENT_MAGIC, LOST, FrameFormat, parse_ident,
                      window)

__all__ = ["BoardLink", "LinkError", "link_ceiling", "RECOVERIES"]

# Resynchronizations one batch may need before the link gives up.
RECOVERIES = 2


def link_ceiling(frames: FrameFormat, baud: int, streaming: bool = True) -> float:
    """Inferences/s the UART carries (8N1: 10 bit times a byte): streaming, the busier
    direction's frame (start byte included) per inference; stop-and-wait, both in turn."""
    n_in, n_out = frames.inp.frame_bytes + 1, frames.out.frame_bytes + 1
    return baud / 10 / (max(n_in, n_out) if streaming else n_in + n_out)

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
        self.baud = baud
        self.window = 1              # frames in flight; set by identify()
        self.fifo_depth = None       # the board's receive FIFO (None: framing version 1)
        self.recoveries = 0          # resynchronizations during the last infer()
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

    @contextmanager
    def _timeout(self, seconds: float):
        """The port's read timeout set to ``seconds`` for a while (when it has one)."""
        old = getattr(self.port, "timeout", None)
        if old is None:
            yield
            return
        self.port.timeout = seconds
        try:
            yield
        finally:
            self.port.timeout = old

    def _read_exact(self, n: int, timeout: float | None = None) -> bytes:
        data = bytearray()
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        with self._timeout(min(wait, self.timeout)):
            while len(data) < n and time.monotonic() < deadline:
                chunk = self.port.read(n - len(data))
                if chunk:
                    data += chunk
        return bytes(data)

    def _byte_time(self) -> float:
        return 10 / self.baud

    def resync(self) -> None:
        """Finish any partial frame on the board with zero bytes, wait until the board has
        answered everything it still holds, then drop what it sent."""
        f = self.frames
        self.port.write(bytes(f.inp.frame_bytes))
        self.port.flush()
        # what may still be queued on the board: a window of frames, in and out
        backlog = (self.window + 1) * (f.inp.frame_bytes + f.out.frame_bytes + 2)
        time.sleep(min(max(0.1, 2 * backlog * self._byte_time()), self.timeout))
        self._drain()

    def _drain(self) -> None:
        """Read and drop until the line has been quiet for 50 ms."""
        self.port.reset_input_buffer()
        with self._timeout(0.05):
            end = time.monotonic() + self.timeout
            while time.monotonic() < end and self.port.read(4096):
                pass

    def identify(self) -> tuple[int, int, int, int]:
        """Ask the board who it is; check the frame lengths and the fingerprint."""
        for attempt in range(2):
            self.port.write(bytes([IDENT]))
            self.port.flush()
            reply = self._read_exact(3)
            if len(reply) == 3 and reply[:2] == IDENT_MAGIC and reply[2] in IDENT_LEN:
                reply += self._read_exact(IDENT_LEN[reply[2]] - 3)
                if len(reply) == IDENT_LEN[reply[2]]:
                    break
            log.info("no identify reply (%s), resynchronizing", reply.hex())
            self.resync()
        else:
            if reply:
                raise LinkError(f"the board answered {reply.hex()} to identify, not a "
                                f"mulfree identify reply (another bitstream, or the baud "
                                f"rate?)")
            raise LinkError(f"no answer from the board within {self.timeout:g} s (is the "
                            f"bitstream loaded, the port and the baud rate right?)")
        try:
            version, in_len, out_len, fp, depth = parse_ident(reply)
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
        self.fifo_depth = depth
        self.window = window(in_len, depth)
        return version, in_len, out_len, fp

    def infer_one(self, x: np.ndarray) -> np.ndarray:
        return self.infer(np.asarray(x)[None])[0]

    def infer(self, xs: np.ndarray, progress=None) -> np.ndarray:
        """Outputs for a batch ``[N, ...]``: ``[N, output values]``, streamed with
        :attr:`window` frames in flight (call :meth:`identify` first; 1 otherwise)."""
        xs = np.asarray(xs)
        results: list = [None] * len(xs)
        frames = [self.frames.encode(x) for x in xs]
        self.recoveries = 0
        while True:
            todo = [i for i, r in enumerate(results) if r is None]
            if not todo:
                break
            why = self._stream(todo, frames, results, progress)
            if why is None:
                continue
            if self.recoveries >= RECOVERIES:
                done = sum(r is not None for r in results)
                raise LinkError(f"no valid reply from the board after {RECOVERIES} "
                                f"resynchronizations ({why}; {done} of {len(xs)} answered)")
            self.recoveries += 1
            log.info("%s: resynchronizing, then sending the %d unanswered frames again", why,
                     sum(r is None for r in results))
            self.resync()
        return np.array(results, np.int64).reshape(len(xs), -1)

    def _stream(self, todo: list[int], frames: list[bytes], results: list, progress):
        """Send the frames ``todo`` with up to :attr:`window` in flight, store each valid
        reply; None when all came, else what went wrong."""
        n_out = self.frames.out.frame_bytes
        inflight: list[int] = []
        sent = 0
        last = None                       # the last reply taken (a LOST after it voids it)
        while sent < len(todo) or inflight:
            while sent < len(todo) and len(inflight) < self.window:
                self.port.write(frames[todo[sent]])
                inflight.append(todo[sent])
                sent += 1
            head = self._read_exact(1)
            if not head:
                return f"no reply within {self.timeout:g} s"
            if head[0] == LOST:
                if last is not None:
                    results[last] = None
                return "the board lost a received byte"
            if head[0] != FRAME_OUT:
                return f"unexpected byte {head.hex()} instead of a reply"
            payload = self._read_exact(n_out)
            if len(payload) != n_out:
                return f"a reply cut short ({len(payload) + 1} of {n_out + 1} bytes)"
            last = inflight.pop(0)
            results[last] = self.frames.decode(payload)
            if progress is not None:
                progress(sum(r is not None for r in results), len(results))
        # a LOST right behind the last reply voids it too
        tail = self._read_exact(1, timeout=max(0.05, 30 * self._byte_time()))
        if tail:
            if last is not None:
                results[last] = None
            return ("the board lost a received byte" if tail[0] == LOST else
                    f"unexpected byte {tail.hex()} after the last reply")
        return None
