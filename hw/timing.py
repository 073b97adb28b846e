"""Cycle models of the stages' stream handshakes, for exact latency and throughput.

Every stage (:mod:`.engine`, :mod:`.pool`, :mod:`.argmax`) drives ``i.ready`` and ``o.valid`` from its
registers only, so a network's timing without stalls at its boundaries follows from one
step per cycle of small state machines, one per stage, each a transcription of its
stage's control (no data): the frame stages (dense :class:`~.engine.LayerEngine`,
:class:`~.pool.MaxPoolUnit`, :class:`~.argmax.ArgMaxUnit`), the streaming conv2d
engine (:class:`~.window.SlidingWindow` feeding the compute pipeline and its result FIFO)
and the streaming max-pool (:class:`~.pool.StreamMaxPool`: the same window generator,
its windows sent as they come). A streaming stage takes its input as fast as its line
buffer (and compute) allow, so its timing depends on its neighbours;
:func:`network_timing` runs the chain together.

``tests/hw`` checks these models against Amaranth's simulation of the real stages.
"""

from __future__ import annotations

__all__ = ["network_timing", "stage_timing", "conv_period", "FrameModel", "ConvModel",
           "MaxPoolFrameModel", "StreamPoolModel", "ArgMaxModel", "TablesModel",
           "LinkFifoModel"]


class FrameModel:
    """Dense layer engine: load a frame, compute, send (optionally double buffered). The
    same whether the input frame is in registers or in a memory: the memory's read takes
    the cycle of the activation register it replaces, and its ping-pong halves hand over
    on the cycle the register copy did (``tests/hw/test_dense_buffer.py``)."""

    def __init__(self, s):
        self.ib, self.ob = s.in_beats, s.out_beats
        self.compute = s.steps + s.lag               # start to the last result write
        self.db = s.double_buffer
        self.n_in = self.n_out = 0
        self.in_full = self.busy = self.out_full = self.pending = False
        self.finish = -1

    def ready(self):
        return not self.in_full

    def valid(self):
        return self.out_full

    def tick(self, t, took, sent):
        in_full, busy, out_full, pending = self.in_full, self.busy, self.out_full, self.pending
        if took:
            self.n_in += 1
            if self.n_in == self.ib:
                self.n_in, self.in_full = 0, True
        if sent:
            self.n_out += 1
            if self.n_out == self.ob:
                self.n_out, self.out_full = 0, False
        if self.db and pending and not out_full:
            self.out_full, self.pending, self.busy = True, False, False
        start = in_full and not busy and (self.db or not out_full)
        if start:
            self.busy, self.finish = True, t + self.compute
            if self.db:
                self.in_full = False
        if busy and t == self.finish:
            if self.db:
                self.pending = True
            else:
                self.busy, self.in_full, self.out_full = False, False, True


class MaxPoolFrameModel:
    """Frame-based max-pool (:class:`~.pool.MaxPoolUnit`)."""

    def __init__(self, s):
        self.ib, self.ob, self.db = s.in_beats, s.out_beats, s.double_buffer
        self.n_in = self.n_out = 0
        self.full = self.sending = False

    def ready(self):
        return not self.full

    def valid(self):
        return self.sending if self.db else self.full

    def tick(self, t, took, sent):
        full, sending = self.full, self.sending
        if self.db and full and not sending:
            self.full, self.sending = False, True
        if took:
            self.n_in += 1
            if self.n_in == self.ib:
                self.n_in, self.full = 0, True
        if sent:
            self.n_out += 1
            if self.n_out == self.ob:
                self.n_out = 0
                if self.db:
                    self.sending = False
                else:
                    self.full = False


class ArgMaxModel:
    def __init__(self, s):
        self.ib = s.group // s.in_beat
        self.n = 0
        self.out_valid = False

    def ready(self):
        return not self.out_valid

    def valid(self):
        return self.out_valid

    def tick(self, t, took, sent):
        if sent:
            self.out_valid = False
        if took:
            self.n += 1
            if self.n == self.ib:
                self.n, self.out_valid = 0, True


class LinkFifoModel:
    """A link FIFO (:class:`~.link_fifo.LinkFifo`, as Amaranth's ``SyncFIFOBuffered``): a
    memory of ``depth - 1`` beats and an output register filled from it."""

    def __init__(self, s):
        self.inner_depth = s.depth - 1
        self.inner = 0                  # beats in the memory
        self.out_full = False           # the output register holds a beat

    def ready(self):
        return self.inner != self.inner_depth

    def valid(self):
        return self.out_full

    def tick(self, t, took, sent):
        read = self.inner > 0 and (not self.out_full or sent)
        self.inner += int(took) - int(read)
        self.out_full = read or (self.out_full and not sent)


class TablesModel:
    """The fully pipelined table network (:class:`~.table_pipeline.TablePipeline`): input
    beats assembled into a frame, ``registers`` stages, the output register and its
    one-entry skid buffer; the pipeline moves while the skid is empty."""

    def __init__(self, s):
        self.ib = s.in_beats
        self.pipe = [False] * (s.registers + 1)       # the frame, then the stages
        self.beat = 0
        self.out = self.skid = False

    def ready(self):
        return not self.skid

    def valid(self):
        return self.out

    def tick(self, t, took, sent):
        advance = not self.skid
        incoming = advance and self.pipe[-1]
        if not self.out or sent:
            self.out, self.skid = (True, False) if self.skid else (incoming, False)
        elif incoming:
            self.skid = True
        if advance:
            frame = False
            if took:
                self.beat += 1
                if self.beat == self.ib:
                    self.beat, frame = 0, True
            self.pipe = [frame] + self.pipe[:-1]


class _Window:
    """The window generator (:class:`~.window.SlidingWindow`): its two input beats, the
    scan and the output register; ``win_ready`` is its consumer's ready."""

    def __init__(self, w):
        self.n, self.nb = w.pieces_per_pixel, w.pieces_per_beat
        self.rows, self.cols = w.scan_rows, w.scan_cols
        self.real = [[w.is_real(y, x) for x in range(self.cols)] for y in range(self.rows)]
        self.corner = [[w.is_corner(y, x) for x in range(self.cols)] for y in range(self.rows)]
        self.cur_valid = self.nxt_valid = self.valid = False
        self.cur_idx = self.y = self.x = self.q = 0

    def ready(self):
        return not self.nxt_valid

    def step(self, took, win_ready):
        real = self.real[self.y][self.x]
        corner = self.corner[self.y][self.x] and self.q == self.n - 1
        move = (not real or self.cur_valid) and (not corner or not self.valid or win_ready)
        take = move and real
        # the input beats
        cur_done = take and self.cur_idx == self.nb - 1
        if not self.cur_valid or cur_done:
            if self.nxt_valid:
                self.cur_valid, self.cur_idx, self.nxt_valid = True, 0, False
            elif took:
                self.cur_valid, self.cur_idx = True, 0
            else:
                self.cur_valid = False
        else:
            if take:
                self.cur_idx += 1
            if took:
                self.nxt_valid = True
        # the window register and the scan
        if move and corner:
            self.valid = True
        elif win_ready:
            self.valid = False
        if move:
            self.q += 1
            if self.q == self.n:
                self.q = 0
                self.x += 1
                if self.x == self.cols:
                    self.x = 0
                    self.y = (self.y + 1) % self.rows


class ConvModel:
    """Streaming conv2d: the window generator's scan, the engine's steps, the FIFO."""

    def __init__(self, s):
        self.win = _Window(s.window)
        self.sf, self.nf = s.sf, s.nf
        self.lag = s.lag                               # issue to the result write
        self.credits = s.fifo_depth
        self.sf_c = self.nf_c = 0
        self.level = 0
        self.writes = []                               # cycles of pending result writes

    def ready(self):
        return self.win.ready()

    def valid(self):
        return self.level > 0

    def tick(self, t, took, sent):
        last_sf = self.sf_c == self.sf - 1
        issue = self.win.valid and (self.credits > 0 or not last_sf)
        win_ready = issue and last_sf and self.nf_c == self.nf - 1
        self.win.step(took, win_ready)
        # the engine's steps, its result FIFO and the credits
        if issue:
            self.sf_c += 1
            if self.sf_c == self.sf:
                self.sf_c = 0
                self.nf_c = (self.nf_c + 1) % self.nf
        write = bool(self.writes) and self.writes[0] == t
        if write:
            self.writes.pop(0)
        if issue and last_sf:
            self.writes.append(t + self.lag)
            self.credits -= 1
        if sent:
            self.credits += 1
        self.level += int(write) - int(sent)


class StreamPoolModel:
    """Streaming max-pool: the window generator, its windows sent combinationally, one
    beat per channel slice."""

    def __init__(self, s):
        self.win = _Window(s.window_spec)
        self.slices = s.slices
        self.sl = 0

    def ready(self):
        return self.win.ready()

    def valid(self):
        return self.win.valid

    def tick(self, t, took, sent):
        self.win.step(took, sent and self.sl == self.slices - 1)
        if sent:
            self.sl = (self.sl + 1) % self.slices


def _model(spec):
    """A fresh cycle model of the stage: every stage spec names its own
    (``ComputeSpec``, ``MaxPoolSpec``, ``ArgMaxSpec``: ``spec.cycle_model()``)."""
    make = getattr(spec, "cycle_model", None)
    if make is None:
        raise TypeError(f"Stage spec must be a ComputeSpec, MaxPoolSpec or ArgMaxSpec, not "
                        f"{spec!r}")
    return make()


def _out_beats(stages, models) -> int:
    """Output beats of the chain per inference (an argmax sends one per group)."""
    if isinstance(models[-1], ArgMaxModel):
        return stages[-2].out_count // stages[-1].group if len(stages) > 1 else 1
    return stages[-1].out_beats


def load_cycles(stages) -> int:
    """Cycles a network spends taking its SPRAM load image (one word per cycle) before
    its first input: stages run meanwhile (a conv2d window generator scans the padding
    that needs no input), so the first inference's timing starts from there."""
    return sum(getattr(s, "load_words", 0) for s in stages)


def _run(stages, inferences: int):
    """Feed ``inferences`` frames back to back into the chain with its output always
    ready, after its load image (:func:`load_cycles`, no input offered meanwhile);
    returns (cycles of the input transfers, cycles of each inference's last output
    transfer)."""
    models = [_model(s) for s in stages]
    in_beats = stages[0].in_beats
    out_beats = _out_beats(stages, models)
    total_in, total_out = in_beats * inferences, out_beats * inferences
    fed = got = 0
    taken, done = [], []
    t = 0
    # a generous bound on the cycles of a correct chain (a stuck model must not hang)
    limit = 0
    for s in stages:
        limit += (getattr(s, "in_count", 0) + getattr(s, "out_count", 0) + 64 +
                  getattr(s, "steps", 0) + getattr(s, "registers", 0))
        win = getattr(s, "window_spec", None) or getattr(s, "window", None)
        if win is not None:
            limit += win.scan_pieces
    limit *= inferences + 2
    k = len(models)
    warmup = load_cycles(stages)
    limit += warmup
    while got < total_out:
        valid = [fed < total_in and t >= warmup] + [mdl.valid() for mdl in models]
        ready = [mdl.ready() for mdl in models] + [True]
        xfer = [v and r for v, r in zip(valid, ready)]
        for n, mdl in enumerate(models):
            mdl.tick(t, xfer[n], xfer[n + 1])
        if xfer[0]:
            fed += 1
            taken.append(t)
        if xfer[k]:
            got += 1
            if got % out_beats == 0:
                done.append(t)
        t += 1
        if t > limit:
            raise RuntimeError("timing model: the chain does not finish (a model bug)")
    return taken, done


def network_timing(stages, inferences: int = 4) -> tuple[int, int]:
    """``(latency, cycles per inference)`` of the chain of stage specs, no stalls.

    Latency: cycles from the first input beat's transfer to the last output beat's
    transfer of one inference. Cycles per inference: the largest interval between the
    ends of consecutive inferences over ``inferences`` frames fed back to back (the
    steady-state initiation interval once the pattern repeats)."""
    if inferences < 2:
        raise ValueError(f"Inferences must be at least 2, not {inferences}")
    taken, done = _run(stages, 1)
    latency = done[0] - taken[0]
    _, done = _run(stages, inferences)
    period = max(b - a for a, b in zip(done, done[1:]))
    return latency, period


def stage_timing(spec) -> tuple[int, int]:
    """``(delay, period)`` of one stage alone (input always offered, output always
    ready): the cycles from its last input beat's transfer to its last output beat's
    transfer in one inference, and its steady-state initiation interval."""
    taken, done = _run([spec], 1)
    delay = done[0] - taken[-1]
    _, done = _run([spec], 4)
    return delay, max(b - a for a, b in zip(done, done[1:]))


def conv_period(window, steps: int) -> int:
    """The steady-state period of a streaming conv2d stage alone (input always offered,
    output always ready) without running its cycle model: what :func:`stage_timing`
    returns as its period, in time linear in the scan's pixels, not its cycles.

    The window generator moves one piece per cycle and stops only at a window's last
    piece while the engine still holds the previous window, which takes ``steps``
    (``sf * nf``) issues; with the output always ready the engine's FIFO never runs out
    of credits, and with the input always offered the generator never waits for a beat.
    So consecutive windows complete ``max(steps, gap)`` cycles apart, ``gap`` being the
    scan distance between their last pieces (cyclic over the frame), and the period is
    the sum over a frame's windows. ``tests/hw/test_conv_period.py`` checks it against
    the cycle model.
    """
    n, cols = window.pieces_per_pixel, window.scan_cols
    ends = [(y * cols + x) * n + n - 1 for y in range(window.scan_rows)
            for x in range(cols) if window.is_corner(y, x)]
    total = window.scan_pieces
    gaps = [b - a for a, b in zip(ends, ends[1:])] + [ends[0] + total - ends[-1]]
    return sum(max(steps, g) for g in gaps)
