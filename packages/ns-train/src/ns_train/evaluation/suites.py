"""Robustness suites of `ns eval --suite`: ImageNet-C (corruption error), ImageNet-A and
ImageNet-P (flip rates).

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
from typing import Any

import numpy as np
import torch

from ns_data.atomic import atomic_path, write_json
from ns_data.errors import DataError
from ns_data.loading.config import LoaderConfig
from ns_data.loading.torch_backend import build_transform
from ns_data.loading.views import View
from ns_data.robustness.names import VIDEO_SUFFIX
from ns_data.shards.manifest import MANIFEST_NAME
from ns_models import read_config, teacher_mode
from ns_train.config import loader_with_old_keywords
from ns_train.errors import TrainError
from ns_train.evaluation.report import (
    EvalReport,
    LoadedCheckpoint,
    evaluate_checkpoint,
    evaluate_loaded,
    labeled_shards,
    load_for_eval,
    write_eval_report,
)
from ns_train.evaluation.robustness_metrics import (
    BENCHMARK_CORRUPTIONS,
    BENCHMARK_PERTURBATIONS,
    EXTRA_CORRUPTIONS,
    EXTRA_PERTURBATIONS,
    IMAGENET_A_INDICES,
    NOISE_PERTURBATIONS,
    CorruptionSummary,
    corruption_summary,
    flip_probability,
    flip_rate,
    mean_flip_rate,
    top5_distance,
)
from ns_train.plots import plot_corruption_errors
from ns_train.progress import job_progress
from ns_train.ranks import broadcast
from ns_train.runtime import Runtime, start

SUITES = ("imagenet-c", "imagenet-a", "imagenet-p")
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
    loader: LoaderConfig | None = None,
    device: str = "auto",
    show_progress: bool = False,
    notify: Callable[[str], None] = lambda line: None,
    **old_keywords: Any,
) -> CorruptionResult:
    """Top-1 error per corruption and severity, CE and mCE (AlexNet-normalized, or by another
    model's `imagenet-c.json` given as `baseline`), relative mCE when `clean` data is given;
    `show_progress`: a bar over the units with the time left; `loader`: backend and workers
    (ns 0.2's `backend=` and `workers=` are still read, for one version)."""
    loader = loader_with_old_keywords(loader, old_keywords, "evaluate_imagenet_c")
    units = find_units(Path(root))
    base = _read_baseline(baseline) if baseline is not None else None
    runtime = start(device)
    loaded = load_for_eval(checkpoint, runtime)
    unit_dir = Path(out) / UNITS_DIR
    evaluated = reused = 0

    def error_of(name: str, data: Path) -> float:
        nonlocal evaluated, reused
        saved = unit_dir / f"{name}.json"
        if broadcast(runtime, saved.is_file()):  # rank 0 decides, so all ranks evaluate alike
            reused += 1
            return float(json.loads(saved.read_text())["error"])
        notify(f"{name}: evaluating {data}")
        with labeled_shards(data, runtime, limit_per_class=limit_per_class) as shards:
            report = evaluate_loaded(
                loaded,
                shards,
                runtime,
                batch_size=batch_size,
                loader=loader,
                shown_as=data,
            )
        if runtime.is_main:
            unit_dir.mkdir(parents=True, exist_ok=True)
            write_json(saved, _unit_record(report))
        evaluated += 1
        notify(f"{name}: top-1 error {100 * (1 - report.top1):.2f}% ({report.count} images)")
        return 1 - report.top1

    errors: dict[str, dict[int, float]] = {}
    with job_progress(show_progress and runtime.is_main) as progress:
        task = progress.add_task("imagenet-c", total=len(units) + (clean is not None), info="")
        for unit in units:
            progress.update(task, info=unit.name)
            errors.setdefault(unit.corruption, {})[unit.severity] = error_of(unit.name, unit.path)
            progress.advance(task)
        clean_error = None
        if clean is not None:
            progress.update(task, info="clean")
            clean_error = error_of("clean", Path(clean))
            progress.advance(task)
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
    loader: LoaderConfig | None = None,
    device: str = "auto",
    limit_per_class: int | None = None,
    **old_keywords: Any,
) -> EvalReport:
    """ImageNet-A (or any subset of the checkpoint's classes): predictions restricted to the
    classes present in the data, as the benchmark does; top-1 and calibration error.

    For a 1,000-class checkpoint whose classes are ImageNet's wnids, the classes found must be
    the benchmark's own 200 (checked against its index list)."""
    report = evaluate_checkpoint(
        checkpoint,
        Path(root),
        restrict=True,
        batch_size=batch_size,
        loader=loader_with_old_keywords(loader, old_keywords, "evaluate_imagenet_a"),
        device=device,
        limit_per_class=limit_per_class,
    )
    _check_imagenet_a_classes(read_config(checkpoint).class_names, report.class_names, Path(root))
    if out is not None:
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


IMAGENET_P_JSON = "imagenet-p.json"
IMAGENET_P_MD = "imagenet-p.md"
KNOWN_PERTURBATIONS = (*BENCHMARK_PERTURBATIONS, *EXTRA_PERTURBATIONS)


@dataclass(frozen=True, slots=True)
class PerturbationResult:
    """Flip probability and top-5 distance per perturbation; flip rates when a baseline is given."""

    flip_probability: dict[str, float]
    top5_distance: dict[str, float]
    flip_rate: dict[str, float]
    mfr: float | None
    mean_top5_distance: float | None
    """mT5D: the top-5 distance averaged over the benchmark perturbations present."""
    unreadable: dict[str, list[str]]
    out: Path


def find_sequences(
    root: Path, limit_per_class: int | None = None
) -> dict[str, list[tuple[Path, str]]]:
    """Per perturbation folder of `root`: its videos and their classes (`PERT/CLASS/*.mp4`)."""
    expected = (
        f"expected {root}/PERTURBATION/CLASS/*.mp4 (ImageNet-P's layout, or `ns perturb`'s) with "
        f"PERTURBATION one of {', '.join(KNOWN_PERTURBATIONS[:4])}, …"
    )
    if not root.is_dir():
        raise TrainError(f"{root} is not a folder; {expected}")
    found: dict[str, list[tuple[Path, str]]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name in KNOWN_PERTURBATIONS):
        videos = []
        for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            files = sorted(class_dir.glob(f"*{VIDEO_SUFFIX}"))[:limit_per_class]
            videos += [(path, class_dir.name) for path in files]
        if not videos:
            raise TrainError(
                f"{folder} holds no {VIDEO_SUFFIX} videos in class folders; {expected}"
            )
        found[folder.name] = videos
    if not found:
        names = ", ".join(p.name for p in sorted(root.iterdir())[:5]) or "nothing"
        raise TrainError(f"{root} holds no perturbation folders (found {names}); {expected}")
    return found


def evaluate_imagenet_p(
    checkpoint: Path,
    root: Path,
    out: Path,
    *,
    baseline: Path | None = None,
    limit_per_class: int | None = None,
    batch_size: int = 128,
    device: str = "auto",
    show_progress: bool = False,
    notify: Callable[[str], None] = lambda line: None,
) -> PerturbationResult:
    """Flip probability (noise sequences against their first frame, the others frame to frame),
    top-5 distance, and with `baseline` (another model's `imagenet-p.json`) flip rates and mFR.
    One process; each perturbation's result is saved as soon as it is known (resumable)."""
    sequences = find_sequences(Path(root), limit_per_class)
    base = _read_flip_baseline(baseline) if baseline is not None else None
    runtime = start(device)
    if runtime.distributed:
        raise TrainError("--suite imagenet-p runs in one process; start it without torchrun")
    loaded = load_for_eval(checkpoint, runtime)
    unit_dir = Path(out) / UNITS_DIR
    fp, t5d, unreadable = {}, {}, {}
    with job_progress(show_progress) as progress:
        task = progress.add_task("imagenet-p", total=len(sequences), info="")
        for name, videos in sequences.items():
            progress.update(task, info=name)
            saved = unit_dir / f"{name}.json"
            if saved.is_file():
                stored = json.loads(saved.read_text())
            else:
                notify(f"{name}: {len(videos)} sequences")
                stored = _perturbation_unit(loaded, name, videos, batch_size, runtime)
                unit_dir.mkdir(parents=True, exist_ok=True)
                write_json(saved, stored)
            fp[name], t5d[name] = stored["fp"], stored["t5d"]
            unreadable[name] = stored["unreadable"]
            progress.advance(task)
    # A perturbation the baseline never flipped on (or lacks) has no flip rate.
    rates = {name: flip_rate(fp[name], name, base) for name in fp if base and base.get(name)}
    rated = {name: fp[name] for name in rates}
    present = [p for p in BENCHMARK_PERTURBATIONS if p in rates]
    mfr = mean_flip_rate(rated, base) if base and present else None
    benchmark = [p for p in BENCHMARK_PERTURBATIONS if p in t5d]
    mt5d = float(np.mean([t5d[p] for p in benchmark])) if benchmark else None
    result = PerturbationResult(fp, t5d, rates, mfr, mt5d, unreadable, Path(out))
    _write_imagenet_p(result, checkpoint, root, baseline)
    return result


def _perturbation_unit(
    loaded: LoadedCheckpoint,
    name: str,
    videos: list[tuple[Path, str]],
    batch_size: int,
    runtime: Runtime,
) -> dict[str, object]:
    from ns_data.robustness.perturb import read_video  # OpenCV, scikit-image: ImageNet-P only

    noise = name in NOISE_PERTURBATIONS
    view = View(image_size=loaded.meta.image_size, channels_last=True)
    transform = build_transform(view)
    flips, distances, unreadable = [], [], []
    for path, _ in videos:
        try:
            frames = read_video(path)
        except DataError:
            unreadable.append(str(path))
            continue
        top5 = _frame_rankings(loaded.model, frames, transform, batch_size, runtime.device)
        flips.append(flip_probability(top5[None, :, 0], noise))
        distances.append(top5_distance(top5[None], noise))
    if not flips:
        raise TrainError(f"no video of {name} could be read ({unreadable[0]} first); re-extract")
    return {
        "fp": float(np.mean(flips)),
        "t5d": float(np.mean(distances)),
        "sequences": len(flips),
        "unreadable": unreadable,
    }


@torch.no_grad()
def _frame_rankings(
    model: torch.nn.Module,
    frames: np.ndarray,
    transform: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """(frames, 5) class ids of each frame's top 5, by decreasing score, in teacher mode."""
    images = torch.stack([transform(torch.from_numpy(f).permute(2, 0, 1)) for f in frames])
    tops = []
    with teacher_mode(model):
        for chunk in images.split(batch_size):
            logits = model(chunk.to(device, memory_format=torch.channels_last)).float()
            tops.append(logits.topk(min(5, logits.shape[1]), dim=1).indices.cpu())
    return torch.cat(tops).numpy()


def _read_flip_baseline(path: Path) -> dict[str, float]:
    try:
        stored = json.loads(Path(path).read_text())
        return {name: float(value) for name, value in stored["flip_probability"].items()}
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as err:
        raise TrainError(
            f"cannot read baseline {path} ({err}); pass the imagenet-p.json that "
            "`ns eval --suite imagenet-p --out DIR` wrote for the other model"
        ) from err


def _write_imagenet_p(
    result: PerturbationResult, checkpoint: Path, root: Path, baseline: Path | None
) -> None:
    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / IMAGENET_P_JSON,
        {
            "checkpoint": str(checkpoint),
            "data": str(root),
            "normalized_by": str(baseline) if baseline else None,
            "flip_probability": result.flip_probability,
            "top5_distance": result.top5_distance,
            "flip_rate": result.flip_rate,
            "mfr": result.mfr,
            "mean_top5_distance": result.mean_top5_distance,
            "unreadable": result.unreadable,
        },
    )
    lines = [
        "| perturbation | flip probability | top-5 distance | flip rate |",
        "|---|---:|---:|---:|",
    ]
    for name, fp in result.flip_probability.items():
        rate = result.flip_rate.get(name)
        extra = "" if name in BENCHMARK_PERTURBATIONS else " (extra)"
        lines.append(
            f"| {name}{extra} | {100 * fp:.2f}% | {result.top5_distance[name]:.3f} | "
            f"{'—' if rate is None else f'{100 * rate:.1f}'} |"
        )
    lines.append("")
    if result.mean_top5_distance is not None:
        lines.append(
            f"mT5D {result.mean_top5_distance:.3f} over the benchmark perturbations present."
        )
    lines.append(
        f"mFR {100 * result.mfr:.1f} (normalized by {baseline})."
        if result.mfr is not None
        else "No mFR: pass --baseline OTHER/imagenet-p.json (AlexNet's flip probabilities are not "
        "published in the benchmark's code)."
    )
    skipped = sum(len(v) for v in result.unreadable.values())
    if skipped:
        lines.append(f"{skipped} unreadable videos skipped (listed in {IMAGENET_P_JSON}).")
    with atomic_path(out / IMAGENET_P_MD) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
