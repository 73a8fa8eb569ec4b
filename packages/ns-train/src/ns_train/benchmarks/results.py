"""The results file of a run (`bench/results/<host>-<YYYY-MM-DD>.json`) and two files compared."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ns_data.atomic import write_json
from ns_train.benchmarks.rounds import Row, ratio
from ns_train.errors import TrainError

FORMAT = "ns-bench/1"


@dataclass(slots=True)
class Section:
    """What one sub-benchmark measured."""

    name: str
    title: str
    """What it compares, in one line."""
    params: dict[str, Any] = field(default_factory=dict)
    """The sizes it ran at (images, image side, batch, steps, rows, workers ...)."""
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    series: dict[str, Any] = field(default_factory=dict)
    """Points for a plot, where the section draws one (scaling: stage → cores → [items, s])."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "params": self.params,
            "notes": self.notes,
            "rows": [row.to_dict() for row in self.rows],
            "series": self.series,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Section:
        rows = [Row.from_dict(r) for r in data["rows"]]
        series = dict(data.get("series") or {})
        return cls(
            data["name"], data["title"], dict(data["params"]), rows, list(data["notes"]), series
        )


@dataclass(slots=True)
class Results:
    """A whole run: when, with which options, on what machine, and every section."""

    started: str
    finished: str
    settings: dict[str, Any]
    machine: dict[str, Any]
    sections: list[Section]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "started": self.started,
            "finished": self.finished,
            "settings": self.settings,
            "machine": self.machine,
            "sections": [s.to_dict() for s in self.sections],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Results:
        sections = [Section.from_dict(s) for s in data["sections"]]
        return cls(data["started"], data["finished"], data["settings"], data["machine"], sections)


def results_path(out_dir: Path, host: str, day: str) -> Path:
    """`OUT/<host>-<day>.json`, or `<host>-<day>-2.json` ... when that day already has one."""
    path = Path(out_dir) / f"{host}-{day}.json"
    number = 2
    while path.exists():
        path = Path(out_dir) / f"{host}-{day}-{number}.json"
        number += 1
    return path


def save(results: Results, path: Path, markdown: str) -> Path:
    """Write the JSON file and the Markdown table beside it (same name, `.md`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, results.to_dict())
    path.with_suffix(".md").write_text(markdown)
    return path


def load(path: Path) -> Results:
    """A results file; TrainError naming it when it is missing or not one."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as err:
        raise TrainError(f"results file {path} does not exist") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TrainError(f"{path} is not an ns bench results file: {err}") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TrainError(f"{path} is not an ns bench results file (no format {FORMAT!r})")
    try:
        return Results.from_dict(data)
    except (KeyError, TypeError, ValueError) as err:
        raise TrainError(f"{path} is a damaged ns bench results file: {err!r}") from err


@dataclass(frozen=True, slots=True)
class Change:
    """One row present in both files."""

    section: str
    name: str
    metric: str
    unit: str
    before: float
    after: float
    ratio_before: float | None
    ratio_after: float | None

    @property
    def change(self) -> float:
        """after / before - 1 (raw: +10 % of seconds is slower, of images/s faster)."""
        return self.after / self.before - 1 if self.before else float("inf")

    @property
    def better(self) -> float:
        """How many times better after is than before (more than 1: better, whatever the unit)."""
        return ratio(self.after, self.before, self.unit)


def compare(before: Results, after: Results) -> tuple[list[Change], list[str]]:
    """The rows of both files, matched by section, candidate and metric; and the rows found in
    only one of them (`section: name, metric (only in A/B)`)."""

    def keyed(results: Results) -> dict[tuple[str, str, str], Row]:
        return {(s.name, r.name, r.metric): r for s in results.sections for r in s.rows}

    rows_a, rows_b = keyed(before), keyed(after)
    changes = [
        Change(*key, a.unit, a.median, rows_b[key].median, a.ratio, rows_b[key].ratio)
        for key, a in rows_a.items()
        if key in rows_b
    ]
    alone = [f"{k[0]}: {k[1]}, {k[2]} (only in A)" for k in rows_a if k not in rows_b]
    alone += [f"{k[0]}: {k[1]}, {k[2]} (only in B)" for k in rows_b if k not in rows_a]
    return changes, alone
