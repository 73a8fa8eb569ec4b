"""What a loader does to each image: the train view (noised) or the eval view (deterministic).

Both backends read the same `View`, so a parameter means the same thing in DALI and in PyTorch.
RandAugment magnitude `m` is a bin in [0, 30] on torchvision's and DALI's scale (31 bins, m/30 of
each op's largest range: m=9 is torchvision's `RandAugment(magnitude=9)`). The paper's TensorFlow
code uses levels on a 0-10 scale (its M=27 for L2 is 2.7× that code's largest range); our m=30
is the strongest augmentation torchvision and DALI define.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from ns_data.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True, kw_only=True, slots=True)
class View:
    """How images become tensors of `image_size`², normalized, layout NCHW (or channels-last)."""

    RANDAUGMENT_BINS: ClassVar[int] = 31
    """RandAugment's magnitude bins (torchvision's and DALI's scale): `randaugment_m` is one."""
    RANDAUGMENT_FILL: ClassVar[int] = 128
    """Gray value RandAugment's warps fill uncovered pixels with (every channel)."""

    image_size: int
    """Output side in pixels (B0 224 … L2 800)."""
    train: bool = False
    """Train view: random-resized crop, flip, RandAugment. Eval view: resize + center crop."""
    scale: tuple[float, float] = (0.08, 1.0)
    """Area range of the random-resized crop (train view)."""
    flip: bool = True
    """Random horizontal flip (train view); turn off for digits and text."""
    randaugment_n: int = 2
    """Number of RandAugment ops per image (0 disables RandAugment)."""
    randaugment_m: int = 9
    """RandAugment magnitude bin in [0, 30] (see the module docstring for the paper's scale)."""
    randaugment_interpolation: Literal["nearest", "bilinear"] = "nearest"
    """Resampling of RandAugment's rotate/shear/translate: nearest is torchvision's default and
    the paper's (TF `contrib.image`), and on DALI's CPU path ~3× faster than bilinear."""
    crop_ratio: float = 0.875
    """Eval view: resize the shorter side to image_size / crop_ratio, then center-crop."""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channels_last: bool = False
    """Return tensors in channels-last memory format (same shape, faster convs on CPU)."""
    bfloat16: bool = False
    """Return bfloat16 tensors instead of float32."""

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise DataError(f"View.image_size must be at least 8, got {self.image_size}")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise DataError(f"View.scale must satisfy 0 < low <= high <= 1, got {self.scale}")
        if not 0 <= self.randaugment_m < self.RANDAUGMENT_BINS:
            raise DataError(
                f"View.randaugment_m must be in [0, {self.RANDAUGMENT_BINS - 1}], "
                f"got {self.randaugment_m}"
            )
        if self.randaugment_interpolation not in ("nearest", "bilinear"):
            raise DataError(
                "View.randaugment_interpolation must be 'nearest' or 'bilinear', "
                f"got {self.randaugment_interpolation!r}"
            )
        if self.randaugment_n < 0:
            raise DataError(f"View.randaugment_n must be >= 0, got {self.randaugment_n}")
        if not 0 < self.crop_ratio <= 1:
            raise DataError(f"View.crop_ratio must be in (0, 1], got {self.crop_ratio}")

    @property
    def resize_to(self) -> int:
        """Eval view: the shorter side before the center crop."""
        return round(self.image_size / self.crop_ratio)
