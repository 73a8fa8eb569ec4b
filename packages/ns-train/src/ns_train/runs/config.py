"""The configuration of a whole Noisy Student run (`ns run`): data, teacher, students, switches.

    config = load_run_config(Path("run.toml"))          # TOML, optionally on top of a preset
    config = from_dict(RunConfig, {"iterations": 3})     # same rules as TrainConfig

A TOML file maps onto `RunConfig` field by field (`[teacher]`, `[student.noise]`, `[label]`, …);
an unknown key is refused naming the nearest field, and the old spellings of renamed fields
(`label_batch_size`, `noised_teacher`, `student.backend`, … in ns 0.2) are read as their new
names. `preset = "NAME"` at the top starts from a preset and changes only the keys the file sets.
Relative data paths are relative to the file.
"""

from __future__ import annotations

import warnings
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from ns_data.labels.selection import DEFAULT_THRESHOLD
from ns_data.loading.config import Backend
from ns_data.robustness.names import CORRUPTIONS, EXTRA_CORRUPTIONS, SEVERITIES
from ns_train.config import LabelConfig, TrainConfig, from_dict, replace, to_dict, upgrade
from ns_train.config_files import merge, read_toml
from ns_train.errors import TrainError


@dataclass(kw_only=True, slots=True)
class DataConfig:
    """Where the images come from: shard sets (`ns shard`), or the embedded digits."""

    source: Literal["shards", "digits"] = "shards"
    """shards: the paths below; digits: scikit-learn's digits written under RUN/data."""
    labeled: str = ""
    """Labeled images: a shard set, or a folder of class folders (or any `ns shard` source)
    that the run shards first."""
    unlabeled: str = ""
    """Unlabeled images the teachers label: a shard set, or any folder or list to shard."""
    eval: str = ""
    """Labeled images every model is evaluated on (shard set or class folders); empty: no
    accuracy in the report."""
    unlabeled_truth: str = ""
    """The unlabeled images with their labels, same order (`oracle_baseline`, source = shards)."""
    shards: str = ""
    """Where sources that are not shard sets are sharded (empty: RUN/shards); point several
    runs at one folder to shard once."""
    labels_per_class: int = 10
    """Digits: labeled images per class (the rest, minus the test set, are unlabeled)."""
    test_per_class: int = 50
    """Digits: test images per class."""
    seed: int = 0
    """Digits: seed of the split into labeled, unlabeled and test images (before ns 0.3 the
    teacher's seed was used: set this to `teacher.seed` to continue such a run)."""

    def __post_init__(self) -> None:
        if self.source == "shards" and not (self.labeled and self.unlabeled):
            raise TrainError(
                "data.labeled and data.unlabeled must name shard sets (`ns shard`), "
                'or set data.source = "digits"'
            )
        if self.source not in ("shards", "digits"):
            raise TrainError(f'data.source must be "shards" or "digits", got {self.source!r}')
        if self.labels_per_class < 1 or self.test_per_class < 1:
            raise TrainError("data.labels_per_class and data.test_per_class must be positive")


@dataclass(kw_only=True, slots=True)
class RobustnessConfig:
    """Whether and how `ns run` measures its models' robustness to corruptions."""

    enabled: bool = False
    """Add the robustness step after the last iteration (needs `data.eval`)."""
    corruptions: tuple[str, ...] = ()
    """ImageNet-C corruption names; empty: the 15 benchmark corruptions and the 4 extra ones."""
    severities: tuple[int, ...] = SEVERITIES
    """Severities 1-5 to apply."""
    images_per_class: int | None = None
    """Corrupt only the first N eval images of each class (None: all of them)."""
    seed: int = 0
    """Seed of the corruptions' randomness (same seed, same images)."""
    backend: Backend = "auto"
    """Loader backend of the evaluations (small images: `torch` starts fastest)."""
    workers: int | None = None
    """Loader workers of the evaluations, and processes that corrupt (None: cores)."""
    batch_size: int = 256
    """Images per forward pass."""

    def __post_init__(self) -> None:
        known = set(CORRUPTIONS) | set(EXTRA_CORRUPTIONS)
        unknown = [c for c in self.corruptions if c not in known]
        if unknown:
            raise TrainError(
                f"robustness.corruptions has unknown names {unknown}; choose from "
                f"{', '.join(sorted(known))}"
            )
        if not self.severities or any(s not in SEVERITIES for s in self.severities):
            raise TrainError(f"robustness.severities must be within 1-5, got {self.severities}")
        if self.images_per_class is not None and self.images_per_class < 1:
            raise TrainError("robustness.images_per_class must be positive or absent")
        if self.batch_size < 1:
            raise TrainError(f"robustness.batch_size must be positive, got {self.batch_size}")

    @property
    def names(self) -> tuple[str, ...]:
        return self.corruptions or (*CORRUPTIONS, *EXTRA_CORRUPTIONS)


@dataclass(kw_only=True, slots=True)
class RunConfig:
    """Iteration 0 trains `teacher`; iterations 1..N label, select and train a `student`."""

    name: str = "custom"
    """The preset it came from (shown in the report)."""
    data: DataConfig = field(default_factory=lambda: DataConfig(source="digits"))
    iterations: int = 2
    """Student iterations after the teacher (the paper: 3, B7 → L2 → L2 → L2)."""
    teacher: TrainConfig = field(default_factory=TrainConfig)
    """Iteration 0: the teacher, trained on the labeled set only (noised too)."""
    student: TrainConfig = field(default_factory=TrainConfig)
    """Every student's job; `model` is replaced per iteration by `students`."""
    students: tuple[str, ...] = ()
    """Student model of iterations 1, 2, … (the last repeats); empty: climb the ladder, each
    student the next size after its teacher (the largest repeats)."""
    ratios: tuple[int, ...] = ()
    """Unlabeled:labeled batch ratio of iterations 1, 2, … (the last repeats); empty:
    `student.unlabeled_ratio` for every iteration."""
    ladder_image_size: bool = False
    """Train each ladder student at its paper resolution (B1 240 px … L2 475 px) instead of
    `student.image_size`."""
    allow_smaller_student: bool = False
    """Allow a student smaller than its teacher (warned); the method wants equal or larger."""
    threshold: float = DEFAULT_THRESHOLD
    """Pseudo labels under this teacher confidence are dropped (paper: 0.3)."""
    per_class: int | None = None
    """Images per class after balancing (paper: 130K); None: the labeled set's class shares of
    the unlabeled count."""
    filter_balance: bool = True
    """Ablation: False trains on every pseudo-labeled image once (no threshold, no balancing)."""
    init_from_teacher: bool = False
    """Ablation: start each student from its teacher's weights (needs the same model)."""
    unnoised_baseline: bool = False
    """Also train iteration 1's student without any noise (no RandAugment, crop, flip, dropout,
    stochastic depth) on the same pseudo labels, as the paper's Table 6 does."""
    label: LabelConfig = field(default_factory=LabelConfig)
    """Each iteration's labeling job: top-k, temperature, batch size, `noised` (ablation: label
    with the teacher's dropout and stochastic depth on; paper: off), device, precision and
    loader. Its own settings: labeling does not read the student's."""
    oracle_baseline: bool = False
    """Also train iteration 1's student on the true labels of the unlabeled images (the fully
    supervised upper bound); needs `data.unlabeled_truth` unless the data are the digits."""
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    """The robustness step: every model on corrupted copies of the eval set (ImageNet-C)."""

    label_batch_size: InitVar[int | None] = None
    """Old spelling of `label.batch_size` (ns 0.2), read for one version."""
    noised_teacher: InitVar[bool | None] = None
    """Old spelling of `label.noised` (ns 0.2), read for one version."""

    OLD_NAMES: ClassVar[dict[str, str]] = {
        "label_batch_size": "label.batch_size",
        "noised_teacher": "label.noised",
    }
    """Old spellings still read in TOML, `--set` and stored run configs (ns 0.2, removed in 0.4)."""

    def __post_init__(self, label_batch_size: int | None, noised_teacher: bool | None) -> None:
        if label_batch_size is not None or noised_teacher is not None:
            warnings.warn(
                "RunConfig(label_batch_size=, noised_teacher=) are now RunConfig(label=LabelConfig("
                "batch_size=, noised=))",
                DeprecationWarning,
                stacklevel=3,
            )
            self.label = replace(
                self.label,
                batch_size=self.label.batch_size if label_batch_size is None else label_batch_size,
                noised=self.label.noised if noised_teacher is None else noised_teacher,
            )
        if self.iterations < 0:
            raise TrainError(f"iterations must be >= 0, got {self.iterations}")
        if not 0 <= self.threshold < 1:
            raise TrainError(f"threshold must be in [0, 1), got {self.threshold}")
        if self.per_class is not None and self.per_class < 1:
            raise TrainError(f"per_class must be positive or absent, got {self.per_class}")
        if any(ratio < 1 for ratio in self.ratios):
            raise TrainError(f"ratios must be positive, got {list(self.ratios)}")
        if self.oracle_baseline and self.data.source == "shards" and not self.data.unlabeled_truth:
            raise TrainError(
                "oracle_baseline needs data.unlabeled_truth: a labeled shard set of the unlabeled "
                "images, in the same order (`ns shard` of the same files with their class folders)"
            )
        if self.robustness.enabled and not (self.data.eval or self.data.source == "digits"):
            raise TrainError("robustness.enabled needs data.eval: the set to corrupt and evaluate")


def run_config_from_dict(data: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """`data` over `base` (a preset, or the defaults): nested tables change only their keys; old
    spellings in `data` are read as their new names."""
    merged = merge(to_dict(base) if base is not None else {}, upgrade(RunConfig, data))
    return from_dict(RunConfig, merged)


def load_run_config(path: Path) -> RunConfig:
    """Read a TOML run config; `preset = "NAME"` starts from that preset."""
    from ns_train.runs.presets import preset

    path = Path(path)
    data = read_toml(path)
    base = preset(data.pop("preset")) if "preset" in data else None
    paths = data.get("data", {})
    for key in ("labeled", "unlabeled", "eval", "unlabeled_truth", "shards"):
        if paths.get(key):
            paths[key] = str((path.parent / paths[key]).resolve())
    return run_config_from_dict(data, base)
