"""16-bit PNG, which Pillow only half supports: it reads 16-bit colour PNGs as 8-bit and cannot
write them. numpy + zlib only.

* :func:`decode_16bit_colour` gets the full 16 bits from Pillow's own decoder, run twice on
  the file: once unpacking each sample's high byte, once (reading it as little-endian) its low
  byte. Pillow does the decompression and un-filtering, so every PNG filter and interlacing
  work, at native speed.
* :func:`encode_png16` writes grey, grey + alpha, RGB and RGBA at 16 bits per sample with the
  "Up" filter (vectorised; it suits photos), plus an ICC profile and EXIF when given.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
RAWMODES_16 = {"RGB": "RGB;16B", "RGBA": "RGBA;16B"}  # what Pillow reports for 16-bit colour


def is_16bit_colour(image: Any) -> bool:
    """Whether a just-opened (not loaded) Pillow PNG holds 16-bit RGB or RGBA samples."""
    tile = getattr(image, "tile", None) or []
    return (
        image.format == "PNG"
        and len(tile) == 1
        and image.mode in RAWMODES_16
        and tile[0].args == RAWMODES_16[image.mode]
    )


def decode_16bit_colour(path: Path) -> np.ndarray:
    """H×W×C uint16 samples of a 16-bit RGB/RGBA PNG (see the module docstring)."""
    from PIL import Image

    halves = []
    for rawmode_suffix in ("16B", "16L"):
        with Image.open(path) as image:
            image.tile = [image.tile[0]._replace(args=f"{image.mode};{rawmode_suffix}")]
            image.load()
            halves.append(np.asarray(image, dtype=np.uint16))
    return (halves[0] << 8) | halves[1]


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png16(
    pixels: np.ndarray,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    chunks: Sequence[tuple[bytes, bytes]] = (),
) -> bytes:
    """PNG bytes of an H×W or H×W×C (C = 1..4) uint16 array; ``chunks`` (type, data) go
    before the image data (gAMA, cHRM, sRGB, pHYs)."""
    if pixels.dtype != np.uint16:
        raise ValueError(f"encode_png16 takes uint16, got {pixels.dtype}")
    x = pixels if pixels.ndim == 3 else pixels[..., None]
    h, w, c = x.shape
    rows = np.ascontiguousarray(x, dtype=">u2").view(np.uint8).reshape(h, w * c * 2)
    up = rows.copy()
    up[1:] -= rows[:-1]  # "Up" filter: difference with the row above, modulo 256
    filtered = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1)
    header = struct.pack(">IIBBBBB", w, h, 16, COLOUR_TYPES[c], 0, 0, 0)
    parts = [SIGNATURE, _chunk(b"IHDR", header), *(_chunk(kind, data) for kind, data in chunks)]
    if icc_profile:
        parts.append(_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile)))
    if exif:
        parts.append(_chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00")))
    parts += [_chunk(b"IDAT", zlib.compress(filtered.tobytes(), 6)), _chunk(b"IEND", b"")]
    return b"".join(parts)
