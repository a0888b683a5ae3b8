"""The figures of a run that the report and the dashboard share: a forest plot per objective (the
front's and the papers' estimates side by side), the fronts, what the search tried, its progress,
the dimensions against the objectives, and CE / FP per corruption and perturbation on the front.

Figures stay readable at any seed count and any number of trials: intervals are drawn for the
front's and the papers' configurations only (other points are named on hover), labels are placed
where they overlap neither each other nor the points, and axes frame the estimates.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..config import CONFIG_KEYS, DESIGN_KEYS, Design
from ..constraints import Constraint
from ..rundir import (
    CE_PREFIX,
    FP_PREFIX,
    Column,
    TrialStatus,
    completed,
    is_paper,
    origin_kind,
    search_trials,
    validation_column,
)
from ..selection import pareto
from ..selection.pick import plain_paper
from ..selection.uncertainty import ci_column, configuration_id, selected_column, selected_rows

FIGURE_WIDTH, FIGURE_HEIGHT = 1000, 560  # what label placement assumes; the page is at least this wide
PLOT_MARGIN = dict(l=70, r=30, t=60, b=60)
MAX_CATEGORIES = 8  # a numeric dimension with more distinct values gets a scale, not one tick each
MAX_BAR_SHARE = 0.25  # of an axis's span: a wider interval is left to the forest plot
PAPER_COLOUR, FRONT_COLOUR, OTHER_COLOUR = "#4c72b0", "#dd8452", "#b0b0b0"
INACTIVE = "-"  # a design key that makes no difference to the configuration (plain models' pull keys)


def shown_design(row: pd.Series) -> dict[str, object]:
    """A configuration's design keys as a reader should see them: the keys that make no difference
    (``Design.signature``) shown as ``INACTIVE``, not as their unused defaults."""
    present = [k for k in DESIGN_KEYS if k in row]
    try:
        active = Design.from_mapping(row).signature()
    except ValueError:  # a row from another version of the schema: show what it holds
        return {k: row[k] for k in present}
    return {k: (active[k] if k in active else INACTIVE) for k in present}


def label(row: pd.Series) -> str:
    """A paper configuration by its name, a searched one by its id; a paper configuration that
    breaks a constraint of the run says so (it is a reference, never on the front)."""
    origin = str(row[Column.ORIGIN])
    name = origin.removeprefix("paper:") if is_paper(origin) else str(
        row[Column.CONFIG_ID] if Column.CONFIG_ID in row else row[Column.TRIAL_ID])
    return name + (" (over a constraint)" if row.get(Column.CONSTRAINT_VIOLATION, 0) > 0 else "")


def forest_figure(summary: pd.DataFrame, front_ids: Sequence[str], objectives: Sequence[str]) -> go.Figure | None:
    """Each front and paper configuration's mean with its 95% interval, one panel per objective,
    sorted by the first objective; a searched configuration's selected seed is drawn apart (an open
    diamond), since it is biased by the selection and not part of the estimate."""
    shown = summary[summary[Column.CONFIG_ID].isin(front_ids) | summary[Column.ORIGIN].map(is_paper).astype(bool)]
    shown = shown.assign(label=shown.apply(label, axis=1)).sort_values(objectives[0], ascending=False,
                                                                       na_position="first")
    if shown.empty:
        return None
    figure = make_subplots(rows=1, cols=len(objectives), shared_yaxes=True, horizontal_spacing=0.03,
                           subplot_titles=[f"{o} (lower is better)" for o in objectives])
    for col, o in enumerate(objectives, start=1):
        for kind, colour in (("paper", PAPER_COLOUR), ("front", FRONT_COLOUR)):
            part = shown[shown[Column.ORIGIN].map(is_paper).astype(bool) == (kind == "paper")]
            figure.add_trace(go.Scatter(
                x=part[o], y=part["label"], mode="markers", marker=dict(color=colour, size=9),
                error_x=dict(type="data", array=part[ci_column(o)].fillna(0), thickness=2, width=0),
                name="paper configurations" if kind == "paper" else "front (confirmation seeds)",
                legendgroup=kind, showlegend=col == 1,
                customdata=np.stack([part["seeds"], part[ci_column(o)]], axis=1),
                hovertemplate="%{y}: %{x:.4f} ± %{customdata[1]:.4f} (%{customdata[0]} seeds)<extra></extra>"),
                row=1, col=col)
        biased = shown.dropna(subset=[selected_column(o)])
        figure.add_trace(go.Scatter(
            x=biased[selected_column(o)], y=biased["label"], mode="markers", legendgroup="selected",
            marker=dict(symbol="diamond-open", color=FRONT_COLOUR, size=9), showlegend=col == 1,
            name="selected seed (biased, not in the estimate)",
            hovertemplate="%{y}: selected seed %{x:.4f}<extra></extra>"), row=1, col=col)
    height = 180 + 26 * len(shown)
    plot_height = height - PLOT_MARGIN["t"] - 100
    figure.update_layout(title="each configuration's test estimate: mean over seeds with 95% interval",
                         height=height, margin={**PLOT_MARGIN, "b": 100},
                         legend=dict(orientation="h", y=-45 / plot_height, yanchor="top", x=0))  # below the ticks
    figure.update_yaxes(type="category", automargin=True)
    return figure


def front_figures(summary: pd.DataFrame, front_ids: Sequence[str], objectives: Sequence[str]) -> dict[str, go.Figure]:
    """Clean error against each other objective (and all three in 3D): the test estimates of the
    configurations a report states them for, the validation front's and the papers', with intervals
    and labels (the other search trials are measured on validation only: ``search_figures``).
    Named ``front`` (against the first other objective), ``front-<objective>`` (the others) and
    ``front-3d``."""
    if summary.empty or Column.CLEAN_ERROR not in objectives:
        return {}
    summary = summary[summary[Column.CONFIG_ID].isin(front_ids) | summary[Column.ORIGIN].map(is_paper).astype(bool)]
    summary = summary.assign(label=summary.apply(label, axis=1))
    others = [y for y in objectives if y != Column.CLEAN_ERROR]
    figures = {"front" if i == 0 else f"front-{y}": _front_2d(summary, Column.CLEAN_ERROR, y)
               for i, y in enumerate(others)}
    if len(objectives) >= 3:
        figures["front-3d"] = _front_3d(summary, objectives[:3])
    return figures


def _groups(summary: pd.DataFrame) -> list[tuple[str, pd.DataFrame, str]]:
    papers = summary[Column.ORIGIN].map(is_paper).astype(bool)
    return [("paper configurations", summary[papers], PAPER_COLOUR), ("validation front", summary[~papers], FRONT_COLOUR)]


def _front_2d(summary: pd.DataFrame, x: str, y: str) -> go.Figure:
    biased = summary[summary[x].isna()].dropna(subset=[selected_column(x), selected_column(y)])
    estimated = summary.dropna(subset=[x, y])
    x_range = _padded_range(pd.concat([estimated[x], biased[selected_column(x)]]))
    y_range = _padded_range(pd.concat([estimated[y], biased[selected_column(y)]]))
    # an interval wider than a quarter of the plot (few seeds) would only cross it: the forest plot has it
    readable = ((summary[ci_column(x)] < MAX_BAR_SHARE * (x_range[1] - x_range[0]))
                & (summary[ci_column(y)] < MAX_BAR_SHARE * (y_range[1] - y_range[0])))
    figure = go.Figure()
    for name, part, colour in _groups(summary):
        bars = readable.loc[part.index]
        figure.add_trace(go.Scatter(
            x=part[x], y=part[y], mode="markers", name=name, text=part["label"], marker=dict(color=colour, size=9),
            error_x=dict(array=part[ci_column(x)].where(bars, 0).fillna(0), thickness=1, color=colour),
            error_y=dict(array=part[ci_column(y)].where(bars, 0).fillna(0), thickness=1, color=colour),
            hovertemplate=f"%{{text}}<br>{x} %{{x:.4f}}<br>{y} %{{y:.4f}}<extra></extra>"))
    if len(biased):  # a front configuration without a confirmation seed has its selected seed alone
        figure.add_trace(go.Scatter(
            x=biased[selected_column(x)], y=biased[selected_column(y)], mode="markers", text=biased["label"],
            name="front, selected seed only (biased: confirm it)", marker=dict(symbol="diamond-open", size=9,
                                                                                 color=FRONT_COLOUR),
            hovertemplate=f"%{{text}} (selected seed)<br>{x} %{{x:.4f}}<br>{y} %{{y:.4f}}<extra></extra>"))
    within = estimated[~(estimated[Column.CONSTRAINT_VIOLATION] > 0)] if Column.CONSTRAINT_VIOLATION in estimated \
        else estimated  # a paper over a constraint is a reference, not a point of any front
    pair = pareto.nondominated(within, [x, y]).sort_values(x)
    figure.add_trace(go.Scatter(x=pair[x], y=pair[y], mode="lines", line_shape="hv", hoverinfo="skip",
                                name=f"front of the estimates on {x} and {y}", line=dict(dash="dot", color="grey")))
    offsets = place_labels(estimated[x].to_numpy(), estimated[y].to_numpy(), list(estimated["label"]),
                           estimated[[x, y]].to_numpy(), x_range, y_range)
    for (_, row), (dx, dy) in zip(estimated.iterrows(), offsets):
        figure.add_annotation(x=row[x], y=row[y], text=row["label"], ax=dx, ay=dy, showarrow=True, arrowhead=0,
                              arrowwidth=1, arrowcolor="#999", font=dict(size=10))
    hidden = int((summary[ci_column(x)].notna() & ~readable).sum())
    note = f" ({hidden} wider than a quarter of the plot: in the forest plot only)" if hidden else ""
    figure.update_layout(title=f"clean error vs {y}: test estimates of the validation front and the papers<br><sup>mean "
                               f"over seeds; 95% intervals{note}</sup>", width=None, height=FIGURE_HEIGHT, margin=PLOT_MARGIN,
                         xaxis_title=x, yaxis_title=y)
    figure.update_xaxes(range=x_range)
    figure.update_yaxes(range=y_range)
    return figure


def _front_3d(summary: pd.DataFrame, objectives: Sequence[str]) -> go.Figure:
    x, y, z = objectives
    figure = go.Figure([go.Scatter3d(x=part[x], y=part[y], z=part[z], mode="markers", name=name, text=part["label"],
                                     marker=dict(color=colour, size=5),
                                     hovertemplate="%{text}<br>" + f"{x} %{{x:.4f}}<br>{y} %{{y:.4f}}<br>{z} %{{z:.4f}}"
                                                   "<extra></extra>")
                        for name, part, colour in _groups(summary.dropna(subset=list(objectives)))])
    figure.update_layout(scene_camera=dict(eye=dict(x=1.6, y=1.6, z=1.1)))
    figure.update_layout(title=f"{x}, {y}, {z}: test estimates of the validation front and the papers", height=640,
                         margin=dict(l=0, r=0, t=60, b=0),
                         scene=dict(xaxis_title=x, yaxis_title=y, zaxis_title=z, aspectmode="cube"),
                         legend=dict(orientation="h", y=0))
    return figure


def _padded_range(values: pd.Series, margin: float = 0.12) -> list[float]:
    low, high = float(values.min()), float(values.max())
    pad = margin * (high - low) if high > low else 0.05 * max(abs(high), 1e-3)
    return [low - pad, high + pad]


# candidate label positions around a point, in pixels (plotly's annotation ax/ay: y grows downwards)
_OFFSETS = [(dx * r, dy * r) for r in (1, 1.8, 2.6) for dx, dy in
            ((0, -28), (36, -22), (-36, -22), (44, 0), (-44, 0), (36, 22), (-36, 22), (0, 28))]
_CHAR_WIDTH, _LINE_HEIGHT = 6.2, 14


def place_labels(x: np.ndarray, y: np.ndarray, labels: Sequence[str], points: np.ndarray,
                 x_range: Sequence[float], y_range: Sequence[float],
                 size: tuple[int, int] = (FIGURE_WIDTH, FIGURE_HEIGHT)) -> list[tuple[float, float]]:
    """Pixel offsets for labels of the points (x, y), chosen greedily among rings of candidates so
    that no label box overlaps another, a point of ``points``, or leaves the plot; where every
    candidate collides, the one with the least overlap."""
    width = size[0] - PLOT_MARGIN["l"] - PLOT_MARGIN["r"]
    height = size[1] - PLOT_MARGIN["t"] - PLOT_MARGIN["b"]

    def pixels(px_: np.ndarray, py_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ((px_ - x_range[0]) / (x_range[1] - x_range[0]) * width,
                (y_range[1] - py_) / (y_range[1] - y_range[0]) * height)

    dots_x, dots_y = pixels(points[:, 0], points[:, 1])
    taken = np.column_stack([dots_x - 4, dots_y - 4, dots_x + 4, dots_y + 4])  # the points, then placed labels
    offsets = np.array(_OFFSETS)
    out = []
    for (px_, py_), text in zip(zip(*pixels(np.asarray(x, float), np.asarray(y, float))), labels):
        half = np.array([len(text) * _CHAR_WIDTH / 2 + 2, _LINE_HEIGHT / 2])
        centres = np.array([px_, py_]) + offsets
        boxes = np.column_stack([centres - half, centres + half])  # (candidates, 4): x0, y0, x1, y1
        overlap_x = np.minimum(boxes[:, None, 2], taken[None, :, 2]) - np.maximum(boxes[:, None, 0], taken[None, :, 0])
        overlap_y = np.minimum(boxes[:, None, 3], taken[None, :, 3]) - np.maximum(boxes[:, None, 1], taken[None, :, 1])
        outside = (np.maximum(0, -boxes[:, 0]) + np.maximum(0, boxes[:, 2] - width)
                   + np.maximum(0, -boxes[:, 1]) + np.maximum(0, boxes[:, 3] - height))
        costs = (np.clip(overlap_x, 0, None) * np.clip(overlap_y, 0, None)).sum(axis=1) + 10 * outside
        best = int(np.argmin(costs))  # the first candidate (the nearest ring) wins a tie
        taken = np.vstack([taken, boxes[best]])
        out.append(_OFFSETS[best])
    return out


def search_figure(table: pd.DataFrame) -> go.Figure | None:
    """What the search tried: every search trial at the last point it was measured on validation
    images (a completed one at the end of its budget, a pruned one, faded, at the rung it reached)."""
    search = search_trials(table)
    selection = validation_column(Column.CLEAN_ERROR)
    if selection not in search or Column.BUDGET_REACHED not in search:
        return None
    completed = search[Column.STATUS] == TrialStatus.COMPLETED
    pruned = search[Column.STATUS] == TrialStatus.PRUNED
    rung = search[Column.RUNG_CLEAN_ERROR] if Column.RUNG_CLEAN_ERROR in search else pd.Series(math.nan, search.index)
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
        marker_size=10))
    return figure.update_layout(margin=PLOT_MARGIN)


def cost_figure(table: pd.DataFrame, front_ids: Sequence[str], constraints: Sequence[Constraint]) -> go.Figure | None:
    """What each design costs: FLOPs per image against measured latency (bars: the timings'
    interquartile range), the papers', the front's and the other searched designs' apart from
    those a constraint turned away (crosses, never trained), with the constraints' bounds on
    these axes as lines."""
    search = search_trials(table)
    if not {Column.FLOPS, Column.LATENCY_MS} <= set(search):
        return None
    search = search.dropna(subset=[Column.FLOPS, Column.LATENCY_MS]).assign(
        label=lambda t: t.apply(label, axis=1) if len(t) else t[Column.TRIAL_ID])
    if search.empty:
        return None
    papers = search[Column.ORIGIN].map(is_paper).astype(bool)
    over = (search[Column.CONSTRAINT_VIOLATION] > 0) if Column.CONSTRAINT_VIOLATION in search else papers & False
    front = search[Column.TRIAL_ID].isin(front_ids)
    groups = [("paper configurations", papers & ~over, dict(color=PAPER_COLOUR, size=9)),
              ("paper configurations over a constraint", papers & over,
               dict(color=PAPER_COLOUR, size=10, symbol="circle-open", line=dict(width=2))),
              ("validation front", front & ~papers, dict(color=FRONT_COLOUR, size=9)),
              ("other searched designs", ~front & ~papers & ~over, dict(color=OTHER_COLOUR, size=6, opacity=0.6)),
              ("over a constraint (not trained)", ~papers & over,
               dict(color="#c44e52", size=8, symbol="x"))]
    figure = go.Figure()
    for name, mask, marker in groups:
        part = search[mask]
        if part.empty:
            continue
        spread = part[Column.LATENCY_SPREAD_MS] / 2 if Column.LATENCY_SPREAD_MS in part else None
        figure.add_trace(go.Scatter(
            x=part[Column.FLOPS] / 1e6, y=part[Column.LATENCY_MS], mode="markers", name=name, text=part["label"],
            marker=marker, error_y=None if spread is None else dict(array=spread, thickness=1, width=0),
            hovertemplate="%{text}<br>FLOPs %{x:.2f} M<br>latency %{y:.3f} ms<extra></extra>"))
    plain = plain_paper(search)
    drawn = []
    for constraint in constraints:
        if constraint.metric == Column.PARAMS or (constraint.relative and plain is None):
            continue
        bound = constraint.bound * (plain[constraint.metric] if constraint.relative else 1)
        if constraint.metric == Column.FLOPS:
            figure.add_vline(x=bound / 1e6, line=dict(dash="dash", color="#c44e52"))
        else:
            figure.add_hline(y=bound, line=dict(dash="dash", color="#c44e52"))
        drawn.append(constraint.text)
    bounds = f"; dashed: {', '.join(drawn)}" if drawn else ""
    return figure.update_layout(
        title=f"what each design costs: FLOPs per image and latency<br><sup>median of timed passes, bars the "
              f"interquartile range{bounds}</sup>", xaxis_title="FLOPs per image (M)", yaxis_title="latency (ms)",
        height=FIGURE_HEIGHT, margin=PLOT_MARGIN)


def progress_figure(table: pd.DataFrame, objectives: Sequence[str]) -> go.Figure | None:
    """How the search progressed: the hypervolume of the search trials' validation values (what
    the sampler saw), in the order they finished; confirmation seeds and test values play no part."""
    selection = [validation_column(o) for o in objectives]
    search = search_trials(table)
    if Column.FINISHED_AT not in search or not set(selection) <= set(search) or completed(search, selection).empty:
        return None
    history = pareto.hypervolume_history(search, selection, pareto.reference_point(search, selection))
    return px.line(history, x="trial", y="hypervolume", markers=True, hover_data=[Column.TRIAL_ID],
                   title="search progress: hypervolume of the search trials' validation values<br><sup>"
                         "what the sampler saw; reference 1.1 x the worst paper configuration's</sup>"
                   ).update_layout(margin=PLOT_MARGIN)


def parallel_figure(table: pd.DataFrame, objectives: Sequence[str]) -> go.Figure | None:
    """The search trials' dimensions against their validation objectives; a key that makes no
    difference to a configuration is shown as ``INACTIVE``."""
    selection = [validation_column(o) for o in objectives]
    done = completed(search_trials(table), selection) if set(selection) <= set(table) else table.iloc[:0]
    if done.empty:
        return None
    shown = pd.DataFrame([shown_design(row) for _, row in done.iterrows()], index=done.index)
    dimensions = []
    for key in CONFIG_KEYS:
        values = shown[key] if key in shown else done[key] if key in done else pd.Series(dtype=object)
        dimension = _dimension(key, values)
        if dimension is not None:
            dimensions.append(dimension)
    dimensions += [dict(label=v, values=done[v]) for v in selection]
    return go.Figure(go.Parcoords(line=dict(color=done[selection[0]], colorscale="Viridis", showscale=True),
                                  dimensions=dimensions, labelangle=-25, labelside="top")).update_layout(
        title=f"search trials: dimensions against validation objectives (colour: {selection[0]})",
        margin=dict(l=80, r=80, t=150, b=40), height=600)


def _dimension(key: str, values: pd.Series) -> dict | None:
    """A parallel-coordinates axis: categories for a few values, a numeric scale for many numbers
    (a key that makes no difference, ``INACTIVE``, sits just below the scale's lowest value)."""
    labels = values.map(_tick)
    if labels.nunique() < 2:
        return None
    numbers = pd.to_numeric(values.where(values != INACTIVE), errors="coerce")
    if labels.nunique() > MAX_CATEGORIES and numbers.notna().sum() == (values != INACTIVE).sum():
        low, high = float(numbers.min()), float(numbers.max())
        below = low - 0.1 * (high - low)
        ticks = list(np.linspace(low, high, 5))
        return dict(label=key, values=numbers.fillna(below), range=[below, high],
                    tickvals=[below, *ticks], ticktext=[INACTIVE, *(f"{t:.3g}" for t in ticks)])
    codes = {v: i for i, v in enumerate(sorted(labels.unique(), key=_tick_order))}
    return dict(label=key, values=labels.map(codes), tickvals=list(codes.values()), ticktext=list(codes))


def _tick(value: object) -> str:
    if pd.isna(value):
        return INACTIVE
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _tick_order(text: str) -> tuple[int, float, str]:
    try:
        return (1, float(text), text)
    except ValueError:
        return (0 if text == INACTIVE else 2, 0.0, text)


def heatmap(table: pd.DataFrame, front_ids: Sequence[str], objectives: Sequence[str], prefix: str,
            title: str) -> go.Figure | None:
    """Per-corruption (or per-perturbation) values of the front's configurations: the mean over the
    seeds that estimate each (a searched configuration's selected seed left out)."""
    columns = [c for c in table if c.startswith(prefix)]
    done = completed(table[~selected_rows(table, objectives)])
    done = done[configuration_id(done).isin(front_ids)]
    if not columns or done.empty:
        return None
    means = done.groupby(configuration_id(done))[columns].mean()
    firsts = done.groupby(configuration_id(done)).first()
    names = [label(pd.Series({Column.ORIGIN: firsts.loc[c, Column.ORIGIN], Column.CONFIG_ID: c})) for c in means.index]
    return px.imshow(means.to_numpy(dtype=float), x=[c[len(prefix):] for c in columns], y=names,
                     color_continuous_scale="RdYlGn_r", aspect="auto", text_auto=".2f",
                     title=f"{title} on the front (mean over confirmation seeds, test split)").update_layout(
        margin=PLOT_MARGIN)


def search_figures(table: pd.DataFrame, objectives: Sequence[str]) -> dict[str, go.Figure]:
    """What the search tried, on the validation values every search trial has (the dashboard shows
    them while a search runs, before any test value exists), by name."""
    return _present({"search": search_figure(table), "hypervolume": progress_figure(table, objectives),
                     "parallel": parallel_figure(table, objectives)})


def run_figures(table: pd.DataFrame, summary: pd.DataFrame, front_ids: Sequence[str],
                objectives: Sequence[str], constraints: Sequence[Constraint]) -> dict[str, go.Figure]:
    """The views of a run that the report and the dashboard share, by name, in reading order
    (importance needs the study and is the report's alone); a name stays with its view, so that
    ``Run.figure(name)`` finds the same figure in every run that has it."""
    return _present({
        "forest": forest_figure(summary, front_ids, objectives),
        **front_figures(summary, front_ids, objectives),
        "cost": cost_figure(table, front_ids, constraints),
        **search_figures(table, objectives),
        "corruptions": heatmap(table, front_ids, objectives, CE_PREFIX, "CE per corruption"),
        "perturbations": heatmap(table, front_ids, objectives, FP_PREFIX, "flip probability per perturbation"),
    })


def _present(figures: dict[str, go.Figure | None]) -> dict[str, go.Figure]:
    """The figures a run has data for (a view without data is None)."""
    return {name: figure for name, figure in figures.items() if figure is not None}
