"""TIFF in and out through ``tifffile`` (numpy only), which Pillow handles only in part.

Pillow reads 16-bit RGB TIFF as 8 bits, takes CMYK and extra samples for RGB, and writes the
source's TIFF tags back as "EXIF" (a file nothing can open). Here a TIFF is read for what it
says it holds: grey or RGB, 8 or 16 bits, with at most one alpha sample; anything else (CMYK,
Lab, several extra samples, premultiplied alpha, float samples) is refused with one line.
Writing sets only the tags n2nkit owns (size, samples, photometric, alpha, ICC profile): no tag
of another file is ever copied.

Compressions that tifffile decodes only with ``imagecodecs`` (LZW, PackBits, JPEG) fall back to
Pillow for 8-bit grey, RGB and palette files, which it reads correctly.
"""

from __future__ import annotations

import io
import logging
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from n2nkit.errors import UserInputError, first_line
from n2nkit.runtime.appearance import Appearance, from_tiff
from n2nkit.runtime.pixels import channel_count

MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
ICC_TAG = 34675
EXIF_TAG = 34665
EXTRA_UNSPECIFIED, EXTRA_ASSOCIATED, EXTRA_UNASSOCIATED = 0, 1, 2
PHOTOMETRIC_NAMES = {0: "grey (min-is-white)", 1: "grey", 2: "RGB", 3: "palette", 4: "mask",
                     5: "CMYK", 6: "YCbCr", 8: "CIELab", 9: "ICCLab", 10: "ITULab"}  # fmt: skip
PILLOW_HANDLES = (0, 1, 2, 3, 6)  # 8-bit layouts Pillow reads right when tifffile needs a codec


@dataclass
class TiffRead:
    """What :func:`read_tiff` found; ``pixels`` is None when Pillow should decode the file."""

    pixels: np.ndarray | None
    mode: str
    orientation: int = 1
    icc_profile: bytes | None = None
    notes: list[str] = field(default_factory=list)
    appearance: Appearance = field(default_factory=Appearance)
    page: int = 0  # the page read (:func:`_main_page`): the one Pillow decodes when pixels is None


def is_tiff(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) in MAGIC
    except OSError:
        return False


def read_tiff(path: Path, max_pixels: int) -> TiffRead:
    """Decode the first page of a TIFF as uint8/uint16 grey, grey + alpha, RGB or RGBA."""
    import tifffile

    notes: list[str] = []
    try:
        with _logged_as_notes(notes), tifffile.TiffFile(path) as tif:
            page = _main_page(tif)
            if len(tif.pages) > 1:
                notes.append(f"TIFF with {len(tif.pages)} pages: only " + (
                    "the first is denoised" if page.index == 0 else f"page {page.index + 1} is "
                    "denoised, the first at full resolution (the pages before it are previews)"
                ))  # fmt: skip
            height, width = int(page.imagelength), int(page.imagewidth)
            if height * width > max_pixels:
                raise UserInputError(
                    f"{path} is {width}×{height} = {width * height:,} pixels, over the limit of "
                    f"{max_pixels:,} that guards against decompression bombs; raise it with "
                    "--max-pixels if you trust the file"
                )
            layout = _layout(page, path)
            icc = _icc(page)
            orientation = int(page.tags.valueof(274, 1) or 1)
            if EXIF_TAG in page.tags:
                notes.append("the TIFF's EXIF metadata is not carried to the output")
            if layout.photometric == 6:  # YCbCr: Pillow converts it to RGB; tifffile may not
                return _pillow_fallback(path, page, layout, None, orientation, icc, notes)
            try:
                data = page.asarray()
            except (KeyError, ValueError) as exc:
                if "imagecodecs" not in str(exc):
                    raise
                return _pillow_fallback(path, page, layout, exc, orientation, icc, notes)
            pixels = _arrange(data, page, layout)  # reads the colour map: the file stays open
            shown = from_tiff(page)
    except UserInputError:
        raise
    except (tifffile.TiffFileError, OSError, ValueError, zlib.error) as exc:
        raise UserInputError(
            f"{path} is not a readable TIFF (truncated or corrupt?): {first_line(exc)}"
        ) from None
    except (KeyError, IndexError, TypeError):  # their messages name tifffile's internals
        raise UserInputError(f"{path} is not a readable TIFF (truncated or corrupt?)") from None
    return TiffRead(pixels, layout.mode, orientation, icc, notes, shown)


def _main_page(tif):
    """The first page that is not a reduced-resolution preview (NewSubfileType bit 0), which
    some scanners and cameras put first; the first page when every page says it is one."""
    for page in tif.pages:
        if not page.is_reduced:
            return page
    return tif.pages.first


@dataclass(frozen=True)
class _Layout:
    photometric: int
    colour: int  # 1 or 3 samples of colour
    alpha: bool
    dtype: np.dtype
    mode: str  # Pillow-like name, for ImageFile.mode


def _layout(page, path: Path) -> _Layout:
    """Refuse, with one line, every TIFF layout n2nkit cannot read and write back faithfully."""
    photometric = int(page.photometric)
    samples = int(page.samplesperpixel)
    extras = tuple(int(e) for e in (page.extrasamples or ()))
    name = PHOTOMETRIC_NAMES.get(photometric, f"photometric {photometric}")
    if photometric in (5, 8, 9, 10):
        raise UserInputError(
            f"{path} is a {name} TIFF: n2nkit denoises grey or RGB images; convert it to RGB first"
        )
    if photometric not in (0, 1, 2, 3, 6):
        raise UserInputError(f"{path} is a {name} TIFF, which n2nkit does not read")
    stored_colour = 1 if photometric in (0, 1, 3) else 3  # a palette index is one sample
    colour = 3 if photometric in (2, 3, 6) else 1  # palette entries are RGB
    if samples - stored_colour > 1 or len(extras) > 1:
        raise UserInputError(
            f"{path} has {samples} samples per pixel ({name} + {samples - stored_colour} extra); "
            "n2nkit reads grey or RGB with at most one alpha sample"
        )
    alpha = samples - stored_colour == 1
    if alpha and extras and extras[0] == EXTRA_ASSOCIATED:
        raise UserInputError(
            f"{path} holds premultiplied (associated) alpha, which n2nkit does not denoise "
            "faithfully: save it with straight alpha"
        )
    dtype = np.dtype(page.dtype) if page.dtype is not None else np.dtype("V")
    if dtype.kind == "f":
        raise UserInputError(f"{path} holds float samples: convert it to 8 or 16 bits")
    if dtype.kind == "i":
        raise UserInputError(
            f"{path} holds signed {page.bitspersample}-bit samples: n2nkit reads unsigned 1, 8 "
            "or 16-bit TIFF"
        )
    if dtype not in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(bool)):
        raise UserInputError(
            f"{path} holds {page.bitspersample}-bit samples: n2nkit reads 1, 8 or 16-bit TIFF"
        )
    deep = dtype == np.dtype(np.uint16)
    mode = {1: "L", 3: "RGB"}[colour] + ("A" if alpha else "") + (";16" if deep else "")
    return _Layout(photometric, colour, alpha, dtype, mode)


def _arrange(data: np.ndarray, page, layout: _Layout) -> np.ndarray:
    """tifffile's array (YX, YXS or SYX) -> H×W or H×W×C uint8/uint16 in n2nkit's layout."""
    axes = page.axes
    if "S" in axes and axes.index("S") < axes.index("Y"):  # planar: samples first
        data = np.moveaxis(data, axes.index("S"), -1)
    data = data.reshape(int(page.imagelength), int(page.imagewidth), -1)
    if data.dtype == bool:  # bilevel
        data = data.astype(np.uint8) * np.uint8(255)
    if layout.photometric == 3:  # palette: 16-bit colour map -> RGB of the samples' depth
        cmap = np.asarray(page.colormap, dtype=np.uint16).T  # entries × 3
        if data.dtype == np.uint8:
            cmap = (cmap >> 8).astype(np.uint8)
        colour = cmap[data[..., 0]]
        data = np.concatenate([colour, data[..., 1:]], axis=-1) if layout.alpha else colour
    elif layout.photometric == 0:  # min-is-white: invert the grey sample
        top = np.iinfo(data.dtype).max
        data[..., 0] = top - data[..., 0]
    if data.shape[-1] == 1:
        data = data[..., 0]
    return np.ascontiguousarray(data)


@contextmanager
def _logged_as_notes(notes: list[str]):
    """tifffile reports oddities through ``logging``; turn them into n2nkit notes, not raw
    lines on stderr."""

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            note = f"while reading: {first_line(Exception(record.getMessage()))}"
            if record.levelno >= logging.WARNING and note not in notes:
                notes.append(note)

    logger = logging.getLogger("tifffile")
    handler, propagate = _Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _icc(page) -> bytes | None:
    value = page.tags.valueof(ICC_TAG)
    if value is None:
        return None
    return bytes(value) if not isinstance(value, bytes) else value


def _pillow_fallback(path, page, layout: _Layout, exc, orientation, icc, notes) -> TiffRead:
    """Let Pillow decode compressions tifffile needs imagecodecs for, where Pillow is right."""
    grey16 = layout.mode == "L;16" and layout.photometric == 1  # Pillow: exact I;16 only
    deep = layout.dtype == np.dtype(np.uint16)
    if layout.photometric == 6 and deep:
        raise UserInputError(f"{path} is a 16-bit YCbCr TIFF: convert it to RGB first")
    if (deep and not grey16) or layout.photometric not in PILLOW_HANDLES:
        raise UserInputError(
            f"{path} is compressed with {page.compression.name}, which n2nkit reads at "
            f"{page.bitspersample} bits only with imagecodecs: `pip install imagecodecs` "
            f"({first_line(exc)})"
        )
    return TiffRead(None, layout.mode, orientation, icc, notes, page=page.index)


def write_tiff(
    f: IO[bytes],
    pixels: np.ndarray,
    icc_profile: bytes | None = None,
    dpi: tuple[float, float] | None = None,
) -> None:
    """Write H×W or H×W×C (C = 1..4) uint8/uint16 ``pixels`` as a deflate-compressed TIFF
    (``dpi``: its resolution in dots per inch)."""
    import tifffile

    channels = channel_count(pixels)
    if channels == 1 and pixels.ndim == 3:
        pixels = pixels[..., 0]
    options: dict = {
        "photometric": "rgb" if channels >= 3 else "minisblack",
        "compression": "zlib",
        "metadata": None,  # no tifffile JSON description
        "software": "n2nkit",
    }
    if channels in (2, 4):
        options["extrasamples"] = ["unassalpha"]
    if channels == 2:
        options["planarconfig"] = "contig"
    if icc_profile:
        options["iccprofile"] = icc_profile
    if dpi:
        options.update(resolution=dpi, resolutionunit="INCH")
    buffer = io.BytesIO()  # tifffile wants a named file; atomic_write's temp file has none
    tifffile.imwrite(buffer, pixels, **options)
    f.write(buffer.getbuffer())
