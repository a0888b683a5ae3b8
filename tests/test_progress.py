"""What `ppsearch run` prints as trials start and end: a line per ended trial and a status line at
most every 30 s without a terminal; one live line and the front's changes on a terminal."""
import io

import pandas as pd

from ppsearch.search.progress import STATUS_INTERVAL, SessionProgress

OBJECTIVES = ("clean_error", "mce")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _row(trial_id: str, status: str, clean: float | None = None, mce: float | None = None, epochs: int = 3,
         reason: str = "") -> dict:
    return {"trial_id": trial_id, "config_id": trial_id, "status": status, "epochs_completed": epochs,
            "failure_reason": reason, "val_clean_error": clean, "val_mce": mce}


def _search(progress: SessionProgress, clock: Clock, outcomes: list[dict], seconds_each: float, at_once: int) -> None:
    """Trials of ``outcomes`` run ``at_once`` at a time, each ``seconds_each`` long."""
    rows: dict[str, dict] = {}
    for start in range(0, len(outcomes), at_once):
        batch = outcomes[start:start + at_once]
        for outcome in batch:
            rows[outcome["trial_id"]] = {**outcome, "status": "running"}
            progress.trial_started(pd.DataFrame(list(rows.values())))
        clock.now += seconds_each
        for outcome in batch:
            rows[outcome["trial_id"]] = outcome
            progress.trial_ended(outcome["trial_id"], pd.DataFrame(list(rows.values())))


def _outcomes(n: int) -> list[dict]:
    statuses = ["completed", "completed", "pruned", "completed", "failed"]
    return [_row(f"trial-{i:04d}", statuses[i % 5], clean=0.5 - i / (4 * n), mce=0.8 + (i % 7) / 50, epochs=1,
                 reason="NonFiniteLoss: nan") for i in range(n)]


def test_without_a_terminal_every_ended_trial_gets_a_line_and_the_status_comes_every_30_s():
    """200 trials of 12 s, 8 at a time (5 minutes): 200 trial lines and one status line per 30 s,
    not a line per state change (a few per trial) of every trial."""
    clock, out = Clock(), io.StringIO()
    progress = SessionProgress("search", 200, OBJECTIVES, stream=out, clock=clock)
    _search(progress, clock, _outcomes(200), seconds_each=12.0, at_once=8)
    lines = out.getvalue().splitlines()
    trial_lines = [line for line in lines if line.startswith("  trial-")]
    status_lines = [line for line in lines if line.startswith("search: ")]
    assert len(trial_lines) == 200 and len(lines) == len(trial_lines) + len(status_lines)
    assert 300 / STATUS_INTERVAL / 2 <= len(status_lines) <= 300 / STATUS_INTERVAL + 2
    assert "  trial-0002 pruned after epoch 1" in lines and "  trial-0004 failed: NonFiniteLoss: nan" in lines
    assert trial_lines[0] == "  trial-0000 completed  clean_error 0.5000  mce 0.8000  (joins the validation front: 1)"
    assert status_lines[0] == ("search: 0/200 trials ended, 1 running | 0m00s elapsed, time left: after the first "
                               "trial ends | validation front 0 | 0 completed, 0 pruned, 0 failed")
    assert status_lines[-1] == ("search: 200/200 trials ended, 0 running | 5m00s elapsed, done | validation front 2 | "
                                "120 completed, 40 pruned, 40 failed")


def test_the_time_left_is_estimated_from_the_trials_ended_so_far():
    """50 of 200 trials ended in 75 s (8 at a time): about 225 s, 3m45s, left."""
    clock, out = Clock(), io.StringIO()
    progress = SessionProgress("search", 200, OBJECTIVES, stream=out, clock=clock)
    rows = pd.DataFrame([_row(f"trial-{i:04d}", "running") for i in range(8)])
    progress.trial_started(rows)
    assert "time left: after the first trial ends" in out.getvalue()
    progress.ended = {f"trial-{i:04d}": "completed" for i in range(50)}
    clock.now = 75.0
    assert "| 1m15s elapsed, about 3m45s left |" in progress.status_line(rows)


def test_on_a_terminal_one_live_line_and_only_the_trials_that_join_the_front():
    clock, out = Clock(), Terminal()
    progress = SessionProgress("search", 40, OBJECTIVES, stream=out, clock=clock)
    _search(progress, clock, _outcomes(40), seconds_each=12.0, at_once=4)
    progress.close()
    printed = out.getvalue()
    joined = [line for line in printed.splitlines() if "trial-" in line]
    assert 0 < len(joined) < 40 and all("joins the validation front" in line for line in joined)
    # the status line is redrawn in place: carriage returns, one final newline of its own
    assert printed.count("\r") > 40 and printed.rstrip("\n").rsplit("\r", 1)[-1].startswith("search: 40/40 trials")


def test_on_a_terminal_the_live_line_keeps_its_clock_running_between_trials():
    clock, out = Clock(), Terminal()
    progress = SessionProgress("search", 4, OBJECTIVES, stream=out, clock=clock)
    progress.trial_started(pd.DataFrame([_row("trial-0000", "running")]))
    clock.now = 65.0
    progress.tick()
    drawn = out.getvalue()
    clock.now = 65.5
    progress.tick()  # at most once a second
    assert out.getvalue() == drawn and drawn.rsplit("\r", 1)[-1].startswith("search: 0/4 trials ended, 1 running | 1m05s")
    log = io.StringIO()  # off a terminal the status comes with trials' ends only
    logged = SessionProgress("search", 4, OBJECTIVES, stream=log, clock=clock)
    logged.trial_started(pd.DataFrame([_row("trial-0000", "running")]))
    clock.now = 200.0
    logged.tick()
    assert len(log.getvalue().splitlines()) == 1
