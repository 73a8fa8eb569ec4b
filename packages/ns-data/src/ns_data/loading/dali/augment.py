"""RandAugment's op suite for our DALI pipelines: DALI's own (`auto_aug`), with three ops swapped
on the CPU for single-pass equivalents.

DALI builds contrast, solarize and auto-contrast from chains of arithmetic operators, each a full
pass over the image in float; on the CPU those chains cost 0.3-0.6 ms per 224² image with 2
threads. The swaps give the same images (bit-identical on the test photos at m = 0, 9 and 30) in
one pass: contrast through `fn.contrast` with PIL's luma-mean center, solarize through a lookup
table (its threshold is fixed by the magnitude), auto-contrast through `fn.normalize` with each
channel's range. Magnitudes, signs and names stay DALI's. GPU pipelines keep DALI's ops, which are
cheap there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from nvidia.dali import fn
from nvidia.dali.auto_aug import rand_augment
from nvidia.dali.auto_aug.core import augmentation
from nvidia.dali.types import DALIDataType

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""ITU-R 601 weights: PIL's grayscale, the center of its Contrast enhancement."""


def rand_augment_suite(magnitude: int, bins: int, *, cpu: bool) -> list[Any]:
    """DALI's RandAugment suite (translations relative to the image), CPU swaps applied."""
    suite = rand_augment.get_rand_augment_suite(use_shape=True)
    if not cpu:
        return suite
    swaps = {
        "contrast": lambda dali: _like(dali, _contrast),
        "solarize": lambda dali: _solarize(dali, magnitude, bins),
        "auto_contrast": lambda dali: _like(dali, _auto_contrast),
    }
    return [swaps[op.name](op) if op.name in swaps else op for op in suite]


def _like(dali: Any, op: Any) -> Any:
    """`op` as an augmentation with the magnitudes, signs and name of DALI's `dali`."""
    return augmentation(
        op,
        mag_range=dali.mag_range,
        randomly_negate=dali.randomly_negate,
        mag_to_param=dali.mag_to_param,
        param_device=dali.param_device,
        name=dali.name,
    )


def _contrast(images: Any, factor: Any) -> Any:
    center = fn.reductions.sum(fn.reductions.mean(images, axis_names="HW") * _LUMA)
    return fn.contrast(images, contrast=factor, contrast_center=center)


def _auto_contrast(images: Any, _: Any) -> Any:
    low = fn.reductions.min(images, axis_names="HW", keep_dims=True)
    high = fn.reductions.max(images, axis_names="HW", keep_dims=True)
    flat = high == low  # a constant channel stays as it is
    span = fn.cast(high - low, dtype=DALIDataType.FLOAT) + flat * 255.0
    shift = fn.cast(low, dtype=DALIDataType.FLOAT) * (flat ^ True)
    return fn.normalize(
        images, mean=shift, stddev=span, scale=255.0, axis_names="HW", dtype=DALIDataType.UINT8
    )


def _solarize(dali: Any, magnitude: int, bins: int) -> Any:
    low, high = dali.mag_range
    threshold = np.linspace(low, high, bins, dtype=np.float32)[magnitude]
    levels = np.arange(256)
    table = np.where(levels < threshold, levels, 255 - levels).tolist()

    def solarize(images: Any, _: Any) -> Any:
        return fn.lookup_table(images, keys=levels.tolist(), values=table, dtype=DALIDataType.UINT8)

    return augmentation(solarize, name=dali.name)
