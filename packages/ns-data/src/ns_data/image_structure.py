"""Tell unreadable images apart without decoding them: a structural check costing microseconds.

`structure_problem` walks a JPEG's marker segments up to the scan and looks for the end marker
(PNG: signature and IEND chunk; WebP: RIFF size). It catches truncated files, garbage and
non-images; a file that passes can still fail a full decode (`image_check.checked_decode`).
No torch here: `ns shard` workers use it too.
"""

from __future__ import annotations

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
