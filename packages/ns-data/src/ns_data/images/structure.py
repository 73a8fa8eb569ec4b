"""Tell unreadable images apart without decoding them: a structural check costing microseconds.

`read_header` walks a JPEG's marker segments up to the scan, reads the size from its frame header
and the EXIF orientation from its APP1 segment, and looks for the end marker (PNG: signature, IHDR size and IEND chunk; WebP: RIFF size and the
first chunk's size). It catches truncated files, garbage and non-images; a file that passes can still fail a full decode (`image_check.checked_decode`).
It also refuses what no decoder should be handed: a header claiming more pixels than Pillow's
decompression-bomb limit (a 65,535 × 65,535 JPEG header would make a decoder allocate 12 GB
before finding the data missing), and animated WebP (torchvision refuses it, DALI reads its
first frame: the backends would differ).
No torch here: `ns shard` workers use it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from PIL import Image

_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length field (TEM, RST0-7)
_FRAME_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0-15 (not DHT, JPG, DAC)
_WEBP_ANIMATED = 0x02  # VP8X flags: the animation bit
ANIMATED_WEBP = "animated WebP is not stored; export one frame as JPEG, PNG or WebP"


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """What the header says: the stored extension, the stored size in pixels, and (JPEG) the
    EXIF orientation that decoders apply (1: as stored; 5-8: turned by a quarter)."""

    ext: str
    width: int
    height: int
    orientation: int = 1

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) as decoders that apply the EXIF orientation return the image."""
        return (self.height, self.width) if self.orientation >= 5 else (self.width, self.height)


def _jpeg_header(data: bytes) -> ImageHeader | str:
    position, size, orientation = 2, (0, 0), 1
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
        if marker == 0xE1 and orientation == 1:  # APP1: Exif (or XMP) metadata
            orientation = _exif_orientation(data[position + 4 : position + 2 + length])
        if marker in _FRAME_MARKERS and length >= 7:  # precision, height, width, ...
            height = int.from_bytes(data[position + 5 : position + 7], "big")
            size = (int.from_bytes(data[position + 7 : position + 9], "big"), height)
        if marker == 0xDA:  # start of scan: entropy-coded data follows, then more scans and EOI
            tail = data.rstrip(b"\x00")
            if not tail.endswith(_EOI) or len(tail) <= position + 2 + length:
                return "truncated JPEG (no end-of-image marker after the scan)"
            if not all(size):
                return "JPEG without a frame header (or with a zero size) before its scan"
            return ImageHeader("jpg", *size, orientation)
        position += 2 + length
    return "truncated JPEG (ends inside its header)"


def _exif_orientation(segment: bytes) -> int:
    """Tag 0x0112 of an APP1 Exif segment's first image directory (TIFF layout); 1 when the
    segment is not Exif, has no such tag, or is damaged."""
    if not segment.startswith(b"Exif\x00\x00"):
        return 1
    tiff = segment[6:]
    order: Literal["little", "big"]
    if tiff[:4] == b"II*\x00":
        order = "little"
    elif tiff[:4] == b"MM\x00*":
        order = "big"
    else:
        return 1
    directory = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[directory : directory + 2], order)
    for entry in range(directory + 2, directory + 2 + 12 * count, 12):
        if entry + 12 > len(tiff):
            break
        if int.from_bytes(tiff[entry : entry + 2], order) == 0x0112:  # a SHORT, left-justified
            value = int.from_bytes(tiff[entry + 8 : entry + 10], order)
            return value if 1 <= value <= 8 else 1
    return 1


def pixel_limit() -> int | None:
    """The most pixels an image may have: where Pillow raises DecompressionBombError (twice
    `PIL.Image.MAX_IMAGE_PIXELS`, which a user may raise or set to None)."""
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * int(limit)


def read_header(data: bytes) -> ImageHeader | str:
    """The header of a whole JPEG, PNG or WebP image, or why `data` cannot be one (or must not
    be decoded: see the module doc)."""
    header = _read_header(data)
    if isinstance(header, str):
        return header
    limit = pixel_limit()
    if limit is not None and header.width * header.height > limit:
        return (
            f"{header.width}x{header.height} pixels is over the decompression-bomb limit of "
            f"{limit:,} pixels (PIL.Image.MAX_IMAGE_PIXELS); shrink the image"
        )
    return header


def _read_header(data: bytes) -> ImageHeader | str:
    if data.startswith(_SOI):
        return _jpeg_header(data)
    if data.startswith(_PNG_SIGNATURE):
        if not data.rstrip(b"\x00").endswith(_PNG_END):
            return "truncated PNG (no IEND chunk)"
        if data[12:16] != b"IHDR":
            return "PNG without an IHDR chunk first"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return ImageHeader("png", width, height) if width and height else "PNG of zero size"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        declared = int.from_bytes(data[4:8], "little") + 8
        if len(data) < declared:
            return "truncated WebP (shorter than its RIFF size)"
        if data[12:16] == b"VP8X" and len(data) > 20 and data[20] & _WEBP_ANIMATED:
            return ANIMATED_WEBP
        size = _webp_size(data)
        return ImageHeader("webp", *size) if size else "WebP without a readable VP8/VP8L/VP8X size"
    return "not a JPEG, PNG or WebP image"


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first chunk: VP8 (lossy), VP8L (lossless) or VP8X (extended)."""
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # after the frame tag: start code
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
    elif chunk == b"VP8L" and data[20:21] == b"\x2f":  # signature, then 14-bit sizes minus one
        bits = int.from_bytes(data[21:25], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8X" and len(data) >= 30:  # 24-bit canvas sizes minus one
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
    else:
        return None
    return (width, height) if width and height else None


def structure_problem(data: bytes) -> str | None:
    """Why `data` cannot be a whole JPEG, PNG or WebP image; None when its structure is sound."""
    header = read_header(data)
    return header if isinstance(header, str) else None
