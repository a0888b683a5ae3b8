"""One configuration trained over several seeds (``ppsearch train``): every seed is a trial in its
own folder, the -C/-P sets are made once for the run, and the records table is rewritten after
every trial, so nothing finished is lost and a rerun resumes. With a tracker (--mlflow) every seed
is an MLflow run too."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from ..data.streaming import DataAccess
from ..rundir import LATENCY_DIR, RECORDS_STEM, SETS_DIR, write_table
from .trial import TrialConfig, TrialEpoch, check_data, evaluation_sets, run_trial


class TrialTracker(Protocol):
    """What tracks a seed's trial (``tracking.Tracker``, which sits above training and imports it)."""

    def trial_started(self, trial_dir: Path, row: Mapping[str, Any]) -> None: ...

    def trial_recorded(self, trial_dir: Path) -> None: ...


def train_seeds(configs: Sequence[TrialConfig], out: str | Path, *, access: DataAccess = DataAccess(),
                device: str = "cpu", compile: bool = False, progress: bool = True,
                on_epoch: Callable[[TrialConfig, TrialEpoch], None] | None = None,
                tracker: TrialTracker | None = None) -> pd.DataFrame:
    """Train and measure each of ``configs`` (one configuration, one seed each) into
    ``out/seed-<n>``, each tracked by ``tracker`` when given; returns the records, also written to
    ``out/records.parquet`` and ``.csv``."""
    out = Path(out)
    first = configs[0]
    data = check_data(first, access)
    sets = evaluation_sets(out / SETS_DIR, first, data, device=device, progress=progress)
    records = []
    for config in configs:
        def report(epoch: TrialEpoch, config: TrialConfig = config) -> None:
            if on_epoch is not None:
                on_epoch(config, epoch)

        trial_dir = out / f"seed-{config.seed}"
        if tracker is not None:
            tracker.trial_started(trial_dir, config.to_dict())
        records.append(run_trial(config, trial_dir, sets, latency_cache=out / LATENCY_DIR,
                                 access=access, device=device, compile=compile, on_epoch=report))
        write_table(pd.DataFrame(records), out / RECORDS_STEM)
        if tracker is not None:
            tracker.trial_recorded(trial_dir)
    return pd.DataFrame(records)
