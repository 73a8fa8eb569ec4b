"""DALI pipelines for the train and eval views: encoded bytes in, normalized tensors out.

Images arrive through `external_source` from our own sampler (so selection-plan copies, rank
splits and exact resume are ours), with the train view's random draws (`loading.draws`) beside
them: the pipeline draws nothing itself. Decoding is DALI's (`mixed` = nvJPEG on the GPU, or the
CPU; the train view decodes only its crop window) and augmentation runs on the same device; on the
CPU the resize is torchvision's uint8 kernel (`dali.resize`).
RandAugment applies DALI's suite (`dali.augment`) with the ops and signs we drew. The pipeline
lives in a file because DALI's conditionals (RandAugment's per-sample op choice) need the source.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

from nvidia.dali import fn, pipeline_def
from nvidia.dali.auto_aug.core import select, signed_bin
from nvidia.dali.data_node import DataNode
from nvidia.dali.types import DALIDataType, DALIImageType, DALIInterpType

from ns_data.loading.dali.augment import rand_augment_suite
from ns_data.loading.dali.resize import torch_resize
from ns_data.loading.views import View

BatchSource = Callable[[], tuple[list, ...]]
CENTER = 0.5 - 1e-6
"""Crop position that rounds the margin / 2 down, as `torch_backend.center_crop` does."""
_INTERPOLATION = {"nearest": DALIInterpType.INTERP_NN, "bilinear": DALIInterpType.INTERP_LINEAR}


class _DecoderArgs(TypedDict):
    device: str
    output_type: DALIImageType
    jpeg_fancy_upsampling: bool


def _decoder_args(gpu: bool) -> _DecoderArgs:
    return {
        "device": "mixed" if gpu else "cpu",
        "output_type": DALIImageType.RGB,
        # DALI's mixed (nvJPEG) decoders skip interpolated chroma upsampling unless asked; the CPU
        # decoders always do it. Asked for, 4:2:0 JPEGs decode alike on every backend.
        "jpeg_fancy_upsampling": True,
    }


@pipeline_def
def decode_probe(source: BatchSource, gpu: bool):
    """Decode whole images with the view pipelines' decoder: which ones does DALI refuse?"""
    encoded = fn.external_source(source=source, batch=True, dtype=DALIDataType.UINT8)
    return fn.decoders.image(encoded, **_decoder_args(gpu))


@pipeline_def(enable_conditionals=True)
def view_pipeline(source: BatchSource, view: View, gpu: bool):
    """One batch: (images CHW/HWC float, row ids int64) from `source`: encoded images and rows,
    and for the train view crop anchors, crop shapes, flips and (RandAugment) ops and signs."""
    decoder = _decoder_args(gpu)
    size = [view.image_size, view.image_size]
    mirror: DataNode | int
    if view.train:
        count = 7 if view.randaugment_n else 5  # RandAugment's ops and signs come last
        types_in = [
            DALIDataType.UINT8,
            DALIDataType.INT64,
            DALIDataType.FLOAT,
            DALIDataType.FLOAT,
        ] + [DALIDataType.INT32] * 3
        inputs = fn.external_source(
            source=source, num_outputs=count, batch=True, dtype=types_in[:count]
        )
        encoded, rows, anchor, shape, mirror = inputs[:5]
        images = fn.decoders.image_slice(encoded, anchor, shape, axis_names="HW", **decoder)
        images = _resize(images, size, gpu)
        if view.randaugment_n:
            images = _rand_augment(images, inputs[5], inputs[6], view, gpu)
    else:
        encoded, rows = fn.external_source(
            source=source, num_outputs=2, batch=True, dtype=[DALIDataType.UINT8, DALIDataType.INT64]
        )
        images = fn.decoders.image(encoded, **decoder)
        images = _resize(images, [view.resize_to], gpu)
        mirror = 0
    images = fn.crop_mirror_normalize(
        images,
        crop=size,
        crop_pos_x=CENTER,
        crop_pos_y=CENTER,
        mirror=mirror,
        dtype=DALIDataType.FLOAT,
        output_layout="HWC" if view.channels_last else "CHW",
        mean=[255 * m for m in view.mean],
        std=[255 * s for s in view.std],
    )
    return images, rows


def _resize(images: DataNode, size: list[int], gpu: bool) -> DataNode:
    """Antialiased resize to `size` ([height, width], or [shorter side]): DALI's on the GPU,
    torchvision's uint8 kernel on the CPU (`dali.resize`: 4-5x faster there)."""
    if gpu:
        if len(size) == 1:
            return fn.resize(images, resize_shorter=size[0], antialias=True)  # type: ignore[return-value]  # one input: one DataNode
        return fn.resize(images, size=size, antialias=True)  # type: ignore[return-value]
    return fn.python_function(
        images, function=torch_resize(size), batch_processing=True, output_layouts="HWC"
    )


def _rand_augment(images, ops, signs, view: View, gpu: bool):
    """`view.randaugment_n` layers of RandAugment, each sample's op and sign given."""
    suite = rand_augment_suite(view.randaugment_m, View.RANDAUGMENT_BINS, cpu=not gpu)
    for layer in range(view.randaugment_n):
        images = select(
            suite,
            ops[layer],
            images,
            magnitude_bin=signed_bin(view.randaugment_m, random_sign=signs[layer]),
            num_magnitude_bins=View.RANDAUGMENT_BINS,
            shape=[view.image_size, view.image_size],
            fill_value=View.RANDAUGMENT_FILL,
            interp_type=_INTERPOLATION[view.randaugment_interpolation],
        )
    return images
