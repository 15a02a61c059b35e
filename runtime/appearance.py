"""What besides the pixels and the ICC profile decides how an image shows: its resolution
(dpi, for print and layout programs) and a PNG's colour chunks (gAMA, cHRM, sRGB), which
colour-managed viewers apply when there is no ICC profile. Denoising changes neither, so both
travel from the input file to the output where the output format can hold them, and a note
says when it cannot.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

DPI_FORMATS = ("PNG", "JPEG", "TIFF", "BMP")  # output formats that hold a resolution
INCHES_PER_METRE = 39.3701
SWAPPED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that turn the image a quarter


@dataclass(frozen=True)
class Appearance:
    """A file's resolution (dots per inch, x then y) and PNG colour chunks (type, data)."""

    dpi: tuple[float, float] | None = None
    png_chunks: tuple[tuple[bytes, bytes], ...] = ()

    def upright(self, orientation: int) -> Appearance:
        """The same for the pixels turned upright by EXIF ``orientation`` (x and y swap)."""
        if self.dpi is None or orientation not in SWAPPED_ORIENTATIONS:
            return self
        return Appearance((self.dpi[1], self.dpi[0]), self.png_chunks)


def _dpi(x: object, y: object) -> tuple[float, float] | None:
    try:
        dpi = (float(x), float(y))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return dpi if all(math.isfinite(v) and 0 < v < 1e6 for v in dpi) else None


def _fits_chunk(value: object) -> bool:
    """A number PNG stores as an unsigned 32-bit count of 1/100000."""
    return isinstance(value, int | float) and 0 <= value < 42_949


def from_pillow(info: dict) -> Appearance:
    """From a Pillow image's ``info``; values Pillow could not parse are left out."""
    dpi = info.get("dpi")
    chunks = []
    gamma = info.get("gamma")
    if _fits_chunk(gamma) and gamma > 0:
        chunks.append((b"gAMA", struct.pack(">I", round(gamma * 100_000))))
    points = info.get("chromaticity")  # white point and primaries, x and y each
    if isinstance(points, tuple) and len(points) == 8 and all(_fits_chunk(v) for v in points):
        chunks.append((b"cHRM", struct.pack(">8I", *(round(v * 100_000) for v in points))))
    intent = info.get("srgb")
    if isinstance(intent, int) and 0 <= intent <= 3:
        chunks.append((b"sRGB", bytes([intent])))
    resolution = _dpi(*dpi) if isinstance(dpi, tuple) and len(dpi) == 2 else None
    return Appearance(resolution, tuple(chunks))


def from_tiff(page) -> Appearance:  # noqa: ANN001 - a tifffile TiffPage
    """A TIFF page's XResolution/YResolution in inches or centimetres (a unitless ratio is
    no resolution)."""
    unit = int(page.tags.valueof(296, 2) or 2)  # ResolutionUnit: 2 inch, 3 centimetre
    x, y = page.tags.valueof(282), page.tags.valueof(283)
    if unit not in (2, 3) or x is None or y is None:
        return Appearance()
    try:
        scale = 2.54 if unit == 3 else 1.0
        dpi = _dpi(x[0] / x[1] * scale, y[0] / y[1] * scale)
    except (TypeError, IndexError, ZeroDivisionError):
        return Appearance()
    return Appearance(dpi)


def png_physical(dpi: tuple[float, float]) -> tuple[bytes, bytes]:
    """A pHYs chunk (pixels per metre) for ``dpi``."""
    x, y = (max(1, round(v * INCHES_PER_METRE)) for v in dpi)
    return b"pHYs", struct.pack(">IIB", x, y, 1)


def dropped_notes(appearance: Appearance, fmt: str) -> list[str]:
    """Notes on what of ``appearance`` the output format ``fmt`` cannot hold."""
    notes = []
    if appearance.dpi and fmt not in DPI_FORMATS:
        notes.append(f"{fmt} holds no resolution: the {appearance.dpi[0]:.0f} dpi is dropped")
    kinds = [kind.decode() for kind, _ in appearance.png_chunks if kind != b"sRGB"]
    if kinds and fmt != "PNG":  # sRGB alone is what other formats assume anyway
        notes.append(
            f"the PNG's {' and '.join(kinds)} colour information cannot go into {fmt}: dropped "
            "(colour-managed viewers may show the output differently; .png keeps it)"
        )
    return notes
