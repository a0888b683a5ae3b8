"""The ``ppsearch`` command line: parses arguments (:mod:`.parser`), calls the library
(:mod:`.commands`), prints.

A user's mistake (:class:`~ppsearch.errors.UserError`, raised where input is checked) ends in one
line on stderr and exit code 2; any other exception is a bug and keeps its traceback (exit 1).
"""
from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence

from ..errors import RunIncomplete, UserError
from .arguments import add_design_arguments, attach_option_values, design_from_args
from .parser import build_parser

__all__ = ["add_design_arguments", "build_parser", "design_from_args", "main", "run_command"]


def main(argv: Sequence[str] | None = None) -> int:
    def command() -> None:
        args = build_parser().parse_args(attach_option_values(sys.argv[1:] if argv is None else argv))
        args.run(args)

    return run_command(command, "ppsearch")


def run_command(command: Callable[[], None], name: str) -> int:
    """Run a command the way every ppsearch entry point does (the CLI, the scripts in analysis/):
    a user mistake is one line on stderr and exit code 2, never a traceback; a command that ran
    without the result asked for (:class:`RunIncomplete`) one line and exit code 1; a bug keeps its
    traceback (exit 1). Ctrl-C, SIGTERM (what a batch scheduler sends) or SIGHUP (a closed terminal)
    stops it cleanly with exit code 128 + the signal; a second signal while it stops is ignored, so
    that the cleanup (Ray's shutdown) finishes. Output closed by its reader (``| head``) stops it
    as SIGPIPE would (141). An interrupted command never reports success."""
    _RECEIVED.clear()
    previous = {s: signal.signal(s, _raise_interrupted) for s in _STOPPING_SIGNALS}
    try:
        command()
    except UserError as error:
        _say(f"{name}: error: {error}")
        return 2
    except RunIncomplete as error:
        _say(f"{name}: {error}")
        return 1
    except BrokenPipeError:  # the reader closed the output (`| head`): stop, as SIGPIPE would
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - what flushes at exit goes nowhere, not into a traceback
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:  # Ctrl-C, or a signal turned into one (Ray may re-raise it bare)
        if not _RECEIVED:
            _RECEIVED.append(signal.SIGINT)
        received = _RECEIVED[0]
        _say(f"{name}: interrupted ({received.name}); what finished is kept: run the same command again to continue")
        return 128 + received
    finally:
        # once interrupted, signals stay ignored until the process ends: what runs at exit (Ray's
        # shutdown) must finish, or a second Ctrl-C kills it midway (a traceback, even a segfault)
        for stopping, handler in previous.items():
            signal.signal(stopping, _raise_interrupted if _RECEIVED else handler)
    return 0


_STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_RECEIVED: list[signal.Signals] = []


def _raise_interrupted(signum: int, frame: object) -> None:
    _RECEIVED.append(signal.Signals(signum))
    if len(_RECEIVED) == 1:  # later signals wait for the first one's cleanup
        raise KeyboardInterrupt


def _say(line: str) -> None:
    """One line on stderr, which a closed terminal (SIGHUP) may no longer accept."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass
