"""The report of a run: `RUN/report.md` (one row per iteration) and its PNG plots.

Everything is read back from the run directory (`metrics.jsonl`, the pseudo labels), so the
report of a finished or half-finished run can be rebuilt at any time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ns_data.atomic import atomic_path
from ns_data.labels.store import PseudoLabels
from ns_train.plots import save_figure
from ns_train.runs.folder import (
    Record,
    RobustnessScores,
    RunLayout,
    Step,
    StepValues,
    find_record,
    read_records,
)

ACCURACY_PLOT = "accuracy.png"
CONFIDENCE_PLOT = "confidence.png"
PER_CLASS_PLOT = "per_class.png"
ROBUSTNESS_PLOT = "robustness.png"

_COLUMNS = (
    "iteration",
    "model",
    "teacher top-1",
    "top-1",
    "top-5",
    "pseudo-labeled used",
    "kept",
    "dropped",
    "duplicated",
    "wall time",
)


def model_rows(records: list[Record]) -> list[tuple[str, Record]]:
    """(label, record) of every trained model in order: teacher, students, baselines."""
    names: dict[str, str] = {
        Step.TEACHER: "",
        Step.STUDENT: "",
        Step.UNNOISED: " (no noise)",
        Step.ORACLE: " (oracle: true labels)",
    }
    return [
        (f"{r['iteration']}{names[r['step']]}", r)
        for r in sorted(records, key=lambda r: r["iteration"])
        if r["step"] in names
    ]


def table_rows(records: list[Record]) -> list[list[str]]:
    """The report's table: one row per trained model, the columns of `_COLUMNS`."""
    rows = []
    for label, model in model_rows(records):
        number = model["iteration"]
        plan: StepValues = find_record(records, number, Step.PLAN) or {}
        teacher = find_record(records, number - 1, Step.STUDENT if number > 1 else Step.TEACHER)
        wall = sum(
            found["wall_s"]
            for step in ((Step.LABEL, Step.PLAN) if model["step"] == Step.STUDENT else ())
            if (found := find_record(records, number, step)) is not None
        )
        rows.append(
            [
                label,
                f"{model['model']} @ {model['image_size']} px",
                _percent(teacher["top1"]) if teacher else "—",
                _percent(model["top1"]),
                _percent(model["top5"]),
                *(str(plan.get(key, "—")) for key in ("used", "kept", "dropped", "duplicated")),
                _duration(model["wall_s"] + wall),
            ]
        )
    return rows


def report_markdown(layout: RunLayout) -> str:
    """The report as Markdown (what `report.md` holds and `ns run` prints)."""
    records = read_records(layout)
    config = json.loads(layout.config.read_text()) if layout.config.exists() else {}
    lines = [
        f"# Noisy Student run `{layout.root}`",
        "",
        f"Preset/config: **{config.get('name', '?')}**; {config.get('iterations', '?')} "
        "student iterations; top-1/top-5 of each model's EMA weights on the eval set.",
        "",
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
        *("| " + " | ".join(row) + " |" for row in table_rows(records)),
        "",
        "'pseudo-labeled used' counts images per student epoch after filtering and balancing "
        "(kept once + duplicated copies); wall time includes labeling and selection.",
        "",
    ]
    robustness = next((r for r in records if r["step"] == Step.ROBUSTNESS), None)
    if robustness is not None:
        lines += robustness_lines(robustness)
    lines += [f"![{name}]({name})" for name in _plots(layout, records)]
    return "\n".join(lines) + "\n"


def robustness_lines(record: Record) -> list[str]:
    """The robustness table: each model's mCE relative to the teacher (100) and to AlexNet."""
    models = record["models"]
    lines = [
        "## Robustness to corruptions",
        "",
        f"Every model on the eval set corrupted ImageNet-C style ({record['units']} corruption × "
        "severity sets). mCE normalized by the teacher: 100 is the teacher, lower is more robust.",
        "",
        "| model | mCE (teacher = 100) | mean corruption error | mCE (AlexNet = 100) |",
        "|---|---:|---:|---:|",
    ]
    for label, values in models.items():
        errors = list(values["error"].values())
        lines.append(
            f"| {label} | {_number(values['mce_vs_teacher'])} | "
            f"{_percent(sum(errors) / len(errors))} | {_number(values['mce_vs_alexnet'])} |"
        )
    return [*lines, ""]


def write_report(layout: RunLayout) -> Path:
    """Write `report.md` and its plots; return the report's path."""
    text = report_markdown(layout)
    with atomic_path(layout.report) as tmp:
        tmp.write_text(text)
    return layout.report


def _plots(layout: RunLayout, records: list[Record]) -> list[str]:
    models = [(label, r) for label, r in model_rows(records) if r["top1"] is not None]
    written = []
    if models:
        _accuracy_plot(models, layout.root / ACCURACY_PLOT)
        _per_class_plot(models, layout.root / PER_CLASS_PLOT)
        written += [ACCURACY_PLOT, PER_CLASS_PLOT]
    labeled = [r["iteration"] for r in records if r["step"] == Step.LABEL]
    if labeled:
        _confidence_plot(layout, sorted(labeled), layout.root / CONFIDENCE_PLOT)
        written.append(CONFIDENCE_PLOT)
    robustness = next((r for r in records if r["step"] == Step.ROBUSTNESS), None)
    if robustness is not None:
        _robustness_plot(robustness["models"], layout.root / ROBUSTNESS_PLOT)
        written.append(ROBUSTNESS_PLOT)
    return written


def _robustness_plot(models: dict[str, RobustnessScores], out: Path) -> None:
    """Mean top-1 error per corruption, one bar group per corruption and a bar per model."""
    corruptions = list(next(iter(models.values()))["error"])
    fig = Figure(figsize=(max(7.0, 0.5 * len(corruptions) * max(1, len(models) / 2)), 3.8))
    ax = fig.subplots()
    width = 0.8 / len(models)
    for index, (label, values) in enumerate(models.items()):
        error = values["error"]
        heights = [100 * error[c] for c in corruptions]
        ax.bar(np.arange(len(corruptions)) + index * width, heights, width, label=label)
    ax.set_xticks(
        np.arange(len(corruptions)) + 0.4 - width / 2, corruptions, rotation=45, ha="right"
    )
    ax.set(ylabel="top-1 error (%)", title="error per corruption (mean over severities)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out)


def _accuracy_plot(models: list[tuple[str, Record]], out: Path) -> None:
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    main = [
        (r["iteration"], _top1_percent(r))
        for _, r in models
        if r["step"] not in (Step.UNNOISED, Step.ORACLE)
    ]
    ax.plot(*zip(*main, strict=True), marker="o", label="teacher → students")
    for _, r in models:
        if r["step"] == Step.UNNOISED:
            ax.scatter(r["iteration"], _top1_percent(r), marker="x", color="red", label="no noise")
        if r["step"] == Step.ORACLE:
            ax.scatter(r["iteration"], _top1_percent(r), marker="*", color="green", label="oracle")
    ax.set_xticks([i for i, _ in main])
    ax.set(xlabel="iteration", ylabel="top-1 (%)", title="eval accuracy per iteration")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)


def _top1_percent(record: Record) -> float:
    top1 = record["top1"]
    assert top1 is not None  # `_plots` plots the models that have one
    return 100 * top1


def _per_class_plot(models: list[tuple[str, Record]], out: Path) -> None:
    per_class = models[0][1]["per_class"]
    assert per_class is not None  # a model with a top-1 has its per-class accuracy
    classes = len(per_class)
    fig = Figure(figsize=(max(6.0, 0.3 * classes * len(models) / 3), 3.6))
    ax = fig.subplots()
    width = 0.8 / len(models)
    for index, (label, r) in enumerate(models):
        x = np.arange(classes) + index * width
        ax.bar(x, 100 * np.asarray(r["per_class"]), width=width, label=f"iteration {label}")
    ax.set(xlabel="class", ylabel="top-1 (%)", title="per-class accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out)


def _confidence_plot(layout: RunLayout, iterations: list[int], out: Path) -> None:
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    for number in iterations:
        _, confidence = PseudoLabels(layout.labels(number)).top1()
        ax.hist(
            confidence.astype(np.float32),
            bins=40,
            range=(0, 1),
            histtype="step",
            label=f"iteration {number}",
        )
    ax.set(xlabel="teacher top-1 probability", ylabel="images", title="pseudo-label confidence")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"
