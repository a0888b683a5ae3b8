"""Runs started from Python: :func:`run` searches a space (what ``ppsearch run`` does) and
:func:`train` trains one configuration over seeds (``ppsearch train``). The commands call these
functions, so a run started either way is the same run: the same settings, defaults, checks and
run directory, and rerunning either on its directory continues it.

The engine (torch, Ray) is imported when a run starts, not when this module is, so that
``ppsearch``'s API can be listed and documented without it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .config import PAPER_PREFIX
from .data.names import BAD_IMAGES_FAIL, STREAM_AUTO
from .errors import UserError
from .files import check_output
from .rundir import RUN_FILE, LatencyBackend, RunSettings, read_settings
from .runs import Run, TrainingRun
from .search.strategies import Scheduler
from .training.names import DEMO

if TYPE_CHECKING:
    from .search.engine import RunClock
    from .tracking import Tracking
    from .training.trial import TrialConfig, TrialEpoch


def run(space: str | Path = "resnet-cifar", *, dataset: str | None = None, budget: str = DEMO, trials: int = 10,
        out: str | Path | None = None, budget_overrides: Mapping[str, int | str | None] | None = None,
        objectives: Sequence[str] | None = None, sampler: str = "tpe", scheduler: str = Scheduler.MOASHA.value,
        seed: int = 0, protocol: str | None = None, validation_fraction: float = 0.1, image_size: int | None = None,
        confirm_seeds: int | str = 1, max_seeds: int = RunSettings.max_seeds,
        verdict_alpha: float = RunSettings.verdict_alpha, constraints: Sequence[str] = (),
        latency_batch: int = 1, latency_device: str | None = None, latency_backend: str = LatencyBackend.TORCH.value,
        seed_from: Sequence[str | Path] = (), cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
        max_concurrent: int = 0, time_budget: float | None = None, address: str | None = None,
        resume: bool = False, data_dir: str | None = None, stream: str = STREAM_AUTO,
        memory_budget: float | None = None, bad_images: str = BAD_IMAGES_FAIL, tracking: Tracking | None = None,
        quiet: bool = False, clock: RunClock | None = None) -> Run:
    """Search ``space`` (an embedded space's name or a YAML file) and return the finished run:
    ``ppsearch run`` with these arguments, one for each of its options (``--budget-set`` as
    ``budget_overrides``, ``--constraint`` as ``constraints``, ``--confirm-seeds`` as
    ``confirm_seeds``: an integer, or ``"auto"``), and the same defaults. ``out`` defaults to
    ``runs/search/<space>-<dataset>-<budget>``; a run already there is continued. ``tracking``
    tracks every trial as an MLflow run; ``clock`` times the run's phases (``ppsearch run`` prints
    them). A run that ``time_budget`` stopped early is returned as it stands: run it again to
    complete it."""
    from .constraints import parse_constraint
    from .robustness.metrics import default_protocol
    from .search.cluster import Resources
    from .search.engine import RunClock, run_search
    from .search.space import load_space

    clock = clock or RunClock()
    loaded = load_space(space)
    dataset = dataset or loaded.dataset
    out = check_output(out or f"runs/search/{loaded.name}-{dataset}-{budget}", "directory")
    if resume and not (out / RUN_FILE).is_file():
        raise UserError(f"--resume: {out} holds no run to resume")
    settings = RunSettings(str(loaded.path), dataset, budget, loaded.budget(budget, budget_overrides),
                           tuple(objectives or loaded.objectives), sampler, scheduler, trials, seed,
                           protocol or default_protocol(dataset), validation_fraction,
                           seed_from=tuple(str(Path(d).resolve()) for d in seed_from), image_size=image_size,
                           confirm_seeds=str(confirm_seeds), max_seeds=max_seeds, verdict_alpha=verdict_alpha,
                           constraints=tuple(parse_constraint(c).text for c in constraints),
                           latency_batch=latency_batch, latency_device=latency_device or "",
                           latency_backend=latency_backend)
    resources = Resources(cpus_per_trial, gpus_per_trial, max_concurrent, time_budget, address)
    clock.mark("start-up")
    table = run_search(out, settings, resources, access=_data_access(data_dir, stream, memory_budget, bad_images),
                       quiet=quiet, clock=clock, tracking=tracking)
    return Run(out, read_settings(out), table)


def train(config: Sequence[str] = (), *, space: str | Path = "resnet-cifar", dataset: str | None = None,
          budget: str = DEMO, seeds: int = 1, out: str | Path | None = None,
          budget_overrides: Mapping[str, int | str | None] | None = None, protocol: str | None = None,
          validation_fraction: float | None = None, image_size: int | None = None, device: str = "cpu",
          compile: bool = False, data_dir: str | None = None, stream: str = STREAM_AUTO,
          memory_budget: float | None = None, bad_images: str = BAD_IMAGES_FAIL, tracking: Tracking | None = None,
          quiet: bool = False,
          on_epoch: Callable[[TrialConfig, TrialEpoch], None] | None = None) -> TrainingRun:
    """Train and measure one configuration of ``space`` with seeds ``0 .. seeds-1`` and return the
    run: ``ppsearch train`` with these arguments and its defaults. ``config`` is what ``--config``
    takes: ``paper:NAME`` and ``key=value`` tokens, applied in order over the space's defaults.
    ``out`` defaults to ``runs/train/<space>-<config>-<dataset>-<budget>``; the seeds finished there
    are read back, not trained again. ``on_epoch(trial, epoch)`` is told every epoch of every seed."""
    from .search.space import load_space
    from .training.seeds import train_seeds
    from .training.trial import TrialConfig

    if seeds < 1:
        raise UserError(f"seeds: at least 1 is needed, got {seeds}")
    loaded = load_space(space)
    dataset = dataset or loaded.dataset
    overrides = loaded.budget(budget, budget_overrides)
    configs = [TrialConfig.create(loaded.config(config), dataset=dataset, budget=budget, seed=seed,
                                  budget_overrides=overrides, protocol=protocol,
                                  validation_fraction=validation_fraction, image_size=image_size)
               for seed in range(seeds)]
    label = "-".join(t.removeprefix(PAPER_PREFIX).replace("=", "") for t in config) or "defaults"
    out = check_output(out or f"runs/train/{loaded.name}-{label}-{dataset}-{budget}", "directory")
    if tracking is not None:
        tracking.check()
    table = train_seeds(configs, out, access=_data_access(data_dir, stream, memory_budget, bad_images), device=device,
                        compile=compile, tracker=tracking.open(out) if tracking is not None else None,
                        progress=not quiet, on_epoch=on_epoch)
    return TrainingRun(out, table)


def _data_access(data_dir: str | None, stream: str, memory_budget: float | None, bad_images: str):
    """How the run's machine reads its dataset (``ppsearch.data.streaming.DataAccess``)."""
    from .data.streaming import DataAccess

    return DataAccess(data_dir, stream, memory_budget, bad_images)
