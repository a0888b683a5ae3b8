"""The one exception type for a user's mistake.

Code that checks what a user gave (a command-line value, a space file, a configuration, a path, a
checkpoint) raises :class:`UserError`; the command line reports exactly that as one line with exit
code 2. Every other exception is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """A mistake in what the user asked for or gave: a one-line message naming the problem."""
