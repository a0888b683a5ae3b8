"""`ppsearch report`: one self-contained HTML file (plotly.js embedded once, works offline) about a
run, plus its tables as markdown and CSV.

It leads with the answer: the verdicts of the validation front's searched configurations against
the papers' (``uncertainty.dominance_table``: the method and level named, differences with their
intervals, seeds spent, undecided pairs), then the configuration ``pick`` would choose, then the
figures (``figures``: a forest plot per objective, the fronts, the search), the tables, and how the
numbers were made. One set of numbers everywhere: a configuration's test estimate is the mean over
the seeds that estimate it (a searched configuration's selected seed shown apart, never averaged),
as in ``pick`` and the dashboard.
"""
from __future__ import annotations

import dataclasses
import datetime
import html
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from ..constraints import parse_constraints
from ..errors import UserError
from ..files import write_texts
from ..robustness.names import SEED_PAPER
from ..rundir import (
    AUTO,
    FINAL_STATUSES,
    JOURNAL_FILE,
    PROCEDURAL_FROST,
    RESULTS_STEM,
    Column,
    RunSettings,
    check_completed,
    completed,
    is_paper,
    open_study,
    paper_name,
    read_run,
    status_counts,
    torn_journal_tail,
    validation_column,
)
from ..selection import pareto
from ..selection.pick import pick
from ..selection.racing import Race, racing_looks, replay
from ..selection.uncertainty import (
    MIN_SEEDS_FOR_HYPERVOLUME,
    UNTESTED,
    Verdict,
    ci_column,
    configurations,
    dominance_table,
    hypervolume_interval,
    method_text,
    selected_column,
)
from .cost import cost_note, cost_table, infeasible_table
from .figures import INACTIVE, label, run_figures, shown_design

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


@dataclasses.dataclass(frozen=True)
class RunAnalysis:
    """The numbers a report, ``pick`` and the dashboard show about one run, computed once."""

    settings: RunSettings
    objectives: tuple[str, ...]
    summary: pd.DataFrame  # uncertainty.configurations
    front_ids: list[str]  # the validation front's configurations (search trial ids)
    verdicts: pd.DataFrame  # uncertainty.dominance_table
    alpha: float
    racing: Race | None  # the replayed adaptive confirmation of an --confirm-seeds auto run
    reference: np.ndarray
    volume: tuple[float, float, float]  # the front's test hypervolume and its 95% interval
    picked: pd.Series | None


def analyse(table: pd.DataFrame, settings: RunSettings, alpha: float | None = None) -> RunAnalysis:
    objectives = tuple(o for o in settings.objectives if o in table)
    front_ids = list(pareto.validation_front(table, objectives)[Column.TRIAL_ID])
    alpha = settings.verdict_alpha if alpha is None else alpha
    racing = replay(table, settings, alpha) if settings.confirm_seeds == AUTO else None
    verdicts = dominance_table(table, objectives, front_ids, alpha, *(
        (racing.decided, racing.adjusted) if racing is not None else ()))
    reference = pareto.reference_point(table, objectives)
    try:
        picked = pick(table, objectives)
    except UserError:  # no completed trial on validation images: nothing to pick
        picked = None
    summary = configurations(table, objectives)
    if len(summary) and Column.CONSTRAINT_VIOLATION in table:  # a paper over a constraint is marked on the plots
        summary[Column.CONSTRAINT_VIOLATION] = summary[Column.CONFIG_ID].map(
            table.set_index(Column.TRIAL_ID)[Column.CONSTRAINT_VIOLATION])
    return RunAnalysis(settings, objectives, summary, front_ids, verdicts, alpha, racing,
                       reference, hypervolume_interval(table, objectives, front_ids, reference), picked)


def check_validation_columns(table: pd.DataFrame, objectives: Sequence[str], run_dir: Path) -> None:
    """Refuse the results table of the run in ``run_dir`` when it lacks the validation values its
    fronts are selected on: the one check of ``report``, ``pick``, the comparisons and the
    dashboard, which would otherwise show an empty front or refuse in words of their own."""
    missing = [validation_column(o) for o in objectives if validation_column(o) not in table]
    if missing:
        raise UserError(f"{run_dir / RESULTS_STEM}.parquet lacks column(s) {', '.join(missing)}: fronts are "
                        f"selected on validation values, so there is nothing to select from; rerun the search command "
                        f"on the directory to rebuild the table from the trial records")


def check_test_values(table: pd.DataFrame, objectives: Sequence[str], run_dir: Path) -> None:
    """Refuse the results table of the run in ``run_dir`` while a configuration it reports (the
    validation front's, the papers') has no test values: the search measures them when it ends."""
    untested = list(pareto.untested_reported(table, objectives)[Column.TRIAL_ID])
    if untested:
        raise UserError(f"{run_dir}: {len(untested)} reported configuration(s) have no test values yet "
                        f"({', '.join(untested[:5])}); they are measured when the search ends: let a running search "
                        f"finish, or run the interrupted `ppsearch run` command again (it measures them without "
                        f"retraining)")


def checked_analysis(table: pd.DataFrame, settings: RunSettings, run_dir: Path,
                     alpha: float | None = None) -> RunAnalysis:
    """:func:`analyse` of the run in ``run_dir`` once it holds what a report states (the validation
    values its fronts are selected on, the reported configurations' test values): what the report
    and ``ppsearch.Run`` show."""
    check_completed(table, run_dir)
    check_validation_columns(table, settings.objectives, run_dir)
    check_test_values(table, settings.objectives, run_dir)
    return analyse(table, settings, alpha)


def report_figures(run_dir: Path, table: pd.DataFrame, analysis: RunAnalysis) -> dict[str, go.Figure]:
    """The report's figures by name, in its order: the views it shares with the dashboard
    (``figures.run_figures``), then ``importance`` where the study allows one."""
    figures = run_figures(table, analysis.summary, analysis.front_ids, analysis.objectives,
                          parse_constraints(analysis.settings.constraints))
    importance = _importance_figure(run_dir, analysis.settings)
    return figures | ({"importance": importance} if importance is not None else {})


def write_report(run_dir: str | Path, out: str | Path | None = None, alpha: float | None = None) -> Path:
    """Write ``report.html`` (and ``report.md``, ``report-*.csv``) for the run in ``run_dir``, as
    one set; verdicts at ``alpha`` (default: the run's ``verdict_alpha``)."""
    run_dir = Path(run_dir)
    table, settings = read_run(run_dir)
    analysis = checked_analysis(table, settings, run_dir, alpha)
    constraints = parse_constraints(settings.constraints)
    figures = report_figures(run_dir, table, analysis).values()
    tables = {
        "verdicts": analysis.verdicts,
        "front": config_table(analysis.summary, analysis.front_ids, analysis.objectives),
        "paper_reproduction": _reproduction_table(table),
        "configurations": analysis.summary,
    }
    cost = cost_table(table, analysis.front_ids)
    if len(cost):  # the run recorded costs and has a plain paper configuration
        tables["cost"] = cost
    if constraints:
        tables["over_constraints"] = infeasible_table(table, constraints)
    out = Path(out or run_dir / "report.html")
    readable = {name: _readable(tables[name]) for name in READABLE_TABLES}
    body = [STYLE, f"<h1>ppsearch report: {html.escape(run_dir.name)}</h1>",
            f"<p class='context'>{run_context(settings, table, analysis.objectives)}</p>",
            "<h2>Verdicts: the front against the papers</h2>", f"<p>{html.escape(verdict_summary(analysis))}</p>",
            _verdicts_html(display_verdicts(analysis)),
            "<h2>Picked configuration</h2>", f"<p>{html.escape(picked_text(analysis))}</p>"]
    for i, figure in enumerate(figures):
        body.append(figure.to_html(full_html=False, include_plotlyjs=(i == 0), default_height=520,
                                   config={"responsive": True}))
    for name, frame in readable.items():
        body.append(f"<h2>{name.replace('_', ' ')}</h2>" + html_table(frame))
    if "cost" in tables:
        body.append("<h2>What the designs cost</h2>" + f"<p>{html.escape(cost_note(table))}</p>"
                    + html_table(tables["cost"]))
    if constraints:
        body.append(f"<h2>Over the constraints ({html.escape(', '.join(c.text for c in constraints))})</h2><p>"
                    "Searched designs over a constraint were measured, not trained, and are on no front; paper "
                    "configurations over one were trained as references and are marked on the plots.</p>"
                    + html_table(tables["over_constraints"]))
    body.append(f"<h2>How these numbers were made</h2><p>{_method_html(settings, table, analysis)}</p>")
    write_texts({**table_files(out, tables), out.with_suffix(".md"): _markdown(
        run_dir, table, {**readable, **{k: tables[k] for k in ("cost", "over_constraints") if k in tables}}, analysis),
                 out: html_page("ppsearch report", body)})
    return out


def table_files(page: Path, tables: dict[str, pd.DataFrame]) -> dict[Path, str]:
    """A page's tables as CSV files beside it (``<page stem>-<name>.csv``), to be written with it."""
    return {page.with_name(f"{page.stem}-{name}.csv"): frame.to_csv(index=False) for name, frame in tables.items()}


READABLE_TABLES = ("front", "paper_reproduction", "configurations")  # shown after the figures, designs made readable
STYLE = "<style>.context{color:#333}table.verdicts td,table.verdicts th{text-align:left}</style>"


def html_page(title: str, body: Sequence[str]) -> str:
    """A self-contained page of ``body`` fragments in the reports' style."""
    return ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1400px;min-width:1000px}table{border-collapse:collapse;"
            "font-size:13px}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}</style>"
            "</head><body>" + "\n".join(body) + "</body></html>")


def html_table(frame: pd.DataFrame) -> str:
    rendered = frame.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="", border=0)
    return rendered if len(frame) else "<p>none</p>"


def _verdicts_html(shown: pd.DataFrame) -> str:
    """The tested comparisons as a table; those that could not be tested (too few seeds) folded
    away, since a page of "not shown" rows hides the answer."""
    untested = shown["verdict"] == UNTESTED if len(shown) else pd.Series(dtype=bool)
    parts = [html_table(shown[~untested]).replace("<table", "<table class='verdicts'", 1)] if (~untested).any() else []
    if untested.any():
        parts.append(f"<details><summary>{int(untested.sum())} comparison(s) not tested: fewer than two seeds a side"
                     f"</summary>{html_table(shown[untested])}</details>")
    return "".join(parts) or "<p>none</p>"


def verdict_summary(analysis: RunAnalysis) -> str:
    """The answer in a sentence or two: how many comparisons were decided, which, at what level."""
    verdicts = analysis.verdicts
    if verdicts.empty:
        return ("No comparison: the validation front holds no searched configuration with a completed seed, or the "
                "run has no completed paper configuration.")
    decided = verdicts[verdicts["verdict"].isin([Verdict.DOMINATES, Verdict.DOMINATED])]
    family = (f"racing over {racing_looks(analysis.settings.max_seeds)} looks" if analysis.racing is not None
              else f"Holm over the {len(verdicts)}")
    found = "; ".join(f"{row.front_config} {row.verdict} {paper_name(row.paper)}" for row in decided.itertuples())
    lines = [f"{len(decided)} of {len(verdicts)} comparisons decided (alpha = {analysis.alpha:g}, {family}): "
             f"{found or 'no front configuration is shown to dominate or be dominated by a paper one'}."]
    too_few = verdicts["verdict"] == UNTESTED
    if too_few.any():
        lines.append(f"{int(too_few.sum())} need more seeds (two a side at least: --confirm-seeds 3 or auto).")
    if analysis.racing is not None:
        state = (f"still confirming (round {analysis.racing.round} next)" if analysis.racing.round
                 else "finished")
        lines.append(f"Adaptive confirmation (--max-seeds {analysis.settings.max_seeds}) {state}: "
                     f"{len(analysis.racing.undecided)} pair(s) undecided.")
    return " ".join(lines)


def display_verdicts(analysis: RunAnalysis) -> pd.DataFrame:
    """The verdict table as a reader wants it: decided comparisons first, then by adjusted p."""
    verdicts = analysis.verdicts
    if verdicts.empty:
        return verdicts
    order = verdicts["verdict"].map({Verdict.DOMINATES: 0, Verdict.DOMINATED: 1}).fillna(2)
    shown = verdicts.assign(order=order).sort_values(["order", "p (Holm)"], na_position="last")
    out = pd.DataFrame({"front configuration": shown["front_config"],
                        "paper configuration": shown["paper"].map(paper_name),
                        "verdict": shown["verdict"], "seeds (front, paper)": shown["seeds (front, paper)"]})
    for o in analysis.objectives:
        out[f"{o}: front - paper [95% interval]"] = [
            "" if math.isnan(d) else f"{d:+.4f} {i}" for d, i in zip(shown[f"{o} difference"], shown[f"{o} 95% interval"])]
    out["p (Holm)"] = shown["p (Holm)"].map(lambda p: "" if math.isnan(p) else f"{p:.3g}")
    if "decided at round" in shown:
        out["decided at round"] = shown["decided at round"].map(lambda r: "" if math.isnan(r) else f"{r:.0f}")
    return out


def picked_text(analysis: RunAnalysis) -> str:
    row = analysis.picked
    if row is None:
        return "Nothing to pick: no completed trial has every objective on validation images."
    design = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                       for k, v in shown_design(row).items() if v != INACTIVE)
    estimate = ", ".join(f"{o} {row[o]:.4f} ± {row[ci_column(o)]:.4f}" if not math.isnan(row[ci_column(o)])
                         else f"{o} {row[o]:.4f} (no interval)" for o in analysis.objectives) \
        if row["seeds"] else "no confirmation seed yet"
    selected = ", ".join(f"{o} {row[selected_column(o)]:.4f}" for o in analysis.objectives
                         if not math.isnan(row[selected_column(o)]))
    return (f"{label(row)} ({row[Column.ORIGIN]}; {design}): the knee of the validation front (ppsearch pick). "
            f"Test estimate over {row['seeds']} seed(s): {estimate}."
            + (f" Its selected seed (not in the estimate): {selected}." if selected else ""))


def config_table(summary: pd.DataFrame, front_ids: Sequence[str], objectives: Sequence[str]) -> pd.DataFrame:
    """The validation front's configurations: test estimates with 95% intervals and seed counts,
    beside the validation values they were selected on."""
    if summary.empty:
        return summary
    return summary[summary[Column.CONFIG_ID].isin(front_ids)].sort_values(list(objectives)).reset_index(drop=True)


def front_overview(front: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The columns of the front's table (:func:`config_table`) that a run's summary shows (what
    ``ppsearch run`` prints at its end, a ``Run`` in a notebook): the design, the validation values
    it was selected on, and the test estimates with their seeds."""
    shown = dict.fromkeys([Column.CONFIG_ID, Column.ORIGIN, "placement", "variant", "scale", "alpha", "antialias",
                           "augmentation", *[validation_column(o) for o in objectives], "seeds",
                           *[c for o in objectives for c in (o, ci_column(o))]])
    return front[[c for c in shown if c in front]]


def _readable(frame: pd.DataFrame) -> pd.DataFrame:
    """A table of configurations with the design keys that make no difference shown as such."""
    if frame.empty or Column.ORIGIN not in frame:
        return frame
    designs = pd.DataFrame([shown_design(row) for _, row in frame.iterrows()], index=frame.index)
    return frame.assign(**{k: designs[k] for k in designs})


def _reproduction_table(table: pd.DataFrame) -> pd.DataFrame:
    done = completed(table)
    done = done[done[Column.ORIGIN].map(is_paper).astype(bool)]
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


def _dataset_text(settings: RunSettings) -> str:
    if settings.image_size:
        return f"{settings.dataset} at {settings.image_size}x{settings.image_size}"
    return settings.dataset


def run_context(settings: RunSettings, table: pd.DataFrame, objectives: Sequence[str]) -> str:
    """What a run is, as HTML: space, dataset, budget, protocol, trials by status, objectives,
    constraints (the report's first line, a ``Run``'s in a notebook)."""
    overrides = settings.budget_overrides
    overrides = f" ({', '.join(f'{k}={v}' for k, v in overrides.items())})" if overrides else ""
    return (f"space <b>{html.escape(Path(settings.space).stem)}</b>, dataset <b>{_dataset_text(settings)}</b>, "
            f"budget <b>{settings.budget}</b>{html.escape(overrides)}, protocol <b>{settings.protocol}</b>; "
            f"{len(table)} trials ({status_counts(table, FINAL_STATUSES)}); objectives "
            f"{', '.join(objectives)} (all minimised; errors measured on the test split, the front selected on "
            f"validation images; costs are the model's own, measured on no images)"
            + (f"; constraints {html.escape(', '.join(settings.constraints))}" if settings.constraints else "")
            + f".{html.escape(_budget_note(settings))}")


# which configurations carry test values, said wherever the report says what it shows
TEST_VALUES = ("Test values are measured for the validation front's and the papers' configurations (once, when the "
               "search ends) and for every confirmation seed; the views of everything the search tried show "
               "validation values")


def _method_html(settings: RunSettings, table: pd.DataFrame, analysis: RunAnalysis) -> str:
    dataset = _dataset_text(settings)
    return (f"<b>Selection and reporting:</b> the front is selected on {settings.validation_fraction:g} of the "
            f"training split held out as validation images. {TEST_VALUES}. "
            f"<b>Verdicts:</b> {html.escape(method_text(analysis.alpha, analysis.racing is not None))}. "
            f"<b>Hypervolume</b> of the front's test estimates: {volume_text(analysis.volume)} at reference point "
            f"{[round(float(r), 4) for r in analysis.reference]} (1.1 x the worst paper configuration); the search "
            f"progress curve is the hypervolume of the search trials' validation values, another quantity. "
            f"<b>Protocol:</b> {settings.protocol}{_protocol_note(settings)}. {html.escape(frost_note(table))}"
            f"The paper reported {PAPER_SETTING}; this run used {dataset} at budget {settings.budget}, so compare "
            f"the ordering of configurations, not the values. Written "
            f"{datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}.")


def volume_text(volume: tuple[float, float, float]) -> str:
    point, low, high = volume
    if pd.isna(point):
        return "not estimated (a front configuration has no confirmation seed yet)"
    interval = (f"95% interval {low:.4f} to {high:.4f}" if not pd.isna(low)
                else f"no interval: not enough seeds (each front configuration needs {MIN_SEEDS_FOR_HYPERVOLUME} "
                     f"confirmation seeds)")
    return f"{point:.4f} ({interval})"


def _budget_note(settings: RunSettings) -> str:
    if settings.budget in ("smoke", "demo"):
        return (f" At the {settings.budget} budget this run shows the tool, not the science: its differences are "
                f"not meaningful.")
    return ""


def _protocol_note(settings: RunSettings) -> str:
    if settings.protocol == SEED_PAPER:
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


def _importance_figure(run_dir: Path, settings: RunSettings) -> go.Figure | None:
    import optuna

    journal = run_dir / JOURNAL_FILE
    if not journal.is_file() or torn_journal_tail(journal):  # a damaged study is repaired by the next `run`
        return None
    study = open_study(run_dir)
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



def _markdown(run_dir: Path, table: pd.DataFrame, readable: dict[str, pd.DataFrame], analysis: RunAnalysis) -> str:
    protocols = ", ".join(sorted(table[Column.PROTOCOL].dropna().unique())) if Column.PROTOCOL in table else "?"
    parts = [f"# ppsearch report: {run_dir.name}", "", f"Evaluation protocol: {protocols}. {frost_note(table)}", "",
             f"{len(table)} trials; objectives {', '.join(analysis.objectives)}; the front is selected on validation "
             f"images. {TEST_VALUES}; hypervolume of the front's test estimates "
             f"{volume_text(analysis.volume)} at reference {[round(float(r), 4) for r in analysis.reference]}.", "",
             "## verdicts", "", verdict_summary(analysis), "",
             display_verdicts(analysis).to_markdown(index=False) if len(analysis.verdicts) else "none", "",
             f"Method: {method_text(analysis.alpha, analysis.racing is not None)}.", "",
             "## picked configuration", "", picked_text(analysis), ""]
    for name, frame in readable.items():
        rendered = frame.to_markdown(index=False, floatfmt=".4f") if len(frame) else "none"
        parts += [f"## {name.replace('_', ' ')}", "", rendered, ""]
    return "\n".join(parts)
