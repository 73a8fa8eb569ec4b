"""The pseudo-label store: per source shard, the teacher's top-k classes and probabilities.

One `NAME-000000.labels.safetensors` per source shard holds `sample_id` (int64 [n]),
`topk_class` (int32 [n, k]) and `topk_prob` (float16 [n, k]), plus JSON metadata naming the
teacher. The full C-way vector is never stored (300M × 1000 float32 would be 1.2 TB).
Files are written under a temporary name and renamed, so finished shards survive a crash.
A sample the teacher could not read has probability 0 everywhere (class 0): any threshold drops it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save

from ns_data.atomic import atomic_path
from ns_data.errors import DataError

if TYPE_CHECKING:
    import torch

SUFFIX = ".labels.safetensors"


def labels_file(out_dir: Path, tar_name: str) -> Path:
    """Where the pseudo labels of source shard `tar_name` go."""
    return Path(out_dir) / (tar_name.removesuffix(".tar") + SUFFIX)


@dataclass(frozen=True, slots=True)
class TeacherInfo:
    """Who made the pseudo labels and how: checkpoint, model, classes, temperature, k, content id."""

    checkpoint: str
    model_name: str
    class_names: list[str]
    temperature: float = 1.0
    topk: int = 10
    teacher_id: str = ""
    """A hash of the checkpoint's files: equal ids give equal labels, whatever the path."""

    def same_labels_as(self, other: TeacherInfo) -> bool:
        """True when `other` writes the same labels: same weights, temperature and k."""
        return (self.teacher_id, self.temperature, self.topk) == (
            other.teacher_id,
            other.temperature,
            other.topk,
        )


def write_shard_labels(
    path: Path,
    sample_ids: np.ndarray,
    topk_class: np.ndarray,
    topk_prob: np.ndarray,
    teacher: TeacherInfo,
) -> None:
    """Write one shard's pseudo labels atomically."""
    meta = {"teacher": json.dumps(asdict(teacher))}
    tensors: dict[str, np.ndarray] = {
        "sample_id": np.ascontiguousarray(sample_ids, dtype=np.int64),
        "topk_class": np.ascontiguousarray(topk_class, dtype=np.int32),
        "topk_prob": np.ascontiguousarray(topk_prob, dtype=np.float16),
    }
    data = save(tensors, metadata=meta)  # bytes, written by Python: a full disk is an OSError
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_teacher(path: Path) -> TeacherInfo:
    """The teacher named in one labels file's metadata (reads the header only)."""
    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise DataError(f"cannot read {path}: {err}; delete it and rerun `ns label`") from err
    if "teacher" not in meta:
        raise DataError(f"{path} has no teacher metadata: it was not written by `ns label`")
    return TeacherInfo(**json.loads(meta["teacher"]))


def read_top1(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One labels file's sample ids, top-1 classes and top-1 probabilities (the rest unread)."""
    try:
        with safe_open(str(path), framework="numpy") as handle:
            ids = handle.get_tensor("sample_id")
            top_class = handle.get_slice("topk_class")[:, 0:1]
            top_prob = handle.get_slice("topk_prob")[:, 0:1]
    except (SafetensorError, OSError) as err:
        raise DataError(f"cannot read {path}: {err}; delete it and rerun `ns label`") from err
    return ids, top_class[:, 0], top_prob[:, 0]


_TENSORS = ("sample_id", "topk_class", "topk_prob")


def _check_labels(
    path: Path, part: dict[str, np.ndarray], teacher: TeacherInfo, first: Path
) -> None:
    """Refuse (DataError naming the file) a labels file that `ns label` with `teacher` (the one of
    the folder's first file) would not have written: another teacher, missing tensors, shapes or
    dtypes that do not match, classes out of range, probabilities outside [0, 1]."""
    fix = "delete it and rerun `ns label`"
    found = read_teacher(path) if path != first else teacher
    if not found.same_labels_as(teacher) or found.class_names != teacher.class_names:
        raise DataError(
            f"{path} was made by another teacher or settings (id {found.teacher_id}, "
            f"T={found.temperature}, top-{found.topk}) than {first.name} (id {teacher.teacher_id}, "
            f"T={teacher.temperature}, top-{teacher.topk}): relabel the set with one teacher "
            "(`ns label --overwrite`)"
        )
    missing = [name for name in _TENSORS if name not in part]
    if missing:
        raise DataError(f"{path} has no {missing[0]} tensor; {fix}")
    ids, classes, probs = (part[name] for name in _TENSORS)
    k = min(teacher.topk, len(teacher.class_names))
    if ids.ndim != 1 or classes.shape != (len(ids), k) or probs.shape != classes.shape:
        raise DataError(
            f"{path} holds sample_id {ids.shape}, topk_class {classes.shape} and topk_prob "
            f"{probs.shape}, not [n], [n, {k}] and [n, {k}] as its teacher's top-{k}; {fix}"
        )
    kinds = (ids.dtype.kind, classes.dtype.kind, probs.dtype.kind)
    if kinds[0] not in "iu" or kinds[1] not in "iu" or kinds[2] != "f":
        raise DataError(
            f"{path} holds {ids.dtype} ids, {classes.dtype} classes and {probs.dtype} "
            f"probabilities, not integers, integers and floats; {fix}"
        )
    if classes.size and not (classes.min() >= 0 and classes.max() < len(teacher.class_names)):
        raise DataError(
            f"{path} names classes {int(classes.min())}..{int(classes.max())}, outside its "
            f"teacher's {len(teacher.class_names)} classes; {fix}"
        )
    if probs.size and not (np.isfinite(probs).all() and probs.min() >= 0 and probs.max() <= 1):
        raise DataError(f"{path} holds probabilities outside [0, 1] (or NaN); {fix}")


class PseudoLabels:
    """The pseudo labels of a folder, joined by global sample id: all of them, or (`tars`) only
    those of some source shards, as a rank that reads only its own shards needs."""

    def __init__(self, directory: str | Path, tars: list[str] | None = None) -> None:
        self.directory = Path(directory)
        if tars is None:
            files = sorted(self.directory.glob(f"*{SUFFIX}"))
        else:
            files = [labels_file(self.directory, tar) for tar in tars]
            missing = [f.name for f in files if not f.exists()]
            if missing:
                raise DataError(
                    f"{self.directory} has no {missing[0]} ({len(missing)} shard(s) unlabeled): "
                    "finish `ns label` on the set"
                )
        if not files:
            raise DataError(f"{self.directory} holds no pseudo labels; make them with `ns label`")
        try:
            parts = [load_file(str(f)) for f in files]
        except (SafetensorError, OSError) as err:
            raise DataError(
                f"cannot read pseudo labels in {self.directory}: {err}; rerun `ns label`"
            ) from err
        self.teacher = read_teacher(files[0])
        for path, part in zip(files, parts, strict=True):
            _check_labels(path, part, self.teacher, files[0])
        ids = np.concatenate([p["sample_id"] for p in parts])
        order = np.argsort(ids, kind="stable")
        self.sample_id = ids[order]
        self.topk_class = np.concatenate([p["topk_class"] for p in parts])[order]
        self.topk_prob = np.concatenate([p["topk_prob"] for p in parts])[order]
        if len(np.unique(self.sample_id)) != len(self.sample_id):
            raise DataError(
                f"{self.directory} labels some samples twice; delete it and rerun `ns label`"
            )

    def __len__(self) -> int:
        return len(self.sample_id)

    @property
    def num_classes(self) -> int:
        return len(self.teacher.class_names)

    def rows_of(self, sample_ids: np.ndarray) -> np.ndarray:
        """Positions of `sample_ids` in this store; DataError when one has no pseudo label."""
        rows = np.searchsorted(self.sample_id, sample_ids)
        rows = np.minimum(rows, len(self.sample_id) - 1)
        missing = self.sample_id[rows] != sample_ids
        if missing.any():
            first = int(np.asarray(sample_ids)[missing][0])
            raise DataError(
                f"sample {first} has no pseudo label in {self.directory}; rerun `ns label`"
            )
        return rows

    def top1(self) -> tuple[np.ndarray, np.ndarray]:
        """Each sample's most likely class (int32) and its probability (float16), in id order."""
        return self.topk_class[:, 0], self.topk_prob[:, 0]

    def dense(
        self,
        sample_ids: torch.Tensor | np.ndarray,
        *,
        hard: bool = False,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Targets [B, C] on `device` for a batch: the top-k probabilities renormalized, or one-hot
        of the top-1. Built on the host from host ids and copied without waiting (no GPU sync)."""
        import torch  # here, so that reading label files (`ns info`, `ns status`) needs no torch

        ids = sample_ids.numpy() if isinstance(sample_ids, torch.Tensor) else sample_ids
        rows = self.rows_of(ids)
        classes = torch.from_numpy(self.topk_class[rows].astype(np.int64))
        out = torch.zeros(len(rows), self.num_classes)
        if hard:
            out.scatter_(1, classes[:, :1], 1.0)
        else:
            out.scatter_(1, classes, torch.from_numpy(self.topk_prob[rows].astype(np.float32)))
            out /= out.sum(1, keepdim=True).clamp_min(1e-12)
        device = torch.device(device)
        if device.type == "cuda":
            out = out.pin_memory()
        return out.to(device, non_blocking=True)
