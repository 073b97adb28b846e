"""One command line: every option has help, outputs are spelled -o/--output, global
options work before and after the command, --version, the shared value types."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from mulfree.cli import options
from mulfree.cli.main import COMMANDS, build_parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


PARSER, _ = build_parser(every=True)
SUBS = _subparsers(PARSER)


def mulfree(*args):
    p = subprocess.run([sys.executable, "-m", "mulfree.cli", *map(str, args)],
                       capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


@pytest.mark.parametrize("name", [c.name for c in COMMANDS])
def test_every_option_has_help(name):
    missing = [a.option_strings or [a.dest] for a in SUBS[name]._actions
               if not isinstance(a, argparse._HelpAction)
               and a.help != argparse.SUPPRESS and not (a.help or "").strip()]
    assert not missing, f"mulfree {name}: options without help: {missing}"


@pytest.mark.parametrize("name", [c.name for c in COMMANDS])
def test_outputs_are_spelled_dash_o_dash_dash_output(name):
    for a in SUBS[name]._actions:
        if a.dest == "output" and a.help != argparse.SUPPRESS:
            assert a.option_strings == ["-o", "--output"], (name, a.option_strings)
        if a.dest == "output" and a.help == argparse.SUPPRESS:
            assert a.option_strings == ["--out"], (name, a.option_strings)   # old spelling
        assert "--out" not in a.option_strings or a.help == argparse.SUPPRESS


def test_version():
    code, out, err = mulfree("--version")
    assert code == 0 and out.startswith("mulfree ") and err == ""


def test_global_options_before_and_after_the_command(tmp_path):
    from mulfree.gen.model.examples import example_model
    from mulfree.gen.model.format import save

    save(example_model(0), tmp_path / "m.mf")
    for args in (["-v", "--quiet", "info", tmp_path / "m.mf"],
                 ["info", tmp_path / "m.mf", "-v", "--quiet"],
                 ["info", "-q", tmp_path / "m.mf", "--max-elements", "100000"],
                 ["--max-elements", "100000", "info", tmp_path / "m.mf"]):
        code, out, err = mulfree(*args)
        assert code == 0 and "conv1" in out, (args, err)
    parsed = PARSER.parse_args(["-v", "info", "x.mf"])
    assert parsed.verbose and not parsed.quiet           # not overwritten by the command's


@pytest.mark.parametrize("kind, text", [
    (options.positive_int, "0"), (options.positive_int, "-1"), (options.positive_int, "x"),
    (options.nonneg_int, "-1"), (options.positive_float, "0"), (options.positive_float, "nan"),
    (options.positive_float, "inf"), (options.nonneg_float, "-0.1"), (options.int_list, ""),
    (options.int_list, "4,,2"), (options.int_list, "4,0"), (options.int_list, "a"),
])
def test_value_types_refuse_nonsense(kind, text):
    with pytest.raises(argparse.ArgumentTypeError):
        kind(text)


def test_value_types_take_sense():
    assert options.positive_int("1_000") == 1000
    assert options.nonneg_int("0") == 0
    assert options.positive_float("2.5") == 2.5
    assert options.int_list(" 64, 32") == (64, 32)
