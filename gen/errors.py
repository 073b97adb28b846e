"""Exception types shared by every part of mulfree.

Anything a user can cause (a bad model file, a bad input array, a bad option) raises a
subclass of :class:`MulfreeError`; the command line prints its message on one line and
exits with code 2. Anything else is a bug and keeps its traceback.
"""


class MulfreeError(Exception):
    """A mistake in what the user gave us; the message says what and where."""


class ModelError(MulfreeError, ValueError):
    """A model description that breaks the format or the numeric contract."""


class InputError(MulfreeError, ValueError):
    """Input data (codes, arrays, option values) that does not fit the model."""
