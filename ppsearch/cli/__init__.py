"""The ``ppsearch`` command line: parses arguments (:mod:`.parser`), calls the library
(:mod:`.commands`), prints.

A user's mistake (:class:`~ppsearch.errors.UserError`, raised where input is checked) ends in one
line on stderr and exit code 2; any other exception is a bug and keeps its traceback (exit 1).
"""
from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence

from ..errors import UserError
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
    a user mistake is one line on stderr and exit code 2, never a traceback; a bug keeps its
    traceback (exit 1); Ctrl-C or SIGTERM (what a batch scheduler sends) stops it cleanly with
    exit code 130 or 143, and an interrupted command never reports success."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        command()
    except UserError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM turned into one (Ray may re-raise it bare)
        received = _TERMINATED[-1] if _TERMINATED else signal.SIGINT
        print(f"{name}: interrupted ({received.name}); what finished is kept: run the same command again to "
              f"continue", file=sys.stderr)
        return 128 + received
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


_TERMINATED: list[signal.Signals] = []


def _raise_interrupted(signum: int, frame: object) -> None:
    _TERMINATED.append(signal.Signals(signum))
    raise KeyboardInterrupt
