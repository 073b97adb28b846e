"""The progress helper: off, one line per stage, a live line; quick stages stay silent."""

import io
import time

import pytest

from mulfree.gen import progress


class Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(progress, "DELAY", 0.0)
    yield
    progress.configure("off")


def _wait_for(stream, text, seconds=5.0):
    end = time.monotonic() + seconds
    while text not in stream.getvalue() and time.monotonic() < end:
        time.sleep(0.05)
    return stream.getvalue()


def test_off_prints_nothing(fast):
    out = io.StringIO()
    progress.configure(quiet=True, stream=out)
    with progress.stage("synthesis"):
        time.sleep(0.6)
    assert out.getvalue() == ""


def test_lines_mode_one_line_per_stage(fast):
    out = io.StringIO()
    assert progress.configure(prefix="mulfree build", stream=out) == "lines"
    for title in ("yosys: synthesis", "nextpnr: placing"):
        with progress.stage(title) as st:
            _wait_for(out, title)
            st.update("detail", done=3, total=9)        # not printed in lines mode
    assert out.getvalue() == ("mulfree build: yosys: synthesis ...\n"
                              "mulfree build: nextpnr: placing ...\n")


def test_quick_stages_print_nothing(monkeypatch):
    monkeypatch.setattr(progress, "DELAY", 2.0)
    out = io.StringIO()
    progress.configure(stream=out)
    try:
        with progress.stage("quick"):
            time.sleep(0.3)
    finally:
        progress.configure("off")
    time.sleep(0.4)
    assert out.getvalue() == ""


def test_live_mode_redraws_and_ends_with_the_time(fast):
    out = Tty()
    assert progress.configure(stream=out) == "live"
    with progress.stage("training", total=4) as st:
        _wait_for(out, "training")
        st.update("loss 0.5", done=2)
        assert "\rmulfree: training 2/4 loss 0.5 [" in out.getvalue()
    text = out.getvalue()
    assert text.endswith("\n") and "training 2/4: done in 0 s" in text


def test_a_failed_stage_ends_its_line_before_the_error(fast):
    out = Tty()
    progress.configure(stream=out)
    with pytest.raises(KeyError):
        with progress.stage("fitting"):
            _wait_for(out, "fitting")
            raise KeyError("x")
    assert out.getvalue().endswith(": stopped in 0 s\n")


def test_printable_escapes_terminal_controls():
    assert progress.printable("a\x1b[2Jb\x07\u202e\n") == "a\\x1b[2Jb\\x07\\u202e\n"
    assert progress.printable("x\ny", keep="") == "x\\x0ay"
