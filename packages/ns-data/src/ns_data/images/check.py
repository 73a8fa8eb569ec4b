"""Tell unreadable images apart before a decoder sees them: a cheap structural check, a full decode.

`image_structure.structure_problem` keeps truncated files, garbage and non-images out of DALI,
where one bad sample fails a whole batch. `checked_decode` adds a full decode: the PyTorch
backend's reader, and how the DALI runner finds the culprit of a failed batch.
"""

from __future__ import annotations

import torch
from torchvision.io import ImageReadMode, decode_image

from ns_data.images.structure import structure_problem


def checked_decode(data: bytes) -> torch.Tensor | str:
    """The image (uint8 RGB, CHW) or why it cannot be read (bad structure, failed decode)."""
    problem = structure_problem(data)
    if problem is not None:
        return problem
    try:
        return decode_image(
            torch.frombuffer(bytearray(data), dtype=torch.uint8),
            mode=ImageReadMode.RGB,
            apply_exif_orientation=True,
        )
    except RuntimeError as err:
        return f"decode failed: {str(err).splitlines()[-1][:120]}"
