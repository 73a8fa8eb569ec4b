"""The CPU pipelines' antialiased resize: torchvision's uint8 kernel, run inside DALI.

DALI's CPU resize works in float and costs 1.4 ms per 224² output from a 350² crop (one thread,
this project's 2-core Xeon); torchvision's uint8 antialiased bilinear kernel takes 0.3 ms for the
same images, agrees with DALI's to one level and is the torch backend's own resize (`v2.Resize`,
`v2.RandomResizedCrop`), so the CPU backends resize alike. It runs single-threaded, called from
the pipeline's own thread through `fn.python_function` (the kernel releases the GIL). GPU
pipelines keep DALI's `fn.resize`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from nvidia.dali.pipeline import do_not_convert
from torchvision.transforms.v2 import functional as F

Resize = Callable[[list[np.ndarray]], list[np.ndarray]]


@do_not_convert  # DALI's conditionals must not rewrite the function it returns
def torch_resize(size: list[int]) -> Resize:
    """A batch resize of HWC uint8 images to `size`: [height, width], or [shorter side] keeping
    the aspect ratio (torchvision's rule: the longer side rounds down)."""

    def resize(images: list[np.ndarray]) -> list[np.ndarray]:
        return [resize_hwc(image, size) for image in images]

    return resize


def resize_hwc(image: np.ndarray, size: list[int]) -> np.ndarray:
    """One HWC uint8 image resized (antialiased bilinear), returned HWC and contiguous."""
    chw = torch.from_numpy(image).permute(2, 0, 1)  # channels-last memory: the fast uint8 path
    return F.resize(chw, size, antialias=True).permute(1, 2, 0).numpy()
