"""Exception types shared by every part of mulfree.

Anything a user can cause (a bad model file, a bad input array, a bad option, an output
path that cannot be written, a size past a limit) raises a subclass of
:class:`MulfreeError`; the command line prints its message on one line and exits with
code 2. Anything else is a bug and keeps its traceback.
"""


class MulfreeError(Exception):
    """A mistake in what the user gave us; the message says what and where."""


class ModelError(MulfreeError, ValueError):
    """A model description that breaks the format or the numeric contract."""


class InputError(MulfreeError, ValueError):
    """Input data (codes, arrays, option values) that does not fit the model."""


class OutputError(MulfreeError):
    """A file or folder the user named cannot be written (or must not be replaced); the
    message names the path and the reason."""


class LimitError(InputError):
    """Work the input asks for (a map, a layer, an array) is larger than the configured
    limit; the message gives the size, the limit and the option that raises it."""
