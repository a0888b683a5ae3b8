"""`ppsearch dashboard`: the report's views as a live Dash app on 127.0.0.1 that rereads the run's
results table every few seconds, so it follows a search while it runs, with filters by dimension;
given several runs, the comparison report's views of them, refreshed the same way.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html

from ..errors import UserError
from ..rundir import RESULTS_STEM, read_settings, status_counts
from . import pareto
from .compare import comparison_figures, design_ranks, load_runs, mixing_note, shared_objectives
from .report import config_table, run_figures

FILTER_KEYS = ("arch", "placement", "variant", "antialias", "augmentation", "trainable_alpha")
REFRESH_MS = 5000


def views(run_dir: Path, filters: dict[str, list[str]]) -> tuple[str, list[go.Figure], pd.DataFrame, pd.DataFrame]:
    """What the dashboard shows now: a status line, the figures and the front table of the trials
    that pass ``filters`` (dimension -> allowed values; empty: all), and the unfiltered table."""
    objectives = read_settings(run_dir).objectives
    path = run_dir / f"{RESULTS_STEM}.parquet"
    if not path.is_file():
        return "waiting for the first trial to finish ...", [], pd.DataFrame(), pd.DataFrame()
    everything = pd.read_parquet(path)
    table = everything
    for key, values in filters.items():
        if values and key in table:
            table = table[table[key].map(str).isin(values)]
    status = f"{len(table)} of {len(everything)} trials shown: {status_counts(table)}"
    done = pareto.completed(table, objectives)
    if done.empty:
        return status + "; no completed trial yet", [], pd.DataFrame(), everything
    front = pareto.validation_front(table, objectives)
    reference = pareto.reference_point(table, objectives)
    figures = run_figures(table, front, objectives, reference)
    status += (f"; validation front of {len(front)}; values shown are test-split means over seeds; hypervolume "
               f"{pareto.hypervolume(table, objectives, reference):.4f}")
    return status, figures, config_table(table, front, objectives), everything


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
        html.Div(id="figures"),
        html.H2("front" if single else "designs across runs (rank on validation values, 1 = on the front)"),
        html.Div(id="front"),
    ])

    @app.callback(Output("status", "children"), Output("figures", "children"), Output("front", "children"),
                  *[Output(f"filter-{key}", "options") for key in filters],
                  Input("tick", "n_intervals"), *[Input(f"filter-{key}", "value") for key in filters])
    def refresh(_, *values):
        if single:
            status, figures, front, everything = views(run_dirs[0], dict(zip(filters, values)))
            options = [sorted(everything[key].dropna().map(str).unique()) if key in everything else []
                       for key in filters]
        else:
            (status, figures, front), options = comparison_views(run_dirs), []
        rows = [html.Tr([html.Th(c) for c in front.columns])] + [
            html.Tr([html.Td(f"{v:.4f}" if isinstance(v, float) else str(v)) for v in row])
            for row in front.itertuples(index=False)]
        return (status, [dcc.Graph(figure=f) for f in figures], html.Table(rows), *options)

    return app
