"""Interleaved rounds and the rows they give: median, spread and the ratio to a baseline.

Every round runs each candidate once, in the same order, so a drift of the machine (another
job starting, a CPU clocking down) hits every candidate of that round alike. A candidate's ratio
is taken round by round against its baseline's value in the same round, then the median of those
ratios is reported: drifts between rounds cancel.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Metrics = dict[str, float]
"""What one run of a candidate measured, by metric name (e.g. `images/s`)."""
LOWER_IS_BETTER = ("s", "GiB")
"""Units where less is better: the ratio is then baseline / candidate (a speed-up)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One thing timed in every round."""

    name: str
    run: Callable[[], Metrics]
    baseline: str | None = None
    """The candidate this one is compared to; None for a baseline (or a row of its own)."""


@dataclass(slots=True)
class Row:
    """One metric of one candidate over the rounds."""

    name: str
    metric: str
    unit: str
    values: list[float]
    baseline: str | None = None
    ratios: list[float] = field(default_factory=list)
    """Per round: candidate / baseline (baseline / candidate for `LOWER_IS_BETTER` units), so
    more than 1 always means better than the baseline."""
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None

    def to_dict(self) -> dict[str, Any]:
        ratio = self.ratio
        return {
            "name": self.name,
            "metric": self.metric,
            "unit": self.unit,
            "median": self.median,
            "min": min(self.values),
            "max": max(self.values),
            "values": self.values,
            "baseline": self.baseline,
            "ratio": ratio,
            "ratio_min": min(self.ratios) if self.ratios else None,
            "ratio_max": max(self.ratios) if self.ratios else None,
            "ratios": self.ratios,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        return cls(
            name=data["name"],
            metric=data["metric"],
            unit=data["unit"],
            values=list(data["values"]),
            baseline=data.get("baseline"),
            ratios=list(data.get("ratios") or []),
            note=data.get("note", ""),
        )


Tick = Callable[[str], None]
"""Called before each run with the candidate's name (advances the progress display)."""


def interleaved(
    candidates: Sequence[Candidate], rounds: int, tick: Tick
) -> dict[str, list[Metrics]]:
    """Run every candidate once per round, in order; each candidate's metrics, round by round."""
    runs: dict[str, list[Metrics]] = {c.name: [] for c in candidates}
    for _ in range(rounds):
        for candidate in candidates:
            tick(candidate.name)
            runs[candidate.name].append(candidate.run())
    return runs


def rows_of(
    candidates: Sequence[Candidate], runs: dict[str, list[Metrics]], units: dict[str, str]
) -> list[Row]:
    """One row per candidate and metric, in the candidates' order; `units` maps a metric to its
    unit. A metric that the baseline did not measure (or measured as 0) gets no ratio."""
    rows = []
    for candidate in candidates:
        measured = runs[candidate.name]
        for metric in measured[0] if measured else {}:
            values = [m[metric] for m in measured]
            unit = units.get(metric, metric)
            base = runs.get(candidate.baseline or "", [])
            ratios = []
            if candidate.baseline and all(metric in m for m in base):
                ratios = [
                    ratio(value, m[metric], unit) for value, m in zip(values, base, strict=True)
                ]
                ratios = ratios if all(math.isfinite(r) for r in ratios) else []
            rows.append(Row(candidate.name, metric, unit, values, candidate.baseline, ratios))
    return rows


def ratio(value: float, baseline: float, unit: str) -> float:
    """How many times better than the baseline: more than 1 is better, whatever the unit."""
    better, worse = (baseline, value) if unit in LOWER_IS_BETTER else (value, baseline)
    return better / worse if worse else math.nan
