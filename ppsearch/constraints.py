"""Constraints on what a design costs (``--constraint``), declared once: how they are written, what
they measure against, and how far a design breaks them.

A constraint is ``METRIC<=BOUND`` with a cost metric (:data:`~ppsearch.rundir.COST_METRICS`), and
the bound either absolute (``latency_ms<=4``: milliseconds, FLOPs, parameters) or a ratio to the
plain model of the same architecture (``flops<=1.3x``: placement none, no anti-aliasing, the
model the paper's overhead figures divide by). A design's *excess* over a constraint is
``value / bound - 1``: at most 0 when it is met, and unit-free, so that the excesses of a latency
and a FLOPs constraint add up (Optuna's samplers rank infeasible trials by the sum of their positive
constraint values, :data:`~ppsearch.rundir.Column.CONSTRAINT_VIOLATION`).

This module imports neither torch nor Optuna: reports and ``pick`` read constraints through it.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence

from .errors import UserError
from .rundir import CONSTRAINT_PREFIX, COST_METRICS, Column

RATIO_SUFFIX = "x"  # a bound written 1.3x is a ratio to the plain model's cost
_FORM = re.compile(r"^\s*(?P<metric>[a-z_]+)\s*<=\s*(?P<bound>[^x\s]*)\s*(?P<ratio>x?)\s*$")


@dataclasses.dataclass(frozen=True)
class Constraint:
    metric: str  # one of COST_METRICS
    bound: float  # > 0
    relative: bool  # the bound is a ratio to the plain model's cost

    @property
    def text(self) -> str:
        return f"{self.metric}<={self.bound:g}{RATIO_SUFFIX if self.relative else ''}"

    @property
    def column(self) -> str:
        """The results table's column of each trial's excess over this constraint."""
        return CONSTRAINT_PREFIX + self.text

    def excess(self, cost: Mapping[str, float], plain: Mapping[str, float] | None) -> float:
        """How far ``cost`` (a design's cost metrics) exceeds the bound, as ``value / bound - 1``;
        ``plain`` is the plain model's cost (needed by a ratio)."""
        value = cost[self.metric]
        if self.relative:
            if plain is None:
                raise ValueError(f"{self.text} is a ratio to the plain model's cost, which was not given")
            value = value / plain[self.metric]
        return value / self.bound - 1


def parse_constraint(text: str) -> Constraint:
    """A constraint as written on the command line or in a space; raises UserError naming what
    is wrong (the form, the metric, the bound)."""
    match = _FORM.match(text)
    if match is None:
        raise UserError(f"constraint {text!r}: write METRIC<=BOUND or METRIC<=RATIOx with a cost metric "
                        f"({', '.join(COST_METRICS)}), e.g. latency_ms<=4 or flops<=1.3x")
    metric = match["metric"]
    if metric not in COST_METRICS:
        raise UserError(f"constraint {text!r}: unknown metric {metric!r}; constraints bound what a design costs: "
                        f"{', '.join(COST_METRICS)}")
    try:
        bound = float(match["bound"])
    except ValueError:
        raise UserError(f"constraint {text!r}: the bound {match['bound']!r} is not a number") from None
    if not (math.isfinite(bound) and bound > 0):
        raise UserError(f"constraint {text!r}: the bound must be a positive number, got {match['bound']}")
    return Constraint(metric, bound, bool(match["ratio"]))


def parse_constraints(texts: Sequence[str]) -> tuple[Constraint, ...]:
    """Every constraint of ``texts``, each once (a repeated one is refused)."""
    constraints = tuple(parse_constraint(t) for t in texts)
    written = [c.text for c in constraints]
    repeated = sorted({t for t in written if written.count(t) > 1})
    if repeated:
        raise UserError(f"--constraint {repeated[0]} is given twice")
    return constraints


def excesses(constraints: Sequence[Constraint], cost: Mapping[str, float],
             plain: Mapping[str, float] | None) -> dict[str, float]:
    """Each constraint's column -> the design's excess over it, and the total violation (the sum of
    the positive excesses: 0 for a feasible design) under ``Column.CONSTRAINT_VIOLATION``."""
    values = {c.column: c.excess(cost, plain) for c in constraints}
    return {**values, Column.CONSTRAINT_VIOLATION: sum(max(0.0, v) for v in values.values())}
