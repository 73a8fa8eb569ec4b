"""Run recipes: functions returning a `RunConfig`; variants call a base and change a few fields.

config = preset("digits-demo")
names = list(PRESETS)        # what `ns run --list-presets` shows
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ns_data.loading.config import LoaderConfig
from ns_train.config import LabelConfig, NoiseConfig, OptimConfig, TrainConfig, replace
from ns_train.errors import TrainError
from ns_train.runs.config import DataConfig, RobustnessConfig, RunConfig


def digits_loader() -> LoaderConfig:
    """Small images on a small CPU: one DALI pipeline per process."""
    return LoaderConfig(backend="dali-cpu", workers=1)


def digits_job(**changes: Any) -> TrainConfig:
    """EfficientNet-B0 on 32 px digits, on the CPU: AdamW, cosine schedule, no flips."""
    base = TrainConfig(
        model="efficientnet_b0",
        image_size=32,
        epochs=200.0,
        batch_size=50,
        unlabeled_ratio=3,
        ema_decay=0.99,
        optim=OptimConfig(
            name="adamw", lr_per_2048=0.128, warmup_epochs=2, schedule="cosine", weight_decay=0.05
        ),
        noise=NoiseConfig(randaugment_n=2, randaugment_m=9, flip=False, crop_scale=(0.5, 1.0)),
        loader=digits_loader(),
        eval_every=50.0,
        checkpoint_every=100,
    )
    return replace(base, **changes)


def digits_demo() -> RunConfig:
    """The demo: 5 labels per digit, ~1,250 unlabeled; a B0 teacher, two B0 students (each
    starting from its teacher's weights) and an unnoised student of iteration 1 for comparison,
    then every model on 10 test digits per class under 19 corruptions × 5 severities
    (about 6 minutes on 2 idle CPU cores)."""
    return RunConfig(
        name="digits-demo",
        data=DataConfig(source="digits", labels_per_class=5, test_per_class=50),
        iterations=2,
        teacher=digits_job(),
        student=digits_job(
            epochs=20.0,
            eval_every=5.0,
            optim=OptimConfig(
                name="adamw",
                lr_per_2048=0.032,
                warmup_epochs=2,
                schedule="cosine",
                weight_decay=0.05,
            ),
        ),
        students=("efficientnet_b0",),
        label=LabelConfig(loader=digits_loader()),
        init_from_teacher=True,
        unnoised_baseline=True,
        robustness=RobustnessConfig(enabled=True, images_per_class=10, backend="torch"),
    )


def digits_demo_oracle() -> RunConfig:
    """The demo plus an oracle: iteration 1's student trained on the true labels of the
    unlabeled digits, the fully supervised upper bound the students are measured against."""
    return replace(digits_demo(), name="digits-demo-oracle", oracle_baseline=True)


def imagenet_job(**changes: Any) -> TrainConfig:
    """The paper's EfficientNet recipe: RMSProp (decay 0.9, momentum 0.9), lr 0.128 per 2048
    images, warm-up 5 epochs then ×0.97 every 2.4 epochs, EMA 0.9999, label smoothing 0.1,
    RandAugment 2 ops at our strongest magnitude (the paper's 27 exceeds torchvision's range),
    dropout by model size and stochastic depth 0.2 (None: `ns_models.default_noise`)."""
    base = TrainConfig(
        model="efficientnet_b0",
        image_size=224,
        epochs=350.0,
        batch_size=2048,
        noise=NoiseConfig(randaugment_n=2, randaugment_m=30),
        bf16=True,
        checkpoint_every=2000,
    )
    return replace(base, **changes)


def imagenet_labeling() -> LabelConfig:
    """Labeling on GPUs in bfloat16, as the jobs train."""
    return LabelConfig(bf16=True)


def imagenet_b0_b7_l2() -> RunConfig:
    """ImageNet + an unlabeled set as in the paper: a B0 teacher, then students B1 … B7, L2 up
    the ladder, each at its paper resolution; threshold 0.3, 130K images per class, unlabeled
    ratio 3 (B1-B7) and 14 for L2 as the paper; 350 epochs (students: over the selected
    images). Shard ImageNet to shards/imagenet-train and -val and the unlabeled images to
    shards/unlabeled first, or point `[data]` elsewhere."""
    return RunConfig(
        name="imagenet-b0-b7-l2",
        data=DataConfig(
            labeled="shards/imagenet-train",
            unlabeled="shards/unlabeled",
            eval="shards/imagenet-val",
        ),
        iterations=8,
        teacher=imagenet_job(),
        student=imagenet_job(),
        ratios=(3, 3, 3, 3, 3, 3, 3, 14),
        ladder_image_size=True,
        threshold=0.3,
        per_class=130_000,
        label=imagenet_labeling(),
    )


def custom_folder() -> RunConfig:
    """Your own shard sets (`ns shard`) at shards/train, shards/unlabeled, shards/val: a B0
    teacher and two B0 students at 224 px; set `[data]` and the jobs in a TOML file with
    `preset = "custom-folder"`."""
    return RunConfig(
        name="custom-folder",
        data=DataConfig(labeled="shards/train", unlabeled="shards/unlabeled", eval="shards/val"),
        iterations=2,
        teacher=imagenet_job(epochs=30.0, batch_size=64, checkpoint_every=500),
        student=imagenet_job(epochs=10.0, batch_size=64, checkpoint_every=500),
        students=("efficientnet_b0",),
        label=imagenet_labeling(),
    )


@dataclass(frozen=True, slots=True)
class Preset:
    """A named recipe."""

    name: str
    build: Callable[[], RunConfig]

    @property
    def summary(self) -> str:
        """The recipe's docstring on one line."""
        return " ".join((self.build.__doc__ or "").split())


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("digits-demo", digits_demo),
        Preset("digits-demo-oracle", digits_demo_oracle),
        Preset("imagenet-b0-b7-l2", imagenet_b0_b7_l2),
        Preset("custom-folder", custom_folder),
    )
}


def preset(name: str) -> RunConfig:
    """The run config of preset `name`; an unknown name is refused naming the nearest."""
    if name not in PRESETS:
        near = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise TrainError(
            f"unknown preset {name!r}: {hint}choose one of {', '.join(PRESETS)} "
            "(`ns run --list-presets`)"
        )
    return PRESETS[name].build()
