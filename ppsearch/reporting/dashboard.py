"""`ppsearch dashboard`: the report's views as a live Dash app on 127.0.0.1 that rereads the run's
results table every few seconds, so it follows a search while it runs, with filters by dimension;
given several runs, the comparison report's views of them, refreshed the same way.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html

from ..constraints import parse_constraints
from ..errors import UserError
from ..rundir import RESULTS_STEM, Column, TrialStatus, completed, read_settings, status_counts
from ..selection.pareto import untested_reported
from ..selection.uncertainty import UNTESTED
from .compare import comparison_figures, design_ranks, load_runs, mixing_note, shared_objectives
from .figures import run_figures, search_figures
from .report import analyse, check_validation_columns, config_table, display_verdicts, verdict_summary, volume_text

FILTER_KEYS = ("arch", "placement", "variant", "antialias", "augmentation", "trainable_alpha")
FAILURE_COLUMNS = (Column.TRIAL_ID, Column.ORIGIN, Column.FAILURE_REASON)
REFRESH_MS = 5000


class View(NamedTuple):
    """What the dashboard shows of one run now."""

    status: str  # leads with the verdicts, or says why there is nothing to analyse yet
    figures: list[go.Figure]
    verdicts: pd.DataFrame | None  # None (and front None): nothing analysed yet, so neither section is shown
    front: pd.DataFrame | None
    failures: pd.DataFrame  # the failed trials shown, with their reasons
    everything: pd.DataFrame  # the unfiltered table (the filters' choices)


# while a search runs, only its trials' validation values exist
SEARCHING = ("searching: every trial is measured on validation images; the test values of the validation front's and "
             "the papers' configurations are measured when the search ends")


def views(run_dir: Path, filters: dict[str, list[str]]) -> View:
    """What the dashboard shows now for the trials that pass ``filters`` (dimension -> allowed
    values; empty: all). Before a trial completes (every one failed, or none has ended) it is the
    run's state: the trials by status and why the failed ones failed."""
    settings = read_settings(run_dir)
    path = run_dir / f"{RESULTS_STEM}.parquet"
    if not path.is_file():  # the search writes it when its first trial ends
        return View("no trial has ended yet: no completed trial yet", [], None, None, pd.DataFrame(), pd.DataFrame())
    everything = pd.read_parquet(path)
    table = everything
    for key, values in filters.items():
        if values and key in table:
            table = table[table[key].map(str).isin(values)]
    status = f"{len(table)} of {len(everything)} trials shown: {status_counts(table)}"
    failures = table[table[Column.STATUS] == TrialStatus.FAILED].reindex(columns=FAILURE_COLUMNS)
    if completed(table).empty:
        return View(status + "; no completed trial yet", [], None, None, failures, everything)
    try:
        check_validation_columns(table, settings.objectives, run_dir)
    except UserError as error:
        return View(f"{status}; {error}", [], None, None, failures, everything)
    if not set(settings.objectives) <= set(table) or len(untested_reported(table, settings.objectives)):
        return View(f"{status}; {SEARCHING}", list(search_figures(table, settings.objectives).values()), None, None,
                    failures, everything)
    analysis = analyse(table, settings)
    figures = list(run_figures(table, analysis.summary, analysis.front_ids, analysis.objectives,
                               parse_constraints(settings.constraints)).values())
    status += (f"; validation front of {len(analysis.front_ids)}; test estimates over the seeds that estimate each "
               f"configuration (selected seeds apart); the front's test hypervolume {volume_text(analysis.volume)}. "
               f"{verdict_summary(analysis)}")
    return View(status, figures, display_verdicts(analysis),
                config_table(analysis.summary, analysis.front_ids, analysis.objectives), failures, everything)


def comparison_views(run_dirs: Sequence[Path]) -> tuple[str, list[go.Figure], pd.DataFrame]:
    """What the dashboard shows for several runs: a status line, the comparison figures and the
    designs' ranks across the runs (the runs that have no completed trial yet are waited for)."""
    try:
        runs = load_runs(run_dirs)
    except UserError as waiting:
        return f"waiting: {waiting}", [], pd.DataFrame()
    objectives = shared_objectives(runs)
    note = mixing_note(runs)
    status = "; ".join(f"{r.name}: {len(r.table)} trials ({status_counts(r.table)})" for r in runs)
    return (status + (f". {note}" if note else ""), comparison_figures(runs, objectives, note),
            design_ranks(runs, objectives))


def create_app(run_dirs: Sequence[str | Path]) -> Dash:
    """The dashboard of one run (with filters by dimension) or of several runs compared."""
    run_dirs = [Path(d) for d in run_dirs]
    for run_dir in run_dirs:
        read_settings(run_dir)  # a run directory, or a one-line error
    single = len(run_dirs) == 1
    filters = FILTER_KEYS if single else ()
    title = f"ppsearch: {', '.join(d.name for d in run_dirs)}"
    app = Dash(__name__, title=title)
    app.layout = html.Div(style={"fontFamily": "sans-serif", "margin": "1em 2em"}, children=[
        html.H1(title),
        html.Div(id="status"),
        html.Div([dcc.Dropdown(id=f"filter-{key}", multi=True, placeholder=key,
                               style={"minWidth": "180px", "display": "inline-block", "marginRight": "8px"})
                  for key in filters], style={"margin": "1em 0"}),
        dcc.Interval(id="tick", interval=REFRESH_MS),
        html.Div(id="verdicts"),
        html.Div(id="figures"),
        html.Div(id="front"),
        html.Div(id="failures"),
    ])

    @app.callback(Output("status", "children"), Output("verdicts", "children"), Output("figures", "children"),
                  Output("front", "children"), Output("failures", "children"),
                  *[Output(f"filter-{key}", "options") for key in filters],
                  Input("tick", "n_intervals"), *[Input(f"filter-{key}", "value") for key in filters])
    def refresh(_, *values):
        if not single:
            status, figures, ranks = comparison_views(run_dirs)
            return (status, [], [dcc.Graph(figure=f) for f in figures],
                    [html.H2("designs across runs (rank on validation values, 1 = on the front)"), _table(ranks)], [])
        view = views(run_dirs[0], dict(zip(filters, values)))
        options = [sorted(view.everything[key].dropna().map(str).unique()) if key in view.everything else []
                   for key in filters]
        analysed = view.front is not None
        return (view.status,
                [html.H2("verdicts: the front against the papers"), *_verdict_tables(view.verdicts)] if analysed else [],
                [dcc.Graph(figure=f) for f in view.figures],
                [html.H2("front"), _table(view.front)] if analysed else [],
                [html.H2("failed trials"), _table(view.failures)] if len(view.failures) else [],
                *options)

    return app


def _table(frame: pd.DataFrame) -> html.Table:
    rows = [html.Tr([html.Th(c) for c in frame.columns])] + [
        html.Tr([html.Td(_cell(v)) for v in row])
        for row in frame.itertuples(index=False)]
    return html.Table(rows)


def _cell(value: object) -> str:
    """A table cell's text: a missing value (a failed trial without a reason) is an empty cell."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _verdict_tables(verdicts: pd.DataFrame) -> list:
    """The tested comparisons as a table, those with too few seeds folded away (as in the report)."""
    if verdicts.empty:
        return []
    untested = verdicts["verdict"] == UNTESTED
    parts = [_table(verdicts[~untested])] if (~untested).any() else []
    if untested.any():
        parts.append(html.Details([html.Summary(f"{int(untested.sum())} comparison(s) not tested: fewer than two "
                                                f"seeds a side"), _table(verdicts[untested])]))
    return parts

