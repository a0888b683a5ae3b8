"""What the designs of a run cost, as a report states it: each paper and front configuration's
parameters, FLOPs and measured latency as ratios to the plain model's, beside the overhead the seed
paper reported; and the designs the run's constraints turned away."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..config import Design
from ..constraints import Constraint
from ..rundir import Column, TrialStatus, is_paper, paper_name, search_trials
from ..selection.pick import plain_paper

# Strisciuglio et al.: seconds per iteration of ResNet-50 on one V100, ImageNet, batches of 256
# (training 0.78 / 0.85 / 0.95, inference 0.66 / 0.67 / 0.63 for plain / -pp / -b1), as ratios to plain
PAPER_OVERHEAD = {"none": {"training": 1.0, "inference": 1.0},
                  "pp": {"training": 0.85 / 0.78, "inference": 0.67 / 0.66},
                  "b1": {"training": 0.95 / 0.78, "inference": 0.63 / 0.66}}
PAPER_OVERHEAD_SETTING = "ResNet-50 on one V100 at ImageNet size (224 px), batches of 256, no anti-aliasing"
COST_COLUMNS = (Column.PARAMS, Column.FLOPS, Column.LATENCY_MS, Column.LATENCY_SPREAD_MS)


def cost_table(table: pd.DataFrame, front_ids: Sequence[str]) -> pd.DataFrame:
    """The paper configurations and the validation front's, one row each: cost, ratios to the plain
    paper model (no push-pull, no anti-aliasing), and the paper's overhead ratios for the same
    placement where it reported them (a V100 at ImageNet size: not this run's device or images)."""
    if not set(COST_COLUMNS) <= set(table):
        return pd.DataFrame()
    rows = search_trials(table).dropna(subset=[Column.FLOPS, Column.LATENCY_MS])
    rows = rows[rows[Column.ORIGIN].map(is_paper).astype(bool) | rows[Column.TRIAL_ID].isin(front_ids)]
    base = plain_paper(rows)
    if base is None:
        return pd.DataFrame()
    out = []
    for _, row in rows.iterrows():
        design = Design.from_mapping(row)
        # the paper timed its upsampling push-pull without anti-aliasing
        reported = None if design.blurs or design.variant != "upsample" else PAPER_OVERHEAD.get(design.placement)
        out.append({"configuration": paper_name(row[Column.ORIGIN]) if is_paper(row[Column.ORIGIN])
                    else row[Column.TRIAL_ID],
                    "placement": row["placement"], "antialias": row["antialias"],
                    "params": int(row[Column.PARAMS]), "FLOPs (M)": row[Column.FLOPS] / 1e6,
                    "FLOPs ratio": row[Column.FLOPS] / base[Column.FLOPS],
                    "latency ms": row[Column.LATENCY_MS], "latency IQR ms": row[Column.LATENCY_SPREAD_MS],
                    "latency ratio": row[Column.LATENCY_MS] / base[Column.LATENCY_MS],
                    "paper: training ratio": None if reported is None else reported["training"],
                    "paper: inference ratio": None if reported is None else reported["inference"]})
    return pd.DataFrame(out)


def cost_note(table: pd.DataFrame) -> str:
    """How the latencies of ``table`` were measured, and what the paper's ratios were measured on."""
    measured = table.dropna(subset=[Column.LATENCY_MS]) if Column.LATENCY_MS in table else table.iloc[:0]
    if measured.empty:
        return ""
    first = measured.iloc[0]
    backend = first.get(Column.LATENCY_BACKEND, "torch")
    return (f"Latency: median of timed forward passes in eval and inference mode, batches of "
            f"{int(first[Column.LATENCY_BATCH])} on {first[Column.LATENCY_DEVICE]} with "
            f"{int(first[Column.LATENCY_THREADS])} thread(s), {backend if isinstance(backend, str) else 'torch'}, "
            f"measured once per configuration (IQR: the timings' interquartile range, how noisy the machine was). "
            f"The paper's ratios: {PAPER_OVERHEAD_SETTING}.")


def infeasible_table(table: pd.DataFrame, constraints: Sequence[Constraint]) -> pd.DataFrame:
    """The designs the run's constraints turned away (measured, never trained) and the paper
    configurations that break one (trained: references), with each constraint's excess."""
    if not constraints or Column.CONSTRAINT_VIOLATION not in table:
        return pd.DataFrame()
    over = table[(table[Column.STATUS] == TrialStatus.INFEASIBLE) | (table[Column.CONSTRAINT_VIOLATION] > 0)]
    over = search_trials(over)
    return pd.DataFrame({"configuration": [paper_name(o) if is_paper(o) else t
                                           for o, t in zip(over[Column.ORIGIN], over[Column.TRIAL_ID])],
                         "status": over[Column.STATUS], "placement": over["placement"],
                         "params": over[Column.PARAMS].astype(int), "FLOPs (M)": over[Column.FLOPS] / 1e6,
                         "latency ms": over[Column.LATENCY_MS],
                         **{f"excess over {c.text}": over[c.column] for c in constraints if c.column in over}}
                        ).reset_index(drop=True)
