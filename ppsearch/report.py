"""`ppsearch report`: one self-contained HTML file (plotly.js embedded once, works offline) about a
run, plus its tables as markdown and CSV.

Sections: Pareto fronts (clean error vs mCE, clean error vs mFR, and all three in 3D) with the
papers' configurations labelled; hypervolume over the trials; parallel coordinates of dimensions
against objectives; CE per corruption and FP per perturbation for the front; dimension importance
(Optuna's default evaluator on the run's study); the front as a table; which paper
configurations the search dominated; the papers' reported numbers beside ours; seed counts and
95% intervals where a configuration was trained more than once.
"""
from __future__ import annotations

import datetime
import html
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from . import pareto
from .results import mean_ci
from .trial import CONFIG_KEYS

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


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """The results table and settings of a run directory (one-line errors for what is missing)."""
    run_dir = Path(run_dir)
    path, settings_path = run_dir / "results.parquet", run_dir / "run.json"
    if not path.is_file() or not settings_path.is_file():
        raise ValueError(f"{run_dir} has no results table (results.parquet and run.json); "
                         f"is it a `ppsearch run` directory?")
    table = pd.read_parquet(path)
    missing = [c for c in ("trial_id", "origin", "status") if c not in table]
    if missing:
        raise ValueError(f"{path} lacks column {missing[0]!r}: it was written by an older ppsearch; "
                         f"rerun the search command on the directory to rebuild it")
    if not (table["status"] == "completed").any():
        raise ValueError(f"{path} has no completed trial yet: nothing to report")
    return table, json.loads(settings_path.read_text())


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    run_dir = Path(run_dir)
    table, settings = load_run(run_dir)
    objectives = tuple(o for o in settings["objectives"] if o in table)
    front = pareto.front(table, objectives).sort_values(list(objectives))
    reference = pareto.reference_point(table, objectives)
    importance = _importance_figure(run_dir, settings, objectives)
    figures = run_figures(table, front, objectives, reference) + ([importance] if importance is not None else [])
    tables = {
        "front": config_table(front, objectives),
        "dominated_papers": pareto.dominated_papers(table, objectives),
        "paper_reproduction": _reproduction_table(table, objectives),
        "seeds": _seed_table(table, objectives),
    }
    out = Path(out or run_dir / "report.html")
    out.parent.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(out.with_name(f"{out.stem}-{name}.csv"), index=False)
    (out.with_suffix(".md")).write_text(_markdown(run_dir, settings, table, tables, reference, objectives))
    body = [f"<h1>ppsearch report: {html.escape(run_dir.name)}</h1>", _summary_html(settings, table, reference, objectives)]
    for i, figure in enumerate(figures):
        body.append(figure.to_html(full_html=False, include_plotlyjs=(i == 0), default_height=520))
    for name, frame in tables.items():
        body.append(f"<h2>{name.replace('_', ' ')}</h2>" + (frame.to_html(index=False, float_format=lambda v: f"{v:.4f}",
                                                                          na_rep="", border=0) if len(frame) else "<p>none</p>"))
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text("<!doctype html><html><head><meta charset='utf-8'><title>ppsearch report</title><style>"
                   "body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
                   "font-size:13px}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}</style>"
                   "</head><body>" + "\n".join(body) + "</body></html>")
    tmp.replace(out)
    return out


def run_figures(table: pd.DataFrame, front: pd.DataFrame, objectives: Sequence[str], reference) -> list[go.Figure]:
    """The views of a run that the report and the dashboard share (importance needs the study and
    is the report's alone)."""
    return [figure for figure in (
        *_front_figures(table, front, objectives),
        _history_figure(table, objectives, reference),
        _parallel_figure(table, objectives),
        _heatmap(front, "ce/", "CE per corruption on the front"),
        _heatmap(front, "fp/", "flip probability per perturbation on the front"),
    ) if figure is not None]


def _label(table: pd.DataFrame) -> pd.Series:
    return table["origin"].where(table["origin"] != "searched", table["trial_id"])


def _front_figures(table: pd.DataFrame, front: pd.DataFrame, objectives: Sequence[str]) -> list[go.Figure]:
    done = pareto.completed(table, objectives).assign(
        kind=lambda t: t["origin"].map(lambda o: "paper" if str(o).startswith("paper:") else "searched"),
        front=lambda t: t["trial_id"].isin(front["trial_id"]).map({True: f"on the {len(objectives)}-objective front",
                                                                     False: "dominated"}),
        label=lambda t: _label(t))
    hover = [c for c in ("placement", "variant", "scale", "alpha", "antialias", "augmentation") if c in done]
    figures = []
    for y in [o for o in objectives if o != "clean_error"] if "clean_error" in objectives else []:
        figure = px.scatter(done, x="clean_error", y=y, color="kind", symbol="front", hover_name="label",
                            hover_data=hover, text=done["label"].where(done["kind"] == "paper", ""),
                            title=f"Pareto front: clean error vs {y}")
        figure.update_traces(textposition="top center", textfont_size=9)
        pair = pareto.front(done, ["clean_error", y]).sort_values("clean_error")
        figure.add_trace(go.Scatter(x=pair["clean_error"], y=pair[y], mode="lines", line_shape="hv",
                                    name=f"front of clean error and {y}", line=dict(dash="dot", color="grey")))
        figures.append(figure)
    if len(objectives) >= 3:
        x, y, z = objectives[:3]
        figures.append(px.scatter_3d(done, x=x, y=y, z=z, color="kind", symbol="front", hover_name="label",
                                     hover_data=hover, title=f"Pareto front in 3D: {x}, {y}, {z}"))
    return figures


def _history_figure(table: pd.DataFrame, objectives: Sequence[str], reference) -> go.Figure | None:
    if "finished_at" not in table:
        return None
    history = pareto.hypervolume_history(table, objectives, reference)
    return px.line(history, x="trial", y="hypervolume", markers=True, hover_data=["trial_id"],
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


def _importance_figure(run_dir: Path, settings: dict, objectives: Sequence[str]) -> go.Figure | None:
    import optuna

    journal = run_dir / "optuna.journal"
    if not journal.is_file():
        return None
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name=settings["study_name"], storage=storage)
    if len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) < 2:
        return None
    rows = []
    for i, objective in enumerate(settings["objectives"]):
        try:
            with warnings.catch_warnings():  # the evaluator reminds that low values are the goal: they are
                warnings.simplefilter("ignore", UserWarning)
                importances = optuna.importance.get_param_importances(study, target=lambda t, i=i: t.values[i])
        except (ValueError, RuntimeError):  # too few trials, or one dimension never varied
            return None
        rows += [{"objective": objective, "dimension": k, "importance": v} for k, v in importances.items()]
    return px.bar(pd.DataFrame(rows), x="dimension", y="importance", color="objective", barmode="group",
                  title="dimension importance (Optuna's default evaluator, per objective)")


def config_table(front: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    keys = [k for k in CONFIG_KEYS if k in front]
    return front[["trial_id", "origin", *objectives, *keys]].reset_index(drop=True)


def _reproduction_table(table: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    done = table[(table["status"] == "completed") & table["origin"].astype(str).str.startswith("paper:")]
    metrics = [m for m in ("clean_error", "mce", "relative_mce", "mfr") if m in done]
    rows = []
    for origin, group in done.groupby("origin", sort=False):
        name = origin.removeprefix("paper:")
        reported = PAPER_REPORTED.get(name, {})
        row = {"configuration": name, "seeds": len(group)}
        for m in metrics:
            row[f"{m} (ours)"] = group[m].mean()
            row[f"{m} (paper)"] = reported.get(m)
        rows.append(row)
    return pd.DataFrame(rows)


def _seed_table(table: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    done = pareto.completed(table, objectives)
    keys = [k for k in CONFIG_KEYS if k in done]
    rows = []
    for _, group in done.groupby(done[keys].map(repr).agg("|".join, axis=1), sort=False):
        if len(group) < 2:
            continue
        row = {"origin": group["origin"].iloc[0], "seeds": len(group)}
        for o in objectives:
            row[o], row[f"{o} ci95"] = mean_ci(group[o])
        rows.append(row)
    return pd.DataFrame(rows, columns=["origin", "seeds", *[c for o in objectives for c in (o, f"{o} ci95")]])


def _summary_html(settings: dict, table: pd.DataFrame, reference, objectives: Sequence[str]) -> str:
    counts = table["status"].value_counts()
    dataset, budget = settings.get("dataset", "?"), settings.get("budget", "?")
    overrides = settings.get("budget_overrides") or {}
    overrides = f" ({html.escape(', '.join(f'{k}={v}' for k, v in overrides.items()))})" if overrides else ""
    return (f"<p>space <b>{html.escape(Path(str(settings.get('space', '?'))).stem)}</b>, dataset <b>{dataset}</b>, "
            f"budget <b>{budget}</b>{overrides}, sampler "
            f"{settings.get('sampler')}, scheduler {settings.get('scheduler')}; {len(table)} trials: "
            f"{counts.get('completed', 0)} completed, {counts.get('pruned', 0)} pruned, {counts.get('failed', 0)} "
            f"failed. Objectives {', '.join(objectives)} (all minimised); hypervolume reference point "
            f"{[round(float(r), 4) for r in reference]} (1.1 x the worst paper configuration). The paper "
            f"reported {PAPER_SETTING}; this run used {dataset} at budget {budget}, so compare the "
            f"ordering of configurations, not the values. Written "
            f"{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}.</p>")


def _markdown(run_dir: Path, settings: dict, table: pd.DataFrame, tables: dict[str, pd.DataFrame], reference,
              objectives: Sequence[str]) -> str:
    parts = [f"# ppsearch report: {run_dir.name}", "",
             f"{len(table)} trials; objectives {', '.join(objectives)}; hypervolume "
             f"{pareto.hypervolume(table, objectives, reference):.4f} at reference {[round(float(r), 4) for r in reference]}.", ""]
    for name, frame in tables.items():
        parts += [f"## {name.replace('_', ' ')}", "", frame.to_markdown(index=False, floatfmt=".4f") if len(frame) else "none", ""]
    return "\n".join(parts)
