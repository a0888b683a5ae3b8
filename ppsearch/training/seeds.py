"""One configuration trained over several seeds (``ppsearch train``): every seed is a trial in its
own folder, the -C/-P sets are made once for the run, and the records table is rewritten after
every trial, so nothing finished is lost and a rerun resumes."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from ..data.streaming import DataAccess
from ..rundir import LATENCY_DIR, RECORDS_STEM, SETS_DIR, write_table
from .trial import TrialConfig, TrialEpoch, check_data, evaluation_sets, run_trial


def train_seeds(configs: Sequence[TrialConfig], out: str | Path, *, access: DataAccess = DataAccess(),
                device: str = "cpu", compile: bool = False, progress: bool = True,
                on_epoch: Callable[[TrialConfig, TrialEpoch], None] | None = None) -> pd.DataFrame:
    """Train and measure each of ``configs`` (one configuration, one seed each) into
    ``out/seed-<n>``; returns the records, also written to ``out/records.parquet`` and ``.csv``."""
    out = Path(out)
    first = configs[0]
    data = check_data(first, access)
    sets = evaluation_sets(out / SETS_DIR, first, data, device=device, progress=progress)
    records = []
    for config in configs:
        def report(epoch: TrialEpoch, config: TrialConfig = config) -> None:
            if on_epoch is not None:
                on_epoch(config, epoch)

        records.append(run_trial(config, out / f"seed-{config.seed}", sets, latency_cache=out / LATENCY_DIR,
                                 access=access, device=device, compile=compile, on_epoch=report))
        write_table(pd.DataFrame(records), out / RECORDS_STEM)
    return pd.DataFrame(records)
