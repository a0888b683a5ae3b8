"""What ``ppsearch run`` shows of a Ray Tune session as it goes: a status line (the session's trials
ended of its total, by status, those running, the validation front's size, the time elapsed and an
estimate of the time left) and a line per ended trial.

On a terminal the status line is one live line redrawn in place, and an ended trial gets a line of
its own only when it joins the validation front. Written to a file or a pipe (a log, CI, a SLURM
job) every ended trial gets a line and the status line comes at most every ``STATUS_INTERVAL``
seconds: a search of N trials writes about N lines, whatever its concurrency.
"""
from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import pandas as pd

from ..rundir import FINAL_STATUSES, Column, TrialStatus, status_counts, validation_column
from ..selection.pareto import validation_front

STATUS_INTERVAL = 30.0  # seconds between status lines written to a file or a pipe


class SessionProgress:
    """The progress display of one Tune session of ``total`` trials (``phase``: what they are, e.g.
    "search"), told of each trial's start and end with a frame of :meth:`columns`."""

    def __init__(self, phase: str, total: int, objectives: Sequence[str], stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.phase, self.total, self.objectives = phase, total, tuple(objectives)
        self.stream = sys.stdout if stream is None else stream
        self.clock = clock
        self.live = self.stream.isatty()
        self.started: float | None = None  # when the session's first trial started
        self.ended: dict[str, TrialStatus] = {}  # the session's ended trials
        self.front: set[str] = set()
        self.status_at = -math.inf  # when the last status line was written (without a terminal)
        self._drawn, self._last = 0, ""  # the live line's length and text, once drawn
        self._drawn_at = -math.inf  # when it was drawn
        self._table: pd.DataFrame | None = None  # the last the status line was told of

    @staticmethod
    def columns(objectives: Sequence[str]) -> tuple[str, ...]:
        """The results table's columns the display reads (a frame of them costs a fraction of the
        whole table, which has a column per corruption and perturbation)."""
        return (Column.TRIAL_ID, Column.CONFIG_ID, Column.STATUS, Column.CONSTRAINT_VIOLATION,
                Column.EPOCHS_COMPLETED, Column.FAILURE_REASON, *(validation_column(o) for o in objectives))

    def trial_started(self, table: pd.DataFrame) -> None:
        if self.started is None:
            self.started = self.clock()
            self.front = _front(table, self.objectives)
            self._status(table, due=True)
        elif self.live:
            self._status(table, due=True)

    def trial_ended(self, trial_id: str, table: pd.DataFrame) -> None:
        row = table[table[Column.TRIAL_ID] == trial_id].iloc[0]
        self.ended[trial_id] = TrialStatus(row[Column.STATUS])
        front = _front(table, self.objectives)
        joined = trial_id in front
        self.front = front
        if joined or not self.live:
            self._write(self._trial_line(row, joined))
        self._status(table, due=self.live or len(self.ended) >= self.total
                     or self.clock() - self.status_at >= STATUS_INTERVAL)

    def tick(self) -> None:
        """Between trials' starts and ends (Ray Tune's every loop): on a terminal, the live line
        redrawn once a second so that its clock runs."""
        if self.live and self._table is not None and self.clock() - self._drawn_at >= 1.0:
            self._draw(self.status_line(self._table))

    def close(self) -> None:
        """End the live line (a terminal's next output starts on a line of its own)."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0

    def status_line(self, table: pd.DataFrame) -> str:
        ended = pd.DataFrame({Column.STATUS: list(self.ended.values())})
        running = int((table[Column.STATUS] == TrialStatus.RUNNING).sum()) if len(table) else 0
        elapsed = self.clock() - self.started if self.started is not None else 0.0
        left = self.total - len(self.ended)
        eta = (f"about {_duration(elapsed / len(self.ended) * left)} left" if self.ended and left > 0
               else "time left: after the first trial ends" if left > 0 else "done")
        # what matters most first: a narrow terminal cuts the end
        return (f"{self.phase}: {len(self.ended)}/{self.total} trials ended, {running} running | "
                f"{_duration(elapsed)} elapsed, {eta} | validation front {len(self.front)} | "
                f"{status_counts(ended, FINAL_STATUSES)}")

    def _trial_line(self, row: pd.Series, joined: bool) -> str:
        status = TrialStatus(row[Column.STATUS])
        line = f"  {row[Column.TRIAL_ID]} {status}"
        if status == TrialStatus.COMPLETED:
            line += "  " + "  ".join(f"{o} {_number(row.get(validation_column(o)))}" for o in self.objectives)
        elif status == TrialStatus.PRUNED and not pd.isna(row.get(Column.EPOCHS_COMPLETED)):
            line += f" after epoch {row[Column.EPOCHS_COMPLETED]:.0f}"
        elif status == TrialStatus.FAILED and isinstance(row.get(Column.FAILURE_REASON), str):
            line += f": {row[Column.FAILURE_REASON]}"
        return line + (f"  (joins the validation front: {len(self.front)})" if joined else "")

    def _status(self, table: pd.DataFrame, due: bool) -> None:
        if not due:
            return
        self._table = table
        line = self.status_line(table)
        if self.live:
            self._draw(line)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.status_at = self.clock()

    def _write(self, line: str) -> None:
        """A line of its own, above the live line where there is one (drawn again below it)."""
        if self._drawn:
            self.stream.write("\r" + line.ljust(self._drawn) + "\n" + self._last)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _draw(self, line: str) -> None:
        # cut to the terminal's width (a wrapped line cannot be redrawn in place), padded over
        # what the previous one left; a terminal that reports no width gets shutil's 80 columns
        line = line[:shutil.get_terminal_size().columns - 1]
        self.stream.write("\r" + line.ljust(self._drawn))
        self.stream.flush()
        self._drawn, self._last, self._drawn_at = len(line), line, self.clock()


def _front(table: pd.DataFrame, objectives: Sequence[str]) -> set[str]:
    if not len(table) or Column.STATUS not in table:
        return set()
    return set(validation_front(table, objectives)[Column.TRIAL_ID])


def _number(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.4f}"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
