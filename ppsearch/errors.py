"""The exception types the command line turns into one line instead of a traceback.

Code that checks what a user gave (a command-line value, a space file, a configuration, a path, a
checkpoint) raises :class:`UserError`; the command line reports exactly that as one line with exit
code 2. A file system that refuses a write is a :class:`StorageFault` (also exit 2: the user fixes
it and runs the same command again). A command that ran but could not deliver what was asked (every
trial of a search failed) raises :class:`RunIncomplete` (one line, exit 1). Every other exception
is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """A mistake in what the user asked for or gave: a one-line message naming the problem."""


class StorageFault(UserError):
    """The file system refused a write (full, read-only, no permission): not a result of the work
    being done, so nothing is recorded as failed; once it is fixed, the same command continues."""


class RunIncomplete(Exception):
    """A command that ran to its end without the result it was asked for; the message says why."""
