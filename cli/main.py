"""The ``mulfree`` command line.

Each command lives in its own module next to the code it drives and exposes
``add_arguments(parser)`` and ``run(args) -> int``. The list below is the whole registry:
explicit, typed, imported only when its command runs (so a missing optional tool never
breaks an unrelated command).

Exit codes: 0 success; 1 "ran, and the check failed"; 2 a user mistake or an environment
problem, printed on one line (``mulfree CMD: error: ...``): a :class:`MulfreeError`, any
``OSError`` (the path and the reason; a closed pipe on stdout too), running out of memory;
130 interrupted (Ctrl-C). Before a command runs, every output path its options name is
checked (:func:`mulfree.cli.options.check_outputs`). Everything printed passes through
:func:`mulfree.gen.progress.printable`, so names read from files cannot send terminal
control sequences.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from dataclasses import dataclass

from mulfree.gen import limits, progress
from mulfree.gen.errors import MulfreeError
from mulfree.gen.fileio import reason

from .options import add_global_options, check_outputs

__all__ = ["Command", "COMMANDS", "main", "build_parser"]


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help: str


COMMANDS: tuple[Command, ...] = (
    Command("info", "mulfree.cli.info", "summarize a model: layers, codebooks, widths, memory"),
    Command("inputs", "mulfree.cli.inputs", "write a model's input codes from a data set (.npy)"),
    Command("predict", "mulfree.cli.predict", "run the golden model on input codes"),
    Command("import", "mulfree.cli.import_model", "import a QONNX model (Brevitas export)"),
    Command("train", "mulfree.cli.train", "train a quantized model on a data set"),
    Command("quantize", "mulfree.cli.train", "post-training quantization of a float model"),
    Command("eval", "mulfree.cli.train", "test accuracy of a model's golden integer network"),
    Command("verilog", "mulfree.cli.verilog", "write Verilog and a manifest for a model"),
    Command("sim", "mulfree.cli.sim", "simulate the RTL and compare it with the golden model"),
    Command("build", "mulfree.cli.boards", "build a bitstream for an FPGA board"),
    Command("program", "mulfree.cli.boards", "program a board with a built bitstream"),
    Command("run", "mulfree.cli.boards", "run inferences on a board over UART"),
    Command("compare", "mulfree.cli.compare", "measure what each arithmetic scheme costs"),
)

# Options of the main parser that take a value (so their value is not the command name).
_VALUED = ("--max-elements",)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every user mistake
        self.exit(2, progress.printable(f"{self.prog}: error: {message}", keep="") + "\n")


class _Printable:
    """A text stream that escapes terminal control characters (see the module doc)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(progress.printable(text))

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("mulfree")
    except Exception:  # pragma: no cover - not installed: running from a source tree
        return "unknown"


def _load(command: Command):
    try:
        return importlib.import_module(command.module)
    except ModuleNotFoundError as e:
        if e.name == command.module:
            return None
        raise


def _wanted(argv: list[str]) -> str | None:
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in _VALUED:
            skip = True
        elif not a.startswith("-"):
            return a
    return None


def build_parser(wanted: str | None = None, every: bool = False):
    """The parser, with the arguments of command ``wanted`` (or of every command);
    returns ``(parser, {command name: module})``."""
    parser = _Parser(prog="mulfree", description="Multiply-free neural-network hardware "
                                                 "generator.")
    parser.add_argument("--version", action="version", version=f"mulfree {_version()}",
                        help="print the version and exit")
    add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    modules = {}
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        # Only the chosen command's module is imported; the rest just list their help.
        if every or command.name == wanted:
            module = _load(command)
            if module is None:
                parser.exit(2, f"mulfree: error: '{command.name}' is not available in this "
                               f"version of mulfree\n")
            module.add_arguments(p, command.name)
            add_global_options(p, top=False)
            modules[command.name] = module
    return parser, modules


def _error(command: str, message: str) -> int:
    line = progress.printable(message, keep="")
    print(f"mulfree {command}: error: {line}", file=sys.stderr)
    return 2


def _stdout_closed() -> None:
    """The reader of stdout went away: send what is left to /dev/null, so the flush at
    exit does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _run(argv: list[str]) -> int:
    parser, modules = build_parser(_wanted(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    command = args.command
    progress.configure(quiet=args.quiet, prefix=f"mulfree {command}",
                       stream=sys.stderr._stream if isinstance(sys.stderr, _Printable)
                       else sys.stderr)
    try:
        limits.set_max_elements(args.max_elements)
        check_outputs(args)
        code = int(modules[command].run(args) or 0)
        sys.stdout.flush()
        return code
    except MulfreeError as e:
        return _error(command, str(e))
    except BrokenPipeError:
        _stdout_closed()
        return _error(command, "<stdout>: broken pipe (the program reading the output "
                               "stopped before the end)")
    except OSError as e:
        where = f"{e.filename}: " if e.filename is not None else ""
        return _error(command, f"{where}{reason(e)}")
    except MemoryError:
        return _error(command, "out of memory (a smaller input, or a lower --max-elements "
                               "to be refused before allocating)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Printable(sys.stdout), _Printable(sys.stderr)
    try:
        return _run(argv)
    except KeyboardInterrupt:
        command = _wanted(argv)
        print(f"mulfree{' ' + command if command else ''}: interrupted", file=sys.stderr)
        return 130
    finally:
        try:
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            _stdout_closed()
        sys.stdout, sys.stderr = saved
        progress.configure("off")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
