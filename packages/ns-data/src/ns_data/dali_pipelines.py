"""DALI pipelines for the train and eval views: encoded bytes in, normalized tensors out.

Images arrive through `external_source` from our own sampler (so selection-plan copies, rank
splits and exact resume are ours), are decoded by DALI (`mixed` = nvJPEG on the GPU, or the CPU)
and augmented on the same device. The pipeline lives in a file because DALI's conditionals
(used by `rand_augment`) need the source code.
"""

from __future__ import annotations

from collections.abc import Callable

from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.auto_aug import rand_augment

from ns_data.views import View

BatchSource = Callable[[], tuple[list, list]]
CENTER = 0.5 - 1e-6
"""Crop position that rounds the margin / 2 down, as `torch_pipeline.center_crop` does."""
_INTERPOLATION = {"nearest": types.INTERP_NN, "bilinear": types.INTERP_LINEAR}


@pipeline_def(enable_conditionals=True)
def view_pipeline(source: BatchSource, view: View, gpu: bool):  # type: ignore[no-untyped-def]
    """One batch: (images CHW/HWC float, row ids int64) from `source` giving (encoded, rows)."""
    encoded, rows = fn.external_source(
        source=source, num_outputs=2, batch=True, dtype=[types.UINT8, types.INT64]
    )
    decoder_device = "mixed" if gpu else "cpu"
    size = [view.image_size, view.image_size]
    if view.train:
        images = fn.decoders.image_random_crop(
            encoded,
            device=decoder_device,
            output_type=types.RGB,
            random_area=list(view.scale),
            random_aspect_ratio=[3 / 4, 4 / 3],
        )
        images = fn.resize(images, size=size, antialias=True)
        if view.randaugment_n > 0:
            images = rand_augment.rand_augment(
                images,
                n=view.randaugment_n,
                m=view.randaugment_m,
                shape=size,
                interp_type=_INTERPOLATION[view.randaugment_interpolation],
            )
        mirror = fn.random.coin_flip() if view.flip else 0
    else:
        images = fn.decoders.image(encoded, device=decoder_device, output_type=types.RGB)
        images = fn.resize(images, resize_shorter=view.resize_to, antialias=True)
        mirror = 0
    images = fn.crop_mirror_normalize(
        images,
        crop=size,
        crop_pos_x=CENTER,
        crop_pos_y=CENTER,
        mirror=mirror,
        dtype=types.FLOAT,
        output_layout="HWC" if view.channels_last else "CHW",
        mean=[255 * m for m in view.mean],
        std=[255 * s for s in view.std],
    )
    return images, rows
