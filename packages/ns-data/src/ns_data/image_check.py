"""Tell unreadable images apart before a decoder sees them: a cheap structural check, a full decode.

`structure_problem` walks a JPEG's marker segments up to the scan and looks for the end marker
(PNG: signature and IEND chunk; WebP: RIFF size). It costs microseconds, catches truncated files,
garbage and non-images, and keeps them out of DALI, where one bad sample fails a whole batch.
`checked_decode` adds a full decode: the PyTorch backend's reader, and how the DALI runner finds
the culprit of a failed batch.
"""

from __future__ import annotations

import torch
from torchvision.io import ImageReadMode, decode_image

_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length field (TEM, RST0-7)


def _jpeg_problem(data: bytes) -> str | None:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return f"no JPEG marker at byte {position}"
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker == 0xD9:
            return "end of image before any scan"
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if length < 2:
            return f"bad JPEG segment length at byte {position}"
        if marker == 0xDA:  # start of scan: entropy-coded data follows, then more scans and EOI
            tail = data.rstrip(b"\x00")
            if not tail.endswith(_EOI) or len(tail) <= position + 2 + length:
                return "truncated JPEG (no end-of-image marker after the scan)"
            return None
        position += 2 + length
    return "truncated JPEG (ends inside its header)"


def structure_problem(data: bytes) -> str | None:
    """Why `data` cannot be a whole JPEG, PNG or WebP image; None when its structure is sound."""
    if data.startswith(_SOI):
        return _jpeg_problem(data)
    if data.startswith(_PNG_SIGNATURE):
        return None if data.rstrip(b"\x00").endswith(_PNG_END) else "truncated PNG (no IEND chunk)"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        declared = int.from_bytes(data[4:8], "little") + 8
        return None if len(data) >= declared else "truncated WebP (shorter than its RIFF size)"
    return "not a JPEG, PNG or WebP image"


def checked_decode(data: bytes) -> torch.Tensor | str:
    """The image (uint8 RGB, CHW) or why it cannot be read (bad structure, failed decode)."""
    problem = structure_problem(data)
    if problem is not None:
        return problem
    try:
        return decode_image(
            torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB
        )
    except RuntimeError as err:
        return f"decode failed: {str(err).splitlines()[-1][:120]}"
