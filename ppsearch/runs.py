"""A run as an object: :func:`open_run` reads a run directory into a :class:`Run` (a search,
``ppsearch run``) or a :class:`TrainingRun` (one configuration over seeds, ``ppsearch train``).

A ``Run`` shows what ``ppsearch report`` shows, computed by the report's own functions, so the two
always agree: the configurations, the validation front with its test estimates, the verdicts, the
figures by name; and what ``ppsearch pick`` and a comparison of runs give. Nothing here imports
torch: reading a run is as light as its report.
"""
from __future__ import annotations

import functools
import html
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import plotly.graph_objects as go

from .config import typed_config
from .errors import UserError
from .reporting.compare import comparison_tables, load_runs, mixing_note, shared_objectives
from .reporting.figures import INACTIVE, shown_design
from .reporting.report import (
    RunAnalysis,
    check_validation_columns,
    checked_analysis,
    config_table,
    front_overview,
    html_table,
    report_figures,
    run_context,
)
from .rundir import (
    CE_PREFIX,
    FINAL_STATUSES,
    RECORDS_STEM,
    RUN_FILE,
    Column,
    RunSettings,
    TrialStatus,
    completed,
    open_study,
    read_run,
    read_table,
    status_counts,
)
from .selection.pick import pick
from .selection.statistics import seed_summary

if TYPE_CHECKING:
    import optuna


def open_run(path: str | Path) -> Run | TrainingRun:
    """The run in the folder ``path``: a :class:`Run` for a search (``ppsearch run``), a
    :class:`TrainingRun` for one configuration trained over seeds (``ppsearch train``). A folder that
    holds neither, or a run written by a newer ppsearch, is a one-line
    :class:`~ppsearch.errors.UserError` naming the folder."""
    path = Path(path)
    if (path / f"{RECORDS_STEM}.parquet").is_file() and not (path / RUN_FILE).is_file():
        return TrainingRun(path, read_table(path, RECORDS_STEM))
    table, settings = read_run(path)
    return Run(path, settings, table)


class Run:
    """A search run in the folder ``path``: its ``settings`` (``run.json``) and its results ``table``
    (one row per trial), and the report's views of them. The views need a completed trial and the test values of the
    configurations a report states (the search measures them when it ends); until then they say
    why not, in one line."""

    def __init__(self, path: str | Path, settings: RunSettings, table: pd.DataFrame) -> None:
        self.path = Path(path)
        self.settings = settings
        self.table = table

    def __repr__(self) -> str:
        return (f"<ppsearch.Run {self.path}: space {Path(self.settings.space).stem}, dataset {self.settings.dataset}, "
                f"budget {self.settings.budget}, {len(self.table)} trials>")

    @functools.cached_property
    def _analysis(self) -> RunAnalysis:
        return checked_analysis(self.table, self.settings, self.path)

    def configurations(self) -> pd.DataFrame:
        """One row per configuration: its design, the seeds that estimate it, each objective's test
        mean with its 95% interval (a searched configuration's selected seed apart, never averaged
        in) and its validation mean (the report's ``configurations`` table)."""
        return self._analysis.summary.copy()  # a copy, as every table here: changing it leaves the run's intact

    def front(self) -> pd.DataFrame:
        """The validation front's configurations with their test estimates (the report's ``front``
        table): selected on validation images, estimated on the test split."""
        analysis = self._analysis
        return config_table(analysis.summary, analysis.front_ids, analysis.objectives)

    def verdicts(self) -> pd.DataFrame:
        """Each front configuration against each paper configuration (the report's ``verdicts``
        table): the verdict at the run's level, the seeds of each side, each objective's difference
        with its 95% interval, and the adjusted p-value."""
        return self._analysis.verdicts.copy()

    @functools.cached_property
    def _figures(self) -> dict[str, go.Figure]:
        return report_figures(self.path, self.table, self._analysis)

    def figures(self) -> list[str]:
        """The names of this run's figures, in the report's order: ``forest``, ``front`` (clean
        error against the next objective; ``front-<objective>`` the others, ``front-3d``), ``cost``,
        ``search``, ``hypervolume`` (the search's progress), ``parallel``, ``corruptions``,
        ``perturbations``, ``importance``: those the run has data for."""
        return list(self._figures)

    def figure(self, name: str) -> go.Figure:
        """The report's figure ``name`` (one of :meth:`figures`), as a plotly figure of its own."""
        if name not in self._figures:
            raise UserError(f"{self.path}: no figure {name!r}; this run's figures: {', '.join(self._figures)}")
        return go.Figure(self._figures[name])  # a copy: changing it leaves the run's own intact

    @functools.cached_property
    def study(self) -> optuna.Study:
        """The run's Optuna study (in ``optuna.journal``)."""
        return open_study(self.path)

    def pick(self, *, weights: Sequence[float] | None = None, max_clean_error_increase: float | None = None,
             max_latency_ms: float | None = None, max_flops_ratio: float | None = None) -> dict[str, Any]:
        """The configuration ``ppsearch pick`` chooses from the validation front, as it prints it:
        configuration keys with their values, ready for :func:`ppsearch.apply_design`. Without
        ``weights`` the knee of the front, with them (one per objective) the least weighted sum;
        the limits drop candidates first (see :func:`ppsearch.selection.pick.pick`)."""
        check_validation_columns(self.table, self.settings.objectives, self.path)
        return typed_config(pick(self.table, self.settings.objectives, weights=weights,
                                 max_clean_error_increase=max_clean_error_increase, max_latency_ms=max_latency_ms,
                                 max_flops_ratio=max_flops_ratio))

    def compare(self, *other_runs: Run | str | Path) -> dict[str, pd.DataFrame]:
        """This run beside ``other_runs`` (runs or their folders), as ``ppsearch report`` of several
        runs compares them, by table: ``hypervolume`` (each run's, at one shared reference point),
        ``designs_across_runs`` (each design's Pareto rank in each run), ``same_configuration``
        (the designs several runs trained on one architecture). Runs measured on other data or
        under another protocol are compared with a warning: compare their orderings, not values."""
        if not other_runs:
            raise UserError("compare: name at least one other run")
        runs = load_runs([self.path, *(other.path if isinstance(other, Run) else other for other in other_runs)])
        note = mixing_note(runs)
        if note:
            warnings.warn(note, stacklevel=2)
        return comparison_tables(runs, shared_objectives(runs))

    def _repr_html_(self) -> str:
        """A notebook's view: what the run is (dataset, budget, trials by status) and its front."""
        try:
            front = html_table(front_overview(self.front(), self._analysis.objectives))
        except UserError as why_not:
            front = f"<p>{html.escape(str(why_not))}</p>"
        return (f"<div><p><b>ppsearch run</b> {html.escape(str(self.path))}: "
                f"{run_context(self.settings, self.table, self.settings.objectives)}</p>"
                f"<p>The validation front, with test estimates (mean and 95% interval over the seeds that estimate "
                f"each configuration):</p>{front}</div>")


# what `ppsearch train` summarises over its seeds, besides each corruption's CE
TRAINING_METRICS = (Column.CLEAN_ERROR, Column.MCE, Column.RELATIVE_MCE, Column.MFR, Column.CORRUPTION_ERROR,
                    Column.FIRST_LAYER_WEIGHT_SPARSITY, Column.FIRST_LAYER_RESPONSE_SPARSITY, Column.TRAIN_SECONDS,
                    Column.IMAGES_PER_SECOND)


class TrainingRun:
    """One configuration trained over seeds (``ppsearch train``): its records ``table``, one row per
    seed, each holding the trial's configuration, budget and measurements."""

    def __init__(self, path: str | Path, table: pd.DataFrame) -> None:
        self.path = Path(path)
        self.table = table

    def __repr__(self) -> str:
        return f"<ppsearch.TrainingRun {self.path}: {len(self.table)} seed(s)>"

    def summary(self) -> pd.DataFrame:
        """Each metric over the completed seeds: mean, 95% interval half-width and seeds (what
        ``ppsearch train`` prints)."""
        ce_columns = [c for c in self.table.columns if c.startswith(CE_PREFIX)]
        return seed_summary(self.table[self.table[Column.STATUS] == TrialStatus.COMPLETED],
                            TRAINING_METRICS + tuple(ce_columns))

    def _repr_html_(self) -> str:
        """A notebook's view: the configuration, its dataset and budget, seeds by status, the summary."""
        first = self.table.iloc[0]
        design = ", ".join(f"{k} {v}" for k, v in shown_design(first).items() if v != INACTIVE)
        done = completed(self.table)
        return (f"<div><p><b>ppsearch training run</b> {html.escape(str(self.path))}: {html.escape(str(first['arch']))} "
                f"({html.escape(design)}) on <b>{first['dataset']}</b>, budget <b>{first['budget']}</b>; "
                f"{len(self.table)} seed(s) ({status_counts(self.table, FINAL_STATUSES)}).</p>"
                + (html_table(self.summary()) if len(done) else "<p>no seed completed</p>") + "</div>")
