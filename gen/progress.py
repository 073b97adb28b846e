"""Progress for every step that can take more than a few seconds, in one place.

    from mulfree.gen import progress

    with progress.stage("yosys: synthesis") as s:
        ...
        s.update("pass 3")                 # a detail
        s.update(done=12, total=60)        # a count

The command line sets the mode once (:func:`configure`); library code only opens stages:

* ``off``: nothing (the default for library use, and under ``--quiet``);
* ``lines`` (stderr is not a terminal, e.g. a log file or CI): one line per stage,
  ending in `` ...``;
* ``live`` (stderr is a terminal): the innermost stage's line is redrawn in place with
  its count, detail and elapsed time, and left showing the total time when the stage
  ends.

A stage shows itself only after :data:`DELAY` seconds: a step that ends sooner (or fails
at once, so that its one-line error stands alone) prints nothing.

Progress goes to stderr, so stdout keeps only a command's results; the mode follows
whether stderr is a terminal, since that is where the line is drawn.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
from typing import Iterator

__all__ = ["configure", "stage", "Stage", "mode", "printable"]

_lock = threading.RLock()
_cfg = {"mode": "off", "prefix": "mulfree", "stream": None}
_stack: list["Stage"] = []
_ticker: threading.Thread | None = None
_drawn = 0                       # characters of the live line now on the terminal
_on_line: "Stage | None" = None  # the stage whose live line that is

# A stage shows itself only once it has run this long: quick steps (and quick failures,
# whose one-line error then stands alone) print nothing.
DELAY = 2.0


def configure(mode: str | None = None, *, quiet: bool = False, prefix: str = "mulfree",
              stream=None) -> str:
    """Set the mode (``off``, ``lines``, ``live``; None: ``live`` when ``stream`` is a
    terminal, else ``lines``; ``quiet`` forces ``off``) and the line prefix (e.g.
    ``"mulfree build"``). Returns the mode."""
    stream = stream if stream is not None else sys.stderr
    if quiet:
        mode = "off"
    elif mode is None:
        mode = "live" if getattr(stream, "isatty", lambda: False)() else "lines"
    if mode not in ("off", "lines", "live"):
        raise ValueError(f"Progress mode must be off, lines or live, not {mode!r}")
    with _lock:
        _cfg.update(mode=mode, prefix=prefix, stream=stream)
    return mode


def mode() -> str:
    return _cfg["mode"]


def _fmt_time(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"


class Stage:
    """One step; :meth:`update` changes its count or detail."""

    def __init__(self, title: str, total: int | None = None) -> None:
        self.title, self.total = title, total
        self.done: int | None = None
        self.note = ""
        self.start = time.monotonic()
        self.shown = False

    def update(self, note: str | None = None, *, done: int | None = None,
               total: int | None = None, advance: int = 0) -> None:
        with _lock:
            if note is not None:
                self.note = note
            if total is not None:
                self.total = total
            if done is not None:
                self.done = done
            elif advance:
                self.done = (self.done or 0) + advance
            if _cfg["mode"] == "live" and self.shown and _stack and _stack[-1] is self:
                _draw(self)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def line(self, end: str | None = None) -> str:
        count = ""
        if self.done is not None:
            count = f" {self.done}/{self.total}" if self.total else f" {self.done}"
        note = f" {self.note}" if self.note and end is None else ""
        tail = end if end is not None else f" [{_fmt_time(self.elapsed())}]"
        return f"{_cfg['prefix']}: {self.title}{count}{note}{tail}"


def _write(text: str) -> None:
    stream = _cfg["stream"] or sys.stderr
    try:
        stream.write(printable(text, keep="\n\r"))
        stream.flush()
    except (OSError, ValueError):   # a closed or broken stderr must not stop the work
        pass


def _draw(st: Stage, text: str | None = None) -> None:
    """Draw ``st``'s live line (in place when it is the line on the terminal)."""
    global _drawn, _on_line
    if _on_line is not st and _drawn:
        _write("\n")            # leave the other stage's line as it stands
        _drawn = 0
    width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
    text = (text if text is not None else st.line())[:width]
    _write("\r" + text + " " * max(0, _drawn - len(text)))
    _drawn, _on_line = len(text), st


def _end_line() -> None:
    global _drawn, _on_line
    if _drawn:
        _write("\n")
    _drawn, _on_line = 0, None


def _tick() -> None:
    while True:
        time.sleep(0.25)
        with _lock:
            m = _cfg["mode"]
            if m == "lines":
                for st in _stack:
                    if not st.shown and st.elapsed() >= DELAY:
                        st.shown = True
                        _write(f"{_cfg['prefix']}: {st.title} ...\n")
            elif m == "live" and _stack:
                top = _stack[-1]
                if top.elapsed() >= DELAY:
                    top.shown = True
                    _draw(top)


@contextlib.contextmanager
def stage(title: str, total: int | None = None) -> Iterator[Stage]:
    """A step of a command (see the module doc); yields its :class:`Stage`."""
    global _ticker
    st = Stage(title, total)
    with _lock:
        if _cfg["mode"] != "off" and (_ticker is None or not _ticker.is_alive()):
            _ticker = threading.Thread(target=_tick, name="mulfree-progress", daemon=True)
            _ticker.start()
        _stack.append(st)
        if _cfg["mode"] == "lines" and DELAY <= 0:     # no delay: show at once, not at a tick
            st.shown = True
            _write(f"{_cfg['prefix']}: {st.title} ...\n")
    ok = False
    try:
        yield st
        ok = True
    finally:
        with _lock:
            if st in _stack:
                _stack.remove(st)
            if _cfg["mode"] == "live" and st.shown:
                how = "done" if ok else "stopped"
                _draw(st, st.line(f": {how} in {_fmt_time(st.elapsed())}"))
                _end_line()


_CONTROL = None


def printable(text: str, keep: str = "\n\t") -> str:
    """``text`` with terminal control characters (C0 and C1 controls, DEL, bidirectional
    overrides) shown as escapes (``\\x1b``), except those in ``keep``: a name read from a
    file never moves the cursor, recolours or retitles the user's terminal."""
    global _CONTROL
    if _CONTROL is None:
        import re
        _CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

    def esc(m) -> str:
        c = m.group()
        if c in keep:
            return c
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
    return _CONTROL.sub(esc, text)
