"""ImageNet-P-style perturbation sequences of any labeled eval set, as short videos.

    perturb_set("shards/val", "val-p", perturbations=["translate", "gaussian_noise"])

Each image becomes one sequence per perturbation, written as
`OUT/<perturbation>/<class>/<key>.mp4` (the released ImageNet-P layout), frame 0 the clean image:

- noise (gaussian_noise σ 0.03, shot_noise at 300 photons, speckle_noise σ 0.05): frames 1-30 are
  independent draws of the noise on the clean image; the evaluation compares each with frame 0.
- brightness: the HSV value shifted by (i - 15) · 0.02, i = 0..30.
- translate: a horizontal shift of (i - 20) pixels at 224 px (scaled to the image's size),
  i = 0..40; rotate: (i - 15) degrees; scale: zoom (40 + 2.5 i) %; tilt: a perspective view
  turned (i - 15) degrees about both axes, i = 0..30. Geometric frames are bilinear.

The schedules are those of the benchmark's `make_imagenet_p.py` (hendrycks/robustness). Frames
are encoded with OpenCV's video writer (MPEG-4 part 2 at its highest quality) and read back with
OpenCV's reader, as the benchmark's loader does; the benchmark encoded H.264 (crf 20), which
OpenCV's wheels do not ship. Each perturbation is one unit, written under a temporary name and
renamed into place, so a rerun skips finished perturbations.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from skimage.color import hsv2rgb, rgb2hsv

from ns_data.atomic import atomic_path, write_json
from ns_data.errors import DataError
from ns_data.ingest.labeled_source import (
    LabeledImages,
    decode_rgb,
    open_labeled,
    released_name,
    select_per_class,
)
from ns_data.progress import image_progress
from ns_data.robustness.names import PERTURBATIONS_RECORD as RECORD_NAME
from ns_data.robustness.names import VIDEO_SUFFIX

PERTURBATIONS = (
    "gaussian_noise",
    "shot_noise",
    "speckle_noise",
    "brightness",
    "translate",
    "rotate",
    "scale",
    "tilt",
)
NOISE = frozenset({"gaussian_noise", "shot_noise", "speckle_noise"})
_REFERENCE_SIDE = 224


def check_perturbation(name: str) -> None:
    if name not in PERTURBATIONS:
        raise DataError(f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}")


def perturbation_frames(pixels: np.ndarray, name: str, seed: int) -> np.ndarray:
    """The sequence of `pixels` (uint8 HWC RGB) under `name`: (frames, H, W, 3) uint8."""
    check_perturbation(name)
    if name in NOISE:
        rng = np.random.default_rng(seed)
        clean = pixels.astype(np.float64) / 255
        frames = [pixels] + [_noisy(clean, name, rng) for _ in range(30)]
    elif name == "brightness":
        hsv = rgb2hsv(pixels)
        frames = [_brightened(hsv, (i - 15) * 0.02) for i in range(31)]
    else:
        frames = [_warped(pixels, name, i) for i in range(41 if name == "translate" else 31)]
    return np.stack(frames)


def _noisy(clean: np.ndarray, name: str, rng: np.random.Generator) -> np.ndarray:
    if name == "gaussian_noise":
        noisy = clean + rng.normal(scale=0.03, size=clean.shape)
    elif name == "shot_noise":
        noisy = rng.poisson(clean * 300) / 300
    else:
        noisy = clean + clean * rng.normal(scale=0.05, size=clean.shape)
    return (np.clip(noisy, 0, 1) * 255).astype(np.uint8)


def _brightened(hsv: np.ndarray, shift: float) -> np.ndarray:
    shifted = hsv.copy()
    shifted[..., 2] = np.clip(shifted[..., 2] + shift, 0, 1)
    return (hsv2rgb(shifted) * 255).astype(np.uint8)


def _warped(pixels: np.ndarray, name: str, i: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    center = (width / 2, height / 2)
    if name == "translate":
        shift = (i - 20) * min(height, width) / _REFERENCE_SIDE
        matrix: np.ndarray = np.array([[1, 0, shift], [0, 1, 0]], dtype=np.float64)
    elif name == "rotate":
        matrix = cv2.getRotationMatrix2D(center, -(i - 15), 1.0)
    elif name == "scale":
        matrix = cv2.getRotationMatrix2D(center, 0, (i * 2.5 + 40) / 100)
    else:
        return _tilted(pixels, np.deg2rad(i - 15))
    return cv2.warpAffine(pixels, matrix, (width, height), flags=cv2.INTER_LINEAR)


def _tilted(pixels: np.ndarray, angle: float) -> np.ndarray:
    """The image seen from a camera turned `angle` about both axes, at its diagonal's distance."""
    height, width = pixels.shape[:2]
    f = np.sqrt(width**2 + height**2)
    to_center = np.array([[1, 0, -width / 2], [0, 1, -height / 2], [0, 0, 1], [0, 0, 1]])
    c, s = np.cos(angle), np.sin(angle)
    about_x = np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]])
    about_y = np.array([[c, 0, -s, 0], [0, 1, 0, 0], [s, 0, c, 0], [0, 0, 0, 1]])
    away = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, f], [0, 0, 0, 1]])
    project = np.array([[f, 0, width / 2, 0], [0, f, height / 2, 0], [0, 0, 1, 0]])
    matrix = project @ away @ about_x @ about_y @ to_center
    return cv2.warpPerspective(pixels, matrix, (width, height), flags=cv2.INTER_LINEAR)


def write_video(frames: np.ndarray, path: Path) -> None:
    """Encode (frames, H, W, 3) uint8 RGB as an MPEG-4 video at 1 frame per second."""
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 1.0, (width, height))
    if not writer.isOpened():
        raise DataError(f"OpenCV cannot write the video {path}; check the folder is writable")
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def read_video(path: Path) -> np.ndarray:
    """Every frame of a video as (frames, H, W, 3) uint8 RGB; DataError when none can be read."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    if len(frames) < 2:
        raise DataError(f"{path} is not a readable video of 2 or more frames; re-extract it")
    return np.stack(frames)


@dataclass(frozen=True, slots=True)
class PerturbReport:
    """Perturbations written and skipped (done before), sequences written, seconds."""

    written: int
    skipped: int
    sequences: int
    seconds: float
    out: Path


@dataclass(frozen=True)
class _Job:
    images: LabeledImages
    positions: list[int]
    name: str
    seed: int
    target: Path


def perturb_set(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    perturbations: Sequence[str] = PERTURBATIONS,
    seed: int = 0,
    limit_per_class: int | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> PerturbReport:
    """Write one sequence per image and perturbation of a labeled shard set or class-folder tree
    under `out` (see the module docstring); finished perturbations are skipped on a rerun."""
    started = time.perf_counter()
    names = list(dict.fromkeys(perturbations))
    if not names:
        raise DataError("no perturbation was asked for; pass at least one")
    for name in names:
        check_perturbation(name)
    if limit_per_class is not None and limit_per_class < 1:
        raise DataError(f"limit per class {limit_per_class} is not positive; pass 1 or more")
    source_path, out_path = Path(source).absolute(), Path(out).absolute()
    images = open_labeled(source_path)
    positions = select_per_class(images.labels, limit_per_class)
    out_path.mkdir(parents=True, exist_ok=True)
    for unfinished in out_path.glob(".*.tmp-*"):
        shutil.rmtree(unfinished, ignore_errors=True)
    jobs = [
        _Job(images, positions, name, seed, out_path / name)
        for name in names
        if not (out_path / name).exists()
    ]
    with image_progress(progress) as bar:
        task = bar.add_task("perturb", total=len(jobs) * len(positions), bytes=0)
        if min(workers or len(os.sched_getaffinity(0)), len(jobs)) <= 1:
            for job in jobs:
                _write_perturbation(job)
                bar.advance(task, len(positions))
        else:
            context = get_context("spawn")  # OpenCV's thread pool hangs a forked child
            with ProcessPoolExecutor(min(workers or len(jobs), len(jobs)), context) as pool:
                for _ in pool.map(_write_perturbation, jobs):
                    bar.advance(task, len(positions))
    write_json(
        out_path / RECORD_NAME,
        {
            "source": images.description,
            "seed": seed,
            "limit_per_class": limit_per_class,
            "perturbations": sorted(p.name for p in out_path.iterdir() if p.name in PERTURBATIONS),
        },
    )
    return PerturbReport(
        written=len(jobs),
        skipped=len(names) - len(jobs),
        sequences=len(jobs) * len(positions),
        seconds=time.perf_counter() - started,
        out=out_path,
    )


def _write_perturbation(job: _Job) -> None:
    """All sequences of one perturbation, under a temporary folder renamed into place."""
    index = PERTURBATIONS.index(job.name)
    with atomic_path(job.target) as tmp:
        try:
            for position in job.positions:
                pixels = decode_rgb(job.images, position)
                seed = int(np.random.SeedSequence([job.seed, index, position]).generate_state(1)[0])
                name = released_name(job.images, position).removesuffix(".JPEG") + VIDEO_SUFFIX
                path = tmp / name
                path.parent.mkdir(parents=True, exist_ok=True)
                write_video(perturbation_frames(pixels, job.name, seed), path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
