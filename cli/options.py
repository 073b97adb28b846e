"""Options every command shares: one spelling, one check, one message.

* Value types for ``type=``: :func:`positive_int`, :func:`nonneg_int`, :func:`positive_float`,
  :func:`int_list`... each refuses nonsense (zero, negatives, NaN, infinity, an empty list)
  with argparse's one-line error, which names the option: ``argument --baud: expected a
  positive integer, not '0'``.
* Outputs: :func:`add_output` gives every command the same ``-o/--output`` (``--out`` is
  kept as a hidden alias) and :func:`output_path` marks any other option that names an
  output (``--waves``, ``--cache-dir``...). The command line checks every marked path
  before the command runs (:func:`check_outputs`): a bad ``-o`` fails in a second, not
  after minutes of training or synthesis.
* Global options (:func:`add_global_options`): ``-v``, ``-q/--quiet`` and
  ``--max-elements``, accepted before and after the command name.
"""

from __future__ import annotations

import argparse
import math

from mulfree.gen.fileio import check_output_dir, check_output_file

__all__ = ["positive_int", "nonneg_int", "positive_float", "nonneg_float", "int_list",
           "add_output", "output_path", "check_outputs", "add_global_options"]

_OUTPUTS = "_mulfree_outputs"


def _int(text: str) -> int:
    try:
        return int(text.replace("_", "") if isinstance(text, str) else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return v


def nonneg_int(text: str) -> int:
    """An integer >= 0."""
    v = _int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, not {text!r}")
    return v


def _float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, not {text!r}")
    return v


def positive_float(text: str) -> float:
    """A finite number > 0."""
    v = _float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, not {text!r}")
    return v


def nonneg_float(text: str) -> float:
    """A finite number >= 0."""
    v = _float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, not {text!r}")
    return v


def int_list(text: str) -> tuple[int, ...]:
    """``64,32``: at least one integer, each >= 1."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(p == "" for p in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such "
                                         f"as 64,32, not {text!r}")
    vals = tuple(_int(p) for p in parts)
    if any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"every layer needs at least one unit, not {text!r}")
    return vals


def output_path(parser: argparse.ArgumentParser, *flags: str, kind: str = "file",
                dest: str | None = None, **kwargs) -> argparse.Action:
    """``parser.add_argument(*flags, **kwargs)`` for an option that names an output
    ``kind`` ("file" or "dir"); its path is checked before the command runs."""
    if kind not in ("file", "dir"):
        raise ValueError(f"Output kind must be file or dir, not {kind!r}")
    if dest is not None:
        kwargs["dest"] = dest
    action = parser.add_argument(*flags, **kwargs)
    marked = list(parser.get_default(_OUTPUTS) or [])
    marked.append((action.dest, kind, action.option_strings[-1] if action.option_strings
                   else action.dest))
    parser.set_defaults(**{_OUTPUTS: marked})
    return action


def add_output(parser: argparse.ArgumentParser, *, kind: str = "file", help: str,
               required: bool = False, metavar: str | None = None, default=None,
               out_alias: bool = False) -> argparse.Action:
    """The one ``-o/--output`` (dest ``output``); ``out_alias`` also accepts the old
    ``--out`` spelling, hidden from the help."""
    metavar = metavar or ("DIR" if kind == "dir" else "FILE")
    action = output_path(parser, "-o", "--output", kind=kind, dest="output", help=help,
                         required=required, metavar=metavar, default=default)
    if out_alias:
        parser.add_argument("--out", dest="output", metavar=metavar, help=argparse.SUPPRESS)
    return action


def check_outputs(args: argparse.Namespace) -> None:
    """Check every output path the parsed options name (see :func:`output_path`)."""
    for dest, kind, flag in getattr(args, _OUTPUTS, None) or []:
        value = getattr(args, dest, None)
        if value is None:
            continue
        (check_output_dir if kind == "dir" else check_output_file)(value, flag)


def add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``-v``, ``-q/--quiet``, ``--max-elements``: on the main parser (``top``) with their
    defaults, and on every command's parser without defaults, so that either place
    works and the command's parser does not overwrite what was given before it."""
    kw = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log details of every step", **({"default": False} if top else kw))
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress lines (errors and results are still printed)",
                        **({"default": False} if top else kw))
    parser.add_argument("--max-elements", type=positive_int, metavar="N",
                        help="largest array (in values) a model, an input file or an option "
                             "may make mulfree allocate (default 2**26, or "
                             "$MULFREE_MAX_ELEMENTS)",
                        **({"default": None} if top else kw))
