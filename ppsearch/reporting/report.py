"""`ppsearch report`: one self-contained HTML file (plotly.js embedded once, works offline) about a
run, plus its tables as markdown and CSV.

The selection is the validation front (the search trials that no other dominates on the values
measured on held-out validation images); everything shown about it is measured on the test split.
Sections: Pareto plots (clean error vs mCE, clean error vs mFR, and all three in 3D) of every
configuration's mean over its seeds with 95% intervals, coloured by placement, marked by origin;
hypervolume over the trials; parallel coordinates of dimensions against objectives; CE per
corruption and FP per perturbation for the front; dimension importance (Optuna's default evaluator
on the run's study); the front as a table (mean +- interval, seeds, the validation values it was
selected on); for each paper configuration and each front configuration, the probability that the
latter dominates (``reporting.uncertainty``); the papers' reported numbers beside ours; every
configuration over its seeds.
"""
from __future__ import annotations

import datetime
import html
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from ..config import CONFIG_KEYS
from ..files import write_text
from ..rundir import (
    CE_PREFIX,
    FINAL_STATUSES,
    FP_PREFIX,
    JOURNAL_FILE,
    PROCEDURAL_FROST,
    Column,
    RunSettings,
    TrialStatus,
    is_paper,
    load_run,
    origin_kind,
    paper_name,
    search_trials,
    status_counts,
    torn_journal_tail,
    validation_column,
)
from . import pareto
from .uncertainty import (
    DEFAULT_DOMINANCE_THRESHOLD,
    METHOD,
    configurations,
    dominance_table,
    hypervolume_interval,
)

# What the seed paper reported on CIFAR-10 (Table 1: E, mCE, rCE, mFR normalised by its AlexNet;
# Table 4: clean error of the anti-aliased ResNet-20 variants), keyed by the spaces' preset names.
PAPER_REPORTED = {
    "resnet20": {"clean_error": 0.0756, "mce": 1.07, "relative_mce": 1.79, "mfr": 1.06},
    "resnet20-pp": {"clean_error": 0.0829, "mce": 1.04, "relative_mce": 1.68, "mfr": 1.07},
    "resnet20-b1": {"clean_error": 0.0832, "mce": 0.98, "relative_mce": 1.52, "mfr": 0.96},
    "resnet20-lpf2": {"clean_error": 0.0737}, "resnet20-lpf3": {"clean_error": 0.0793},
    "resnet20-lpf5": {"clean_error": 0.0798}, "resnet20-pp-lpf2": {"clean_error": 0.0795},
    "resnet20-pp-lpf3": {"clean_error": 0.0778}, "resnet20-pp-lpf5": {"clean_error": 0.0845},
    "resnet20-b1-lpf2": {"clean_error": 0.082}, "resnet20-b1-lpf3": {"clean_error": 0.0845},
    "resnet20-b1-lpf5": {"clean_error": 0.0793},
    "densenet-40-12": {"clean_error": 0.0633, "mce": 1.05, "relative_mce": 1.77, "mfr": 1.00},
    "densenet-40-12-pp": {"clean_error": 0.0713, "mce": 1.01, "relative_mce": 1.64, "mfr": 0.967},
    "densenet-40-12-b1": {"clean_error": 0.0716, "mce": 0.98, "relative_mce": 1.59, "mfr": 0.97},
    "densenet-100-24": {"clean_error": 0.0388, "mce": 0.81, "relative_mce": 1.44, "mfr": 0.66},
    "densenet-100-24-pp": {"clean_error": 0.045, "mce": 0.75, "relative_mce": 1.28, "mfr": 0.61},
    "densenet-100-24-b1": {"clean_error": 0.0427, "mce": 0.73, "relative_mce": 1.27, "mfr": 0.57},
}
PAPER_SETTING = "CIFAR-10, full training set, 200 epochs (DenseNet 350), all 10,000 test images"


def write_report(run_dir: str | Path, out: str | Path | None = None,
                 dominance_threshold: float = DEFAULT_DOMINANCE_THRESHOLD) -> Path:
    run_dir = Path(run_dir)
    table, settings = load_run(run_dir)
    objectives = tuple(o for o in settings.objectives if o in table)
    front = pareto.validation_front(table, objectives)
    reference = pareto.reference_point(table, objectives)
    importance = _importance_figure(run_dir, settings)
    figures = run_figures(table, front, objectives, reference) + ([importance] if importance is not None else [])
    volume = hypervolume_interval(table, objectives, list(front[Column.TRIAL_ID]), reference)
    tables = {
        "front": config_table(table, front, objectives),
        "dominated_papers": dominance_table(table, objectives, list(front[Column.TRIAL_ID]), dominance_threshold),
        "paper_reproduction": _reproduction_table(table),
        "configurations": configurations(table, objectives),
    }
    out = Path(out or run_dir / "report.html")
    out.parent.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(out.with_name(f"{out.stem}-{name}.csv"), index=False)
    write_text(out.with_suffix(".md"), _markdown(run_dir, table, tables, reference, objectives, volume))
    body = [f"<h1>ppsearch report: {html.escape(run_dir.name)}</h1>",
            _summary_html(settings, table, reference, objectives, volume, dominance_threshold)]
    for i, figure in enumerate(figures):
        body.append(figure.to_html(full_html=False, include_plotlyjs=(i == 0), default_height=520))
    for name, frame in tables.items():
        body.append(f"<h2>{name.replace('_', ' ')}</h2>" + html_table(frame))
    write_text(out, html_page("ppsearch report", body))
    return out


def html_page(title: str, body: Sequence[str]) -> str:
    """A self-contained page of ``body`` fragments in the reports' style."""
    return ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
            "font-size:13px}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}</style>"
            "</head><body>" + "\n".join(body) + "</body></html>")


def html_table(frame: pd.DataFrame) -> str:
    rendered = frame.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="", border=0)
    return rendered if len(frame) else "<p>none</p>"


def run_figures(table: pd.DataFrame, front: pd.DataFrame, objectives: Sequence[str], reference) -> list[go.Figure]:
    """The views of a run that the report and the dashboard share (importance needs the study and
    is the report's alone)."""
    return [figure for figure in (
        *_front_figures(table, front, objectives),
        _search_figure(table),
        _history_figure(table, objectives, reference),
        _parallel_figure(table, objectives),
        _heatmap(front, CE_PREFIX, "CE per corruption on the front"),
        _heatmap(front, FP_PREFIX, "flip probability per perturbation on the front"),
    ) if figure is not None]


def _label(table: pd.DataFrame) -> pd.Series:
    return table[Column.ORIGIN].where(table[Column.ORIGIN].map(is_paper).astype(bool), table[Column.TRIAL_ID])


def _front_figures(table: pd.DataFrame, front: pd.DataFrame, objectives: Sequence[str]) -> list[go.Figure]:
    """Every configuration's mean over its seeds (test split) with 95% intervals on both axes,
    coloured by placement, marked by origin; the validation front's configurations labelled."""
    summary = configurations(table, objectives)
    if summary.empty:
        return []
    selected = set(front[Column.TRIAL_ID])
    summary = summary.assign(
        kind=lambda t: t[Column.ORIGIN].map(origin_kind),
        selected=lambda t: t[Column.CONFIG_ID].isin(selected).map({True: "on the validation front", False: ""}),
        label=lambda t: t[Column.ORIGIN].where(t[Column.ORIGIN].map(is_paper).astype(bool), t[Column.CONFIG_ID]),
        placement=lambda t: t["placement"].astype(str) if "placement" in t else "?")
    hover = [c for c in ("seeds", "selected", "variant", "scale", "alpha", "antialias", "augmentation") if c in summary]
    figures = []
    for y in [o for o in objectives if o != Column.CLEAN_ERROR] if Column.CLEAN_ERROR in objectives else []:
        figure = px.scatter(summary, x=Column.CLEAN_ERROR, y=y, color="placement", symbol="kind", hover_name="label",
                            hover_data=hover, error_x=f"{Column.CLEAN_ERROR} ci95", error_y=f"{y} ci95",
                            text=summary["label"].where((summary["kind"] == "paper") | (summary["selected"] != ""), ""),
                            title=f"clean error vs {y}: mean over seeds, 95% intervals (test split)")
        figure.update_traces(textposition="top center", textfont_size=9)
        # the axes frame the means; an interval wider than that (two seeds give wide ones) runs off
        figure.update_xaxes(range=_padded_range(summary[Column.CLEAN_ERROR]))
        figure.update_yaxes(range=_padded_range(summary[y]))
        pair = pareto.nondominated(summary, [Column.CLEAN_ERROR, y]).sort_values(Column.CLEAN_ERROR)
        figure.add_trace(go.Scatter(x=pair[Column.CLEAN_ERROR], y=pair[y], mode="lines", line_shape="hv",
                                    name=f"front of the means on clean error and {y}",
                                    line=dict(dash="dot", color="grey")))
        figures.append(figure)
    if len(objectives) >= 3:
        x, y, z = objectives[:3]
        figures.append(px.scatter_3d(summary, x=x, y=y, z=z, color="placement", symbol="kind", hover_name="label",
                                     hover_data=hover, title=f"{x}, {y}, {z}: means over seeds (test split)"))
    return figures


def _padded_range(values: pd.Series, margin: float = 0.15) -> list[float]:
    low, high = float(values.min()), float(values.max())
    pad = margin * (high - low) if high > low else 0.05 * max(abs(high), 1e-3)
    return [low - pad, high + pad]


def _search_figure(table: pd.DataFrame) -> go.Figure | None:
    """What the search tried: every search trial at the last point it was measured on validation
    images (a completed one at the end of its budget, a pruned one, faded, at the rung it reached)."""
    search = search_trials(table)
    completed = search[Column.STATUS] == TrialStatus.COMPLETED
    pruned = search[Column.STATUS] == TrialStatus.PRUNED
    selection = validation_column(Column.CLEAN_ERROR)
    if selection not in search or Column.BUDGET_REACHED not in search:
        return None
    rung = search[Column.RUNG_CLEAN_ERROR] if Column.RUNG_CLEAN_ERROR in search else pd.Series(float("nan"), search.index)
    shown = search[completed | pruned].assign(
        **{selection: search[selection].where(completed, rung)},
        kind=lambda t: t[Column.ORIGIN].map(origin_kind),
        placement=lambda t: t["placement"].astype(str) if "placement" in t else "?",
    ).dropna(subset=[selection])
    if shown.empty:
        return None
    figure = px.scatter(shown, x=Column.BUDGET_REACHED, y=selection, color="placement", symbol="kind",
                        hover_name=Column.TRIAL_ID, hover_data=[Column.STATUS, Column.ORIGIN],
                        title="what the search tried: validation clean error at the epoch each trial reached "
                              "(pruned trials faded, at their rung)")
    # hover_data puts each point's status first in its customdata: pruned points are drawn faded
    figure.for_each_trace(lambda trace: trace.update(
        marker_opacity=[0.3 if point[0] == TrialStatus.PRUNED else 0.95 for point in trace.customdata],
        marker_size=11))
    return figure


def _history_figure(table: pd.DataFrame, objectives: Sequence[str], reference) -> go.Figure | None:
    if Column.FINISHED_AT not in table:
        return None
    history = pareto.hypervolume_history(table, objectives, reference)
    return px.line(history, x="trial", y="hypervolume", markers=True, hover_data=[Column.TRIAL_ID],
                   title="hypervolume over the completed trials")


def _parallel_figure(table: pd.DataFrame, objectives: Sequence[str]) -> go.Figure:
    done = pareto.completed(table, objectives)
    dimensions = []
    for key in CONFIG_KEYS:
        if key in done and done[key].map(str).nunique() > 1:
            values = done[key].map(str)
            codes = {v: i for i, v in enumerate(sorted(values.unique()))}
            dimensions.append(dict(label=key, values=values.map(codes), tickvals=list(codes.values()),
                                   ticktext=list(codes)))
    dimensions += [dict(label=o, values=done[o]) for o in objectives]
    return go.Figure(go.Parcoords(line=dict(color=done[objectives[0]], colorscale="Viridis", showscale=True),
                                  dimensions=dimensions)).update_layout(
        title="dimensions against objectives (colour: " + objectives[0] + ")")


def _heatmap(front: pd.DataFrame, prefix: str, title: str) -> go.Figure | None:
    columns = [c for c in front if c.startswith(prefix)]
    if not columns or front.empty:
        return None
    values = front[columns].astype(float)
    return px.imshow(values.to_numpy(), x=[c[len(prefix):] for c in columns], y=list(_label(front)),
                     color_continuous_scale="RdYlGn_r", aspect="auto", text_auto=".2f", title=title)


def _importance_figure(run_dir: Path, settings: RunSettings) -> go.Figure | None:
    import optuna

    journal = run_dir / JOURNAL_FILE
    if not journal.is_file() or torn_journal_tail(journal):  # a damaged study is repaired by the next `run`
        return None
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name=settings.study_name, storage=storage)
    if len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) < 2:
        return None
    rows = []
    for i, objective in enumerate(settings.objectives):
        try:
            with warnings.catch_warnings():  # the evaluator reminds that low values are the goal: they are
                warnings.simplefilter("ignore", UserWarning)
                importances = optuna.importance.get_param_importances(study, target=lambda t, i=i: t.values[i])
        except (ValueError, RuntimeError):  # too few trials, or one dimension never varied
            return None
        rows += [{"objective": objective, "dimension": k, "importance": v} for k, v in importances.items()]
    return px.bar(pd.DataFrame(rows), x="dimension", y="importance", color="objective", barmode="group",
                  title="dimension importance (Optuna's default evaluator, per objective)")


def config_table(table: pd.DataFrame, front: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The validation front's configurations: test means with 95% intervals and seed counts, beside
    the validation values they were selected on."""
    summary = configurations(table, objectives)
    if summary.empty:
        return summary
    return summary[summary[Column.CONFIG_ID].isin(front[Column.TRIAL_ID])].sort_values(list(objectives)) \
        .reset_index(drop=True)


def _reproduction_table(table: pd.DataFrame) -> pd.DataFrame:
    done = table[(table[Column.STATUS] == TrialStatus.COMPLETED) & table[Column.ORIGIN].map(is_paper).astype(bool)]
    metrics = [m for m in (Column.CLEAN_ERROR, Column.MCE, Column.RELATIVE_MCE, Column.MFR) if m in done]
    rows = []
    for origin, group in done.groupby(Column.ORIGIN, sort=False):
        name = paper_name(origin)
        reported = PAPER_REPORTED.get(name, {})
        row = {"configuration": name, "seeds": len(group)}
        for m in metrics:
            row[f"{m} (ours)"] = group[m].mean()
            row[f"{m} (paper)"] = reported.get(m)
        rows.append(row)
    return pd.DataFrame(rows)


def _summary_html(settings: RunSettings, table: pd.DataFrame, reference, objectives: Sequence[str],
                  volume: tuple[float, float, float], threshold: float) -> str:
    dataset, budget = settings.dataset, settings.budget
    if settings.image_size:
        dataset = f"{dataset} at {settings.image_size}x{settings.image_size}"
    overrides = settings.budget_overrides
    overrides = f" ({html.escape(', '.join(f'{k}={v}' for k, v in overrides.items()))})" if overrides else ""
    return (f"<p>space <b>{html.escape(Path(settings.space).stem)}</b>, dataset <b>{dataset}</b>, "
            f"budget <b>{budget}</b>{overrides}, sampler "
            f"{settings.sampler}, scheduler {settings.scheduler}; {len(table)} trials: "
            f"{status_counts(table, FINAL_STATUSES)}. Measured under the <b>{settings.protocol}</b> evaluation "
            f"protocol{_protocol_note(settings)}. {html.escape(frost_note(table))}"
            f"Objectives {', '.join(objectives)} (all minimised); "
            f"hypervolume of the front's means {_volume_text(volume)} at reference point "
            f"{[round(float(r), 4) for r in reference]} (1.1 x the worst paper configuration). "
            f"<b>Selection and reporting:</b> the front is selected on {settings.validation_fraction:g} of the "
            f"training split held out as validation images; every value shown is measured on the test split. "
            f"<b>Uncertainty:</b> {html.escape(METHOD)}; \"dominates\" means a probability of at least "
            f"{threshold:g}. Where intervals overlap, a difference between configurations is not shown by this "
            f"run{_budget_note(settings)}. The paper "
            f"reported {PAPER_SETTING}; this run used {dataset} at budget {budget}, so compare the "
            f"ordering of configurations, not the values. Written "
            f"{datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}.</p>")


def _volume_text(volume: tuple[float, float, float]) -> str:
    point, low, high = volume
    return f"{point:.4f}" + ("" if pd.isna(low) else f" (95% interval {low:.4f} to {high:.4f})")


def _budget_note(settings: RunSettings) -> str:
    if settings.budget in ("smoke", "demo"):
        return (f" (at the {settings.budget} budget, differences whose intervals overlap are not meaningful: it "
                f"shows the tool, not the science)")
    return ""


def _protocol_note(settings: RunSettings) -> str:
    if settings.protocol == "seed-paper":
        return " (the paper's: its numbers and ours compare)"
    return " (not the paper's: its reported numbers below were measured under the seed-paper protocol)"


def frost_note(table: pd.DataFrame) -> str:
    """What a table's frost is, when it is not the benchmark's: ppsearch's procedural frost makes
    frost CE, and every mCE that includes it, a different quantity."""
    if Column.FROST not in table:
        return ""
    procedural = table[Column.FROST].dropna().astype(str).str.startswith(PROCEDURAL_FROST)
    if not procedural.any():
        return ""
    return ("Frost: ppsearch's procedural frost, not the benchmark's textures (pass --frost-dir for those): "
            "ce/frost and every mCE here include it. ")


def _markdown(run_dir: Path, table: pd.DataFrame, tables: dict[str, pd.DataFrame], reference,
              objectives: Sequence[str], volume: tuple[float, float, float]) -> str:
    protocols = ", ".join(sorted(table[Column.PROTOCOL].dropna().unique())) if Column.PROTOCOL in table else "?"
    parts = [f"# ppsearch report: {run_dir.name}", "", f"Evaluation protocol: {protocols}. {frost_note(table)}", "",
             f"{len(table)} trials; objectives {', '.join(objectives)}; the front is selected on validation "
             f"images, every value is measured on the test split; hypervolume of the front's means "
             f"{_volume_text(volume)} at reference {[round(float(r), 4) for r in reference]}.", "",
             f"Uncertainty: {METHOD}.", ""]
    for name, frame in tables.items():
        rendered = frame.to_markdown(index=False, floatfmt=".4f") if len(frame) else "none"
        parts += [f"## {name.replace('_', ' ')}", "", rendered, ""]
    return "\n".join(parts)
