"""The ``mulfree`` command line.

Each command lives in its own module next to the code it drives and exposes
``add_arguments(parser)`` and ``run(args) -> int``. The list below is the whole registry:
explicit, typed, imported only when its command runs (so a missing optional tool never
breaks an unrelated command). User mistakes raise :class:`MulfreeError`; they are printed
on one line and exit with code 2. Exit code 1 means "ran, and the check failed".
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from dataclasses import dataclass

from mulfree.gen.errors import MulfreeError

__all__ = ["Command", "COMMANDS", "main"]


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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every user mistake
        self.exit(2, f"{self.prog}: error: {message}\n")


def _load(command: Command):
    try:
        return importlib.import_module(command.module)
    except ModuleNotFoundError as e:
        if e.name == command.module:
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="mulfree", description="Multiply-free neural-network hardware generator.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    argv = sys.argv[1:] if argv is None else argv
    wanted = next((a for a in argv if not a.startswith("-")), None)
    modules = {}
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        # Only the chosen command's module is imported; the rest just list their help.
        if command.name == wanted:
            module = _load(command)
            if module is None:
                parser.exit(2, f"mulfree: error: '{command.name}' is not available in this "
                               f"version of mulfree\n")
            module.add_arguments(p, command.name)
            modules[command.name] = module
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    try:
        return int(modules[args.command].run(args) or 0)
    except MulfreeError as e:
        print(f"mulfree {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mulfree {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
