"""Check that image bytes decode, and optionally shrink large images (aspect kept, format kept).

`verify="decode"` (the default): JPEGs are verified by decoding the whole entropy-coded stream at
1/8 scale (PIL `draft`): every byte is parsed, so truncated or broken files fail, at a fraction of
a full decode's cost; other formats are fully loaded. `verify="structure"` only reads the header
and checks the file's structure (`image_structure`): truncated files, garbage and non-images are
still caught, corrupt entropy-coded data is not (the loaders skip such samples when they meet
them). EXIF orientation is left alone, as in the copied originals.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

from PIL import Image, UnidentifiedImageError

from ns_data.images.formats import STORED_FORMATS
from ns_data.images.structure import ANIMATED_WEBP, read_header

VERIFY_MODES = ("decode", "structure")
Verify = Literal["decode", "structure"]


class UnusableImage(ValueError):
    """Bytes that are not written to a shard; the message is the reason."""


@dataclass(frozen=True, slots=True)
class CheckedImage:
    """A decodable image: its extension, size and, when it was re-encoded, its new bytes."""

    ext: str
    width: int
    height: int
    data: bytes | None = None


def check_image(
    data: bytes, *, max_side: int | None = None, quality: int = 90, verify: Verify = "decode"
) -> CheckedImage:
    """Verify `data` (see the module doc); re-encode it when its longer side exceeds `max_side`.

    Raises UnusableImage with the reason for empty, corrupt, non-image or unsupported files.
    """
    if not data:
        raise UnusableImage("empty file")
    if verify == "structure":
        header = read_header(data)
        if isinstance(header, str):
            raise UnusableImage(header)
        small = max_side is None or max(header.width, header.height) <= max_side
        if small:  # no PIL at all
            return CheckedImage(header.ext, header.width, header.height)
    try:
        with Image.open(io.BytesIO(data)) as image:
            ext = STORED_FORMATS.get(image.format or "")
            if ext is None:
                raise UnusableImage(
                    f"{image.format} is not stored; convert it to JPEG, PNG or WebP"
                )
            if image.format == "WEBP" and getattr(image, "n_frames", 1) > 1:
                raise UnusableImage(ANIMATED_WEBP)
            width, height = image.size
            if max_side is not None and max(width, height) > max_side:
                return _shrink(image, ext, max_side, quality)
            if verify == "structure":
                return CheckedImage(ext, width, height)
            if image.format in ("JPEG", "MPO"):
                image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
            image.load()
    except UnidentifiedImageError as err:
        raise UnusableImage("not an image (PIL cannot identify it)") from err
    except UnusableImage:
        raise
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        raise UnusableImage(f"does not decode ({type(err).__name__}: {err})") from err
    return CheckedImage(ext, width, height)


def _shrink(image: Image.Image, ext: str, max_side: int, quality: int) -> CheckedImage:
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if image.format == "JPEG":
        image.draft(image.mode, (size[0] * 2, size[1] * 2))
    small = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if ext == "png":
        small.save(buffer, format="PNG")
    else:
        small.save(buffer, format="JPEG" if ext == "jpg" else "WEBP", quality=quality)
    return CheckedImage(ext, size[0], size[1], buffer.getvalue())
