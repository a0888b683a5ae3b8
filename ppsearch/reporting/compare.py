"""Several runs side by side: ``ppsearch report``, ``pick`` and ``dashboard`` given more than one run.

A *design* is what ``ppsearch apply`` carries to another model: the design keys that make a
difference (:meth:`ppsearch.config.Design.signature`) and the augmentation. The same design can be
on the front of a ResNet-20 run and off the front of a WideResNet run; a design's *rank* in a run is
its Pareto rank among that run's search trials on the validation values the run selects on (1: on
the validation front), so ranks say what each run would have selected, never what its test
images say. Values shown are test-split means over seeds, as in the single-run report.
Hypervolumes of all runs use one reference point: 1.1 x the worst paper configuration over all the
runs (the worst completed trial where none has papers), so they compare.
"""
from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence
from pathlib import Path

import moocore
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..config import Design, typed_config
from ..errors import UserError
from ..files import write_texts
from ..rundir import Column, RunSettings, completed, is_paper, load_run, search_trials, validation_column
from ..selection import pareto
from ..selection.uncertainty import configurations, hypervolume_interval
from .report import check_test_values, check_validation_columns, html_page, html_table, table_files, volume_text

DESIGN = "design"  # the column naming a design in the comparison tables
RANK_PREFIX = "rank in "  # per run: the design's Pareto rank on validation values (1: on the front)


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    table: pd.DataFrame
    settings: RunSettings


def load_runs(run_dirs: Sequence[str | Path]) -> list[Run]:
    """The runs (each a finished or running search with completed trials and the validation values
    fronts are selected on), named by their folders (with the parent folder where two share a name)."""
    paths = [Path(d).resolve() for d in run_dirs]
    if len(set(paths)) < len(paths):
        raise UserError("the same run directory is given twice")
    names = [p.name for p in paths]
    names = [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]
    runs = [Run(name, *load_run(path)) for name, path in zip(names, paths)]
    for run, path in zip(runs, paths):
        check_validation_columns(run.table, run.settings.objectives, path)
        check_test_values(run.table, run.settings.objectives, path)
    return runs


def shared_objectives(runs: Sequence[Run]) -> tuple[str, ...]:
    """The objectives every run optimised, in the first run's order; none in common is an error."""
    shared = tuple(o for o in runs[0].settings.objectives if all(o in r.settings.objectives for r in runs[1:]))
    if not shared:
        listed = "; ".join(f"{r.name}: {', '.join(r.settings.objectives)}" for r in runs)
        raise UserError(f"the runs have no objective in common ({listed}): there is nothing to compare")
    return shared


def mixing_note(runs: Sequence[Run]) -> str:
    """A warning when the runs were measured on different datasets, image sizes or under different
    protocols (their values are then not on one scale), else ''."""
    differing = []
    for field in ("dataset", "image_size", "protocol"):
        values = [(r.name, getattr(r.settings, field) or "the dataset's own") for r in runs]
        if len({value for _, value in values}) > 1:
            differing.append(f"{field} ({', '.join(f'{name}: {value}' for name, value in values)})")
    if not differing:
        return ""
    return ("These runs differ in " + " and ".join(differing) + ": their values were not measured on the same "
            "images or in the same way; compare each run's ordering of designs, not values across runs.")


def design_label(row: pd.Series | dict) -> str:
    """``b1: variant=upsample, scale=2.0, alpha=1.0; augmentation standard`` for a table row."""
    config = typed_config(row)
    signature = Design.from_mapping(config).signature()
    placement = signature.pop("placement")
    details = ", ".join(f"{k}={v}" for k, v in signature.items() if not (k == "antialias" and v == "none"))
    return f"{placement}{': ' + details if details else ''}; augmentation {config.get('augmentation', 'standard')}"


def design_ranks(runs: Sequence[Run], objectives: Sequence[str]) -> pd.DataFrame:
    """One row per design completed by a search trial of any run: its rank in each run (NaN where
    the run has not completed it) and in how many runs it is on the validation front."""
    columns = {}
    for run in runs:
        search = completed(search_trials(run.table), [validation_column(o) for o in objectives])
        if search.empty:
            columns[RANK_PREFIX + run.name] = pd.Series(dtype=float)
            continue
        ranks = moocore.pareto_rank(search[[validation_column(o) for o in objectives]].to_numpy(dtype=float)) + 1
        labels = search.apply(design_label, axis=1)
        columns[RANK_PREFIX + run.name] = pd.Series(ranks, index=labels.to_numpy()).groupby(level=0).min()
    ranks = pd.DataFrame(columns)
    ranks.index.name = DESIGN
    ranks["runs on the front"] = (ranks == 1).sum(axis=1)
    return ranks.reset_index().sort_values(["runs on the front", DESIGN], ascending=[False, True], ignore_index=True)


def side_by_side(runs: Sequence[Run], objectives: Sequence[str]) -> pd.DataFrame:
    """The designs that more than one run trained on the same architecture, with each run's test
    means, intervals and seeds beside each other (e.g. ResNet-20-b1 at two budgets)."""
    rows = []
    for run in runs:
        summary = configurations(run.table, objectives)
        for _, config in summary.iterrows():
            rows.append({"arch": config["arch"], DESIGN: design_label(config), "run": run.name,
                         "seeds": config["seeds"], **{o: config[o] for o in objectives},
                         **{f"{o} ci95": config[f"{o} ci95"] for o in objectives}})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = table.drop_duplicates(["arch", DESIGN, "run"])
    shared = table.groupby(["arch", DESIGN])["run"].transform("nunique") > 1
    return table[shared].sort_values(["arch", DESIGN, "run"], ignore_index=True)


def shared_reference(runs: Sequence[Run], objectives: Sequence[str]) -> np.ndarray:
    """The reference point of every run's hypervolume: 1.1 x the worst paper configuration over all
    the runs, so that their hypervolumes compare."""
    return pareto.reference_point(pd.concat([r.table for r in runs], ignore_index=True), objectives)


def hypervolumes(runs: Sequence[Run], objectives: Sequence[str]) -> pd.DataFrame:
    """Each run's hypervolume of its validation front's test estimates (``volume_text`` says when
    seeds allow an interval, or an estimate at all) at the reference point shared by all runs."""
    reference = shared_reference(runs, objectives)
    rows = []
    for run in runs:
        front = pareto.validation_front(run.table, objectives)
        point, low, high = hypervolume_interval(run.table, objectives, list(front[Column.TRIAL_ID]), reference)
        rows.append({"run": run.name, "dataset": run.settings.dataset, "budget": run.settings.budget,
                     "front configurations": len(front), "hypervolume": point, "95% low": low, "95% high": high,
                     "estimate": volume_text((point, low, high))})
    return pd.DataFrame(rows)


def comparison_tables(runs: Sequence[Run], objectives: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The comparison's tables by name (written beside its page as ``<page>-<name>.csv``)."""
    return {"hypervolume": hypervolumes(runs, objectives), "designs_across_runs": design_ranks(runs, objectives),
            "same_configuration": side_by_side(runs, objectives)}


def pick_across(runs: Sequence[Run], objectives: Sequence[str]) -> tuple[pd.Series, pd.Series]:
    """The design on the validation front of every run, or else the one closest to being so (the
    smallest worst rank, then the smallest sum of ranks), among the designs every run completed;
    returns its configuration row (the first run's) and its ranks."""
    ranks = design_ranks(runs, objectives)
    rank_columns = [c for c in ranks if c.startswith(RANK_PREFIX)]
    everywhere = ranks.dropna(subset=rank_columns)
    if everywhere.empty:
        raise UserError("no design was completed by a search trial in every run: nothing to pick across them")
    order = everywhere.assign(worst=everywhere[rank_columns].max(axis=1), total=everywhere[rank_columns].sum(axis=1))
    chosen = order.sort_values(["worst", "total", DESIGN], kind="stable").iloc[0]
    summary = configurations(runs[0].table, objectives)
    row = summary[summary.apply(design_label, axis=1) == chosen[DESIGN]].iloc[0]
    return row, chosen[rank_columns]


def comparison_figures(runs: Sequence[Run], objectives: Sequence[str], note: str) -> list[go.Figure]:
    """Each run's validation-front configurations and paper configurations (test means over seeds,
    95% intervals), one colour per run, on clean error against each other objective."""
    figures = []
    if Column.CLEAN_ERROR not in objectives:
        pairs = [tuple(objectives[:2])] if len(objectives) >= 2 else []
    else:
        pairs = [(Column.CLEAN_ERROR, o) for o in objectives if o != Column.CLEAN_ERROR]
    for x, y in pairs:
        figure = go.Figure()
        for run in runs:
            summary = configurations(run.table, objectives)
            front_ids = set(pareto.validation_front(run.table, objectives)[Column.TRIAL_ID])
            shown = summary[summary[Column.CONFIG_ID].isin(front_ids) | summary[Column.ORIGIN].map(is_paper)]
            papers = shown[Column.ORIGIN].map(is_paper).astype(bool)
            for part, symbol, suffix in ((shown[~papers], "circle", "front"), (shown[papers], "diamond", "papers")):
                figure.add_trace(go.Scatter(
                    x=part[x], y=part[y], mode="markers+text", name=f"{run.name}: {suffix}",
                    legendgroup=run.name, marker=dict(symbol=symbol, size=9),
                    error_x=dict(array=part[f"{x} ci95"]), error_y=dict(array=part[f"{y} ci95"]),
                    text=[f"{o} ({run.name})" if is_paper(o) else "" for o in part[Column.ORIGIN]],
                    textposition="top center", textfont_size=9,
                    hovertext=[f"{run.name} {c}: {design_label(r)}" for c, (_, r) in zip(part[Column.CONFIG_ID],
                                                                                         part.iterrows())]))
        title = f"{x} vs {y}: validation fronts and papers of {len(runs)} runs (test means, 95% intervals)"
        figure.update_layout(title=title + (f"<br><sub>{html.escape(note)}</sub>" if note else ""),
                             xaxis_title=x, yaxis_title=y)
        figures.append(figure)
    return figures


def write_comparison(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """One HTML report comparing ``run_dirs`` (plus its tables as CSV beside it), as one set."""
    runs = load_runs(run_dirs)
    objectives = shared_objectives(runs)
    note = mixing_note(runs)
    tables = comparison_tables(runs, objectives)
    reference = shared_reference(runs, objectives)
    out = Path(out)
    warning = f"<p style='color:#a00'><b>{html.escape(note)}</b></p>" if note else ""
    body = [f"<h1>ppsearch comparison: {html.escape(', '.join(r.name for r in runs))}</h1>",
            "<ul>" + "".join(f"<li><b>{html.escape(r.name)}</b>: space {html.escape(Path(r.settings.space).stem)}, "
                             f"dataset {r.settings.dataset}, budget {r.settings.budget}, protocol "
                             f"{r.settings.protocol}, {len(r.table)} trials</li>" for r in runs) + "</ul>",
            f"<p>Objectives compared: {', '.join(objectives)} (those every run optimised). Fronts are selected on "
            f"each run's validation images; values are test-split means over seeds. Hypervolumes share the "
            f"reference point {[round(float(v), 4) for v in reference]} (1.1 x the worst paper configuration over "
            f"all runs). A design's rank in a run is its Pareto rank on that run's validation values (1: on the "
            f"front).</p>", warning]
    for i, figure in enumerate(comparison_figures(runs, objectives, note)):
        body.append(figure.to_html(full_html=False, include_plotlyjs=(i == 0), default_height=560))
    titles = {"hypervolume": "hypervolume per run (shared reference point)",
              "designs_across_runs": "designs across runs: rank on each run's validation values (1 = on the front)",
              "same_configuration": "the same architecture and design in several runs (test means over seeds)"}
    for name, frame in tables.items():
        body.append(f"<h2>{titles[name]}</h2>{warning}" + html_table(frame))
    write_texts({**table_files(out, tables), out: html_page("ppsearch comparison", body)})
    return out
