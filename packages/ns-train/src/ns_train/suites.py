"""Robustness suites of `ns eval --suite`: ImageNet-C (corruption error) and ImageNet-A.

    result = evaluate_imagenet_c(Path("ckpt"), Path("imagenet-c"), Path("out"), clean=Path("val"))

ImageNet-C's released layout is `ROOT/CORRUPTION/SEVERITY/WNID/*.JPEG`; `ns corrupt` writes the
same layout, or one shard set per corruption and severity (`ROOT/CORRUPTION/SEVERITY/` holding a
`manifest.json`): both are read. Each corruption and severity is one unit whose result is saved
as soon as it is known, so a killed evaluation continues with the units not yet done.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ns_data.atomic import atomic_path, write_json
from ns_data.manifest import MANIFEST_NAME
from ns_train.errors import TrainError
from ns_train.eval_report import (
    EvalReport,
    evaluate_loaded,
    labeled_shards,
    load_for_eval,
    write_eval_report,
)
from ns_train.plots import plot_corruption_errors
from ns_train.robustness_metrics import (
    BENCHMARK_CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    IMAGENET_A_INDICES,
    CorruptionSummary,
    corruption_summary,
)
from ns_train.runtime import start

SUITES = ("imagenet-c", "imagenet-a")
IMAGENET_C_JSON = "imagenet-c.json"
IMAGENET_C_MD = "imagenet-c.md"
IMAGENET_C_PLOT = "imagenet-c.png"
UNITS_DIR = "units"
KNOWN_CORRUPTIONS = (*BENCHMARK_CORRUPTIONS, *EXTRA_CORRUPTIONS)


@dataclass(frozen=True, slots=True)
class Unit:
    """One corruption at one severity: a folder of class folders or a shard set."""

    corruption: str
    severity: int
    path: Path

    @property
    def name(self) -> str:
        return f"{self.corruption}-{self.severity}"


@dataclass(frozen=True, slots=True)
class CorruptionResult:
    """Top-1 error of every unit evaluated, and the CE / mCE summary over them."""

    errors: dict[str, dict[int, float]]
    clean_error: float | None
    summary: CorruptionSummary
    evaluated: int
    reused: int
    out: Path


def find_units(root: Path) -> list[Unit]:
    """The corruption × severity units under `root`; TrainError naming what was found instead."""
    expected = (
        f"expected {root}/CORRUPTION/SEVERITY/CLASS/images (ImageNet-C's layout, or `ns corrupt`'s)"
        f" with CORRUPTION one of {', '.join(KNOWN_CORRUPTIONS[:4])}, … and SEVERITY 1-5"
    )
    if not root.is_dir():
        raise TrainError(f"{root} is not a folder; {expected}")
    units, unknown = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name not in KNOWN_CORRUPTIONS:
            unknown.append(folder.name)
            continue
        for level in sorted(p for p in folder.iterdir() if p.is_dir()):
            if level.name not in {"1", "2", "3", "4", "5"}:
                raise TrainError(f"{level} is not a severity folder (1-5); {expected}")
            if not (level / MANIFEST_NAME).is_file() and not any(
                p.is_dir() for p in level.iterdir()
            ):
                raise TrainError(
                    f"{level} holds no class folders and no shard set: re-extract it or remove it"
                )
            units.append(Unit(folder.name, int(level.name), level))
    if not units:
        found = ", ".join(unknown[:5]) or "nothing"
        raise TrainError(f"{root} holds no corruption folders (found {found}); {expected}")
    return units


def evaluate_imagenet_c(
    checkpoint: Path,
    root: Path,
    out: Path,
    *,
    clean: Path | None = None,
    baseline: Path | None = None,
    limit_per_class: int | None = None,
    batch_size: int = 128,
    backend: str = "auto",
    device: str = "auto",
    workers: int | None = None,
    notify: Callable[[str], None] = lambda line: None,
) -> CorruptionResult:
    """Top-1 error per corruption and severity, CE and mCE (AlexNet-normalized, or by another
    model's `imagenet-c.json` given as `baseline`), relative mCE when `clean` data is given."""
    units = find_units(Path(root))
    base = _read_baseline(baseline) if baseline is not None else None
    runtime = start(device)
    loaded = load_for_eval(checkpoint, runtime)
    unit_dir = Path(out) / UNITS_DIR
    evaluated = reused = 0

    def error_of(name: str, data: Path) -> float:
        nonlocal evaluated, reused
        saved = unit_dir / f"{name}.json"
        if saved.is_file():
            reused += 1
            return float(json.loads(saved.read_text())["error"])
        notify(f"{name}: evaluating {data}")
        with labeled_shards(data, runtime, limit_per_class=limit_per_class) as shards:
            report = evaluate_loaded(
                loaded,
                shards,
                runtime,
                batch_size=batch_size,
                backend=backend,
                workers=workers,
                shown_as=data,
            )
        if runtime.is_main:
            unit_dir.mkdir(parents=True, exist_ok=True)
            write_json(saved, _unit_record(report))
        evaluated += 1
        notify(f"{name}: top-1 error {100 * (1 - report.top1):.2f}% ({report.count} images)")
        return 1 - report.top1

    errors: dict[str, dict[int, float]] = {}
    for index, unit in enumerate(units, 1):
        notify(f"[{index}/{len(units)}] {unit.name}")
        errors.setdefault(unit.corruption, {})[unit.severity] = error_of(unit.name, unit.path)
    clean_error = error_of("clean", Path(clean)) if clean is not None else None
    try:
        summary = corruption_summary(
            errors,
            clean_error=clean_error,
            baseline=base[0] if base else None,
            baseline_clean_error=base[1] if base else None,
        )
    except ValueError as err:
        raise TrainError(
            f"cannot normalize the errors in {out}/{UNITS_DIR} ({err}); "
            "use a baseline evaluated on the same corruptions and severities"
        ) from err
    result = CorruptionResult(errors, clean_error, summary, evaluated, reused, Path(out))
    if runtime.is_main:
        _write_imagenet_c(result, checkpoint, root, baseline)
    return result


def _unit_record(report: EvalReport) -> dict[str, object]:
    return {
        "data": report.data,
        "error": 1 - report.top1,
        "top5_error": 1 - report.top5,
        "ece": report.ece,
        "count": report.count,
    }


def _read_baseline(path: Path) -> tuple[dict[str, dict[int, float]], float | None]:
    """Another model's per-severity errors (and clean error) from its `imagenet-c.json`."""
    try:
        stored = json.loads(Path(path).read_text())
        errors = {
            c: {int(s): float(e) for s, e in by_severity.items()}
            for c, by_severity in stored["errors"].items()
        }
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as err:
        raise TrainError(
            f"cannot read baseline {path} ({err}); pass the imagenet-c.json that "
            "`ns eval --suite imagenet-c --out DIR` wrote for the other model"
        ) from err
    return errors, stored.get("clean_error")


def _write_imagenet_c(
    result: CorruptionResult, checkpoint: Path, root: Path, baseline: Path | None
) -> None:
    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / IMAGENET_C_JSON,
        {
            "checkpoint": str(checkpoint),
            "data": str(root),
            "normalized_by": str(baseline) if baseline else "AlexNet",
            "errors": {c: {str(s): e for s, e in v.items()} for c, v in result.errors.items()},
            "clean_error": result.clean_error,
            **result.summary.to_dict(),
        },
    )
    with atomic_path(out / IMAGENET_C_MD) as tmp:
        tmp.write_text(corruption_markdown(result, baseline))
    plot_corruption_errors(result.errors, out / IMAGENET_C_PLOT)


def corruption_markdown(result: CorruptionResult, baseline: Path | None = None) -> str:
    """The ImageNet-C table: error per severity, CE (and relative CE) per corruption, mCE."""
    summary = result.summary
    severities = sorted({s for v in result.errors.values() for s in v})
    header = ["corruption", *(f"sev {s}" for s in severities), "mean error", "CE"]
    relative = summary.relative_mce is not None
    if relative:
        header.append("relative CE")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" + " ---: |" * (len(header) - 1)]
    for corruption in sorted(result.errors, key=_order):
        by_severity = result.errors[corruption]
        cells = [corruption + ("" if corruption in BENCHMARK_CORRUPTIONS else " (extra)")]
        cells += [_pct(by_severity.get(s)) for s in severities]
        cells += [_pct(summary.error[corruption]), _pct(summary.ce[corruption])]
        if relative:
            cells.append(_pct(summary.relative_ce.get(corruption)))
        lines.append("| " + " | ".join(cells) + " |")
    normalizer = f"by {baseline}" if baseline else "by AlexNet's errors"
    lines += [
        "",
        f"mCE {_pct(summary.mce)} over {len(summary.benchmark)} of the 15 benchmark corruptions "
        f"(normalized {normalizer})"
        + (f"; relative mCE {_pct(summary.relative_mce)}" if relative else "")
        + (f"; clean error {_pct(result.clean_error)}" if result.clean_error is not None else "")
        + ".",
    ]
    if summary.missing and summary.benchmark:
        lines.append(f"Not evaluated: {', '.join(summary.missing)}.")
    return "\n".join(lines) + "\n"


def _order(corruption: str) -> int:
    return KNOWN_CORRUPTIONS.index(corruption)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def evaluate_imagenet_a(
    checkpoint: Path,
    root: Path,
    out: Path | None = None,
    *,
    batch_size: int = 128,
    backend: str = "auto",
    device: str = "auto",
    workers: int | None = None,
    limit_per_class: int | None = None,
) -> EvalReport:
    """ImageNet-A (or any subset of the checkpoint's classes): predictions restricted to the
    classes present in the data, as the benchmark does; top-1 and calibration error.

    For a 1,000-class checkpoint whose classes are ImageNet's wnids, the classes found must be
    the benchmark's own 200 (checked against its index list)."""
    runtime = start(device)
    loaded = load_for_eval(checkpoint, runtime)
    with labeled_shards(Path(root), runtime, limit_per_class=limit_per_class) as shards:
        report = evaluate_loaded(
            loaded,
            shards,
            runtime,
            restrict=True,
            batch_size=batch_size,
            backend=backend,
            workers=workers,
            shown_as=Path(root),
        )
    _check_imagenet_a_classes(loaded.meta.class_names, report.class_names, Path(root))
    if out is not None and runtime.is_main:
        write_eval_report(report, Path(out))
    return report


def _check_imagenet_a_classes(model: list[str], present: list[str], root: Path) -> None:
    if len(model) != 1000 or len(present) != len(IMAGENET_A_INDICES):
        return  # another subset of another model: the data's classes are the mask
    indices = sorted(model.index(name) for name in present)
    if indices != sorted(IMAGENET_A_INDICES):
        raise TrainError(
            f"{root} holds 200 classes, but not ImageNet-A's 200 in the checkpoint's ImageNet "
            "order; check that its class names are ImageNet-1k wnids sorted as usual"
        )
