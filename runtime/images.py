"""Image files in and out for ``n2nkit denoise`` (and apps that want the same care).

Reading keeps what matters: grey stays grey (H×W), alpha is kept (H×W×2, H×W×4), palette
images become RGB(A), a PNG colour key (tRNS) becomes an alpha channel, 16-bit PNG and TIFF
stay 16-bit (uint16), the EXIF orientation is applied, and the ICC profile, EXIF, resolution
and PNG colour chunks travel to the output (:mod:`.appearance`). Anything wrong with a file
(missing, empty, not an image, truncated, over the decompression-bomb limit) is one
:class:`~n2nkit.errors.UserInputError` line. Writing picks the format from the extension, is
atomic, and lists what a format could not hold (alpha in JPEG, 16 bits in WebP).

TIFF goes through :mod:`.tiff` (tifffile): 16-bit colour is kept, layouts n2nkit cannot write
back (CMYK, several extra samples) are refused, and a TIFF's own tags never travel as "EXIF".
An unreadable EXIF orientation is ignored with a note; animated files and multi-page TIFFs
say that only the first frame is denoised; warnings Pillow raises while reading become notes.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from n2nkit.errors import OutOfMemoryError, UserInputError, first_line
from n2nkit.runtime import png16, tiff
from n2nkit.runtime.appearance import (
    DPI_FORMATS,
    Appearance,
    dropped_notes,
    from_pillow,
    png_physical,
)
from n2nkit.runtime.pixels import channel_count, native

FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
READABLE = ("PNG", "JPEG", "TIFF", "WEBP", "BMP")
IMAGE_SUFFIXES = tuple(FORMATS)  # the one list of image file suffixes (denoise, training)
ORIENTATION = 0x0112  # EXIF tag
_OPEN_LOCK = threading.Lock()  # guards Pillow's global decompression-bomb limit while opening
_16BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


@dataclass
class ImageFile:
    """Pixels (H×W or H×W×C, uint8 or uint16) and what should travel with them."""

    pixels: np.ndarray
    format: str
    mode: str  # Pillow's mode of the file, before conversion
    icc_profile: bytes | None = None
    exif: bytes | None = None
    notes: list[str] = field(default_factory=list)
    appearance: Appearance = field(default_factory=Appearance)


def default_max_pixels() -> int:
    from PIL import Image

    return int(Image.MAX_IMAGE_PIXELS or 0) or 89_478_485


def output_format(path: Path) -> str:
    """The Pillow format for ``path``'s extension, or one line naming the supported ones."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UserInputError(
            f"cannot tell the output format of {Path(path).name}: use one of "
            + ", ".join(sorted(FORMATS))
        )
    return FORMATS[suffix]


# Largest side each format's encoder takes (libwebp: 16383; libjpeg: 65500); others: none.
MAX_SIDE = {"WEBP": 16383, "JPEG": 65500}


def check_output_size(path: Path, height: int, width: int) -> None:
    """Refuse, with one line, an image larger than ``path``'s format can hold: called before
    the image is denoised, so a batch loses no time on it and the encoder never fails."""
    fmt = output_format(path)
    limit = MAX_SIDE.get(fmt)
    if limit is not None and max(height, width) > limit:
        raise UserInputError(
            f"cannot write {Path(path).name}: {fmt} holds at most {limit} pixels per side, the "
            f"image is {width}×{height}; write it as .png or .tif"
        )


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels upright as EXIF orientation 1-8 says (what viewers show)."""
    a = pixels
    ops = {
        2: lambda: a[:, ::-1],
        3: lambda: a[::-1, ::-1],
        4: lambda: a[::-1],
        5: lambda: a.swapaxes(0, 1),
        6: lambda: np.rot90(a, -1),
        7: lambda: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation]()) if orientation in ops else a


def _open(path: Path, max_pixels: int):
    """Open lazily (header only) with n2nkit's own pixel limit in place of Pillow's."""
    from PIL import Image

    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # checked below against max_pixels
        try:
            image = Image.open(path, formats=READABLE)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise UserInputError(
            f"{path} is {width}×{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} that guards against decompression bombs; raise it with --max-pixels "
            "if you trust the file"
        )
    return image


# 2- and 4-bit grey PNGs, which Pillow decodes to 0-255: the factor it scales their values by.
LOW_BIT_GREY = {"L;2": 85, "L;4": 17}


def _pixels(image, path: Path) -> tuple[np.ndarray, list[str]]:
    """Decode to uint8/uint16 grey, grey + alpha, RGB or RGBA; a colour key becomes alpha."""
    key = image.info.get("transparency") if image.mode not in ("P", "PA") else None
    raw_mode = image.tile[0].args if image.tile else None
    scale = LOW_BIT_GREY.get(raw_mode) if isinstance(raw_mode, str) else None
    if isinstance(key, int) and scale:  # Pillow scales the pixels, not the key: 15 in a 4-bit
        key *= scale  # PNG is 255 once decoded
    pixels, notes = _decoded(image, path)
    channels = channel_count(pixels)
    if isinstance(key, int | tuple) and channels in (1, 3):  # not when alpha is there already
        pixels = _colour_key_to_alpha(pixels, key)
        notes.append("colour-key transparency (PNG tRNS): written as an alpha channel")
    return pixels, notes


def _colour_key_to_alpha(pixels: np.ndarray, key: int | tuple) -> np.ndarray:
    """Grey or RGB pixels plus an alpha channel, 0 where a pixel is the key colour.

    Why not keep the key: denoising moves every pixel, so the key would no longer match the
    pixels it marked (and would match others by chance)."""
    colour = pixels if pixels.ndim == 3 else pixels[..., None]
    keyed = np.all(colour == np.asarray(key, dtype=np.int64).reshape(-1), axis=-1)
    opaque = np.iinfo(pixels.dtype).max
    alpha = np.where(keyed, 0, opaque).astype(pixels.dtype)
    return np.concatenate([colour, alpha[..., None]], axis=-1)


def _decoded(image, path: Path) -> tuple[np.ndarray, list[str]]:
    notes: list[str] = []
    mode = image.mode
    if png16.is_16bit_colour(image):
        return png16.decode_16bit_colour(path), notes
    if mode in _16BIT_MODES:
        return np.asarray(image).astype(np.uint16), notes
    if mode == "I":  # 32-bit integer: 16-bit files in some Pillow versions
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 65535:
            raise UserInputError(f"{path} holds 32-bit integer samples beyond 16 bits")
        return values.astype(np.uint16), notes
    if mode == "F":
        raise UserInputError(f"{path} holds 32-bit float samples: convert it to 8 or 16 bits")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        mode_to = "RGBA" if has_alpha else "RGB"
        notes.append(f"palette image: written as {mode_to}")
        return np.asarray(image.convert(mode_to)), notes
    targets = {"1": "L", "L": "L", "LA": "LA", "La": "LA", "RGB": "RGB", "RGBA": "RGBA",
               "RGBa": "RGBA", "RGBX": "RGB"}  # fmt: skip
    target = targets.get(mode, "RGB")  # CMYK, YCbCr, LAB, HSV: as RGB
    if target != mode and mode not in ("1", "La", "RGBa", "RGBX"):
        notes.append(f"{mode} image: denoised as {target}")
    if image.tile and image.tile[0].args == "LA;16B":  # Pillow opens it as RGBA
        notes.append("16-bit grey + alpha PNG: read as 8 bits")
        return np.asarray(image.convert("LA")), notes
    return np.asarray(image.convert(target) if target != mode else image), notes


def read_image(path: Path, max_pixels: int | None = None) -> ImageFile:
    """Read ``path`` as described in the module docstring; one clear error if it cannot be."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"input not found: {path}")
    if path.is_dir():
        raise UserInputError(f"{path} is a folder, not an image")
    if path.stat().st_size == 0:
        raise UserInputError(f"{path} is empty (0 bytes)")
    limit = default_max_pixels() if max_pixels is None else int(max_pixels)
    try:
        loaded, caught = _read(path, limit)
    except MemoryError:  # a header within --max-pixels but beyond this machine's memory
        raise OutOfMemoryError(
            f"out of memory decoding {path}: the image is larger than this machine can hold"
        ) from None
    loaded.notes += _warning_notes(caught)
    return loaded


def _read(path: Path, limit: int) -> tuple[ImageFile, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if tiff.is_tiff(path):
            found = tiff.read_tiff(path, limit)
            if found.pixels is not None:
                notes = found.notes
                orientation = _orientation(found.orientation, notes)
                pixels = apply_orientation(found.pixels, orientation)
                loaded = ImageFile(pixels, "TIFF", found.mode, found.icc_profile, None, notes,
                                   found.appearance.upright(orientation))  # fmt: skip
            else:  # a compression only Pillow decodes here (see n2nkit.runtime.tiff)
                loaded = _read_with_pillow(path, limit, found.page)
                loaded.notes[:0] = found.notes
        else:
            loaded = _read_with_pillow(path, limit)
    return loaded, caught


def _read_with_pillow(path: Path, limit: int, tiff_page: int | None = None) -> ImageFile:
    """Decode ``path`` with Pillow: its first frame, or for a TIFF that :mod:`.tiff` chose the
    page of (``tiff_page``; its notes already name the pages) that page."""
    from PIL import UnidentifiedImageError

    try:
        with _open(path, limit) as image:
            if tiff_page:
                image.seek(tiff_page)
            pixels, notes = _pixels(image, path)  # first: reading EXIF may load the pixels
            notes += _frames_note(image) if tiff_page is None else []
            exif = image.getexif()
            orientation = _orientation(exif.get(ORIENTATION, 1), notes)
            icc = image.info.get("icc_profile")
            fmt, mode = image.format or "", image.mode
            if ORIENTATION in exif:
                del exif[ORIENTATION]  # the pixels are upright now (or the tag was unreadable)
            # A TIFF's "EXIF" in Pillow is its whole IFD (Photometric, ExtraSamples, ...):
            # written into another file, those tags describe pixels it does not hold.
            exif_bytes = exif.tobytes() if len(exif) and fmt != "TIFF" else None
            shown = from_pillow(image.info).upright(orientation)
    except UnidentifiedImageError:
        raise UserInputError(
            f"{path} is not an image n2nkit reads (PNG, JPEG, TIFF, WebP or BMP)"
        ) from None
    except PermissionError:
        raise UserInputError(f"cannot read {path}: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's truncated/corrupt
        raise UserInputError(
            f"{path} is not a readable image (truncated or corrupt?): {first_line(exc)}"
        ) from None
    pixels = apply_orientation(np.asarray(pixels), orientation)
    return ImageFile(pixels, fmt, mode, icc, exif_bytes, notes, shown)


def _orientation(value, notes: list[str]) -> int:
    """EXIF orientation 1-8; an unreadable one (text, out of range) is ignored with a note and
    the pixels are denoised as stored."""
    try:
        orientation = int(value if value is not None else 1)
    except (TypeError, ValueError):
        orientation = 0
    if 1 <= orientation <= 8:
        return orientation
    notes.append(f"EXIF orientation {value!r} is not one of 1-8: ignored, pixels kept as stored")
    return 1


def _frames_note(image) -> list[str]:
    frames = int(getattr(image, "n_frames", 1) or 1)
    if frames <= 1:
        return []
    if image.format == "MPO":  # a JPEG with more pictures (a stereo pair, a preview)
        return [f"MPO with {frames} pictures: only the first picture is denoised"]
    kind = "animated " + (image.format or "image") if image.format != "TIFF" else "TIFF"
    return [f"{kind} with {frames} frames: only the first frame is denoised"]


def _warning_notes(caught: list[warnings.WarningMessage]) -> list[str]:
    """Warnings Pillow or tifffile raised while reading, as n2nkit notes (each once)."""
    from PIL import Image

    notes: list[str] = []
    for w in caught:
        if issubclass(w.category, Image.DecompressionBombWarning):
            continue  # n2nkit's own --max-pixels check stands in for it
        note = f"while reading: {first_line(w.message)}"
        if note not in notes:
            notes.append(note)
    return notes


def _to_8bit(pixels: np.ndarray) -> np.ndarray:
    return np.rint(pixels.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)


def _writable(pixels: object) -> np.ndarray:
    """``pixels`` as a native uint8/uint16 H×W or H×W×C (C = 1..4) array, or one line saying
    what to pass (a float image, a channel-first array and a stack raised Pillow's TypeError or
    came back transposed)."""
    array = native(pixels)
    if array.dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise UserInputError(
            f"write_image takes uint8 or uint16 pixels, got {array.dtype}; for floats in [0, 1]: "
            "np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)"
        )
    if array.ndim not in (2, 3) or (array.ndim == 3 and not 1 <= array.shape[2] <= 4):
        raise UserInputError(
            f"write_image takes H×W or H×W×C pixels (C = 1 to 4), got shape {array.shape}"
        )
    if 0 in array.shape:
        raise UserInputError(f"write_image got an empty image of shape {array.shape}")
    return array


def _fit_format(pixels: np.ndarray, fmt: str) -> tuple[np.ndarray, list[str]]:
    """Convert ``pixels`` to something ``fmt`` can hold; say what was given up."""
    notes: list[str] = []
    channels = channel_count(pixels)
    if channels in (2, 4) and fmt in ("JPEG", "BMP"):
        # Pillow writes RGBA as a 32-bit BI_RGB BMP, whose fourth byte readers ignore
        pixels = pixels[..., : channels - 1]
        channels -= 1
        notes.append(f"{fmt} holds no alpha: alpha dropped (.png, .tif and .webp keep it)")
    if channels == 1 and pixels.ndim == 3:
        pixels = pixels[..., 0]
    if channels == 2 and fmt == "WEBP":
        grey, alpha = pixels[..., :1], pixels[..., 1:]
        pixels = np.concatenate([grey, grey, grey, alpha], axis=-1)
        notes.append(f"{fmt} holds no grey + alpha: written as RGBA")
    if channels == 1 and fmt == "WEBP":
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
        notes.append("WebP holds no grey: written as RGB")
    if pixels.dtype == np.uint16 and fmt not in ("PNG", "TIFF"):
        pixels = _to_8bit(pixels)
        notes.append(f"{fmt} output: 16-bit samples written as 8 bits (.png or .tif keep 16)")
    return pixels, notes


JPEG_MAX_EXIF = 65_533  # bytes in one APP1 marker: Pillow refuses longer EXIF in a JPEG
ICC_SPACES = {"GRAY": (1, 2), "RGB ": (3, 4)}  # ICC colour space -> channel counts it describes


def _metadata_to_keep(
    fmt: str, pixels: np.ndarray, icc: bytes | None, exif: bytes | None
) -> tuple[bytes | None, bytes | None, list[str]]:
    """The source's ICC profile and EXIF that ``fmt`` can hold and that still describe the
    pixels written; notes on what was dropped.

    A profile for another colour model (a CMYK photo's profile on its RGB output, a grey
    profile on RGB) would make colour-managed viewers misread the pixels, so it is dropped."""
    notes: list[str] = []
    channels = channel_count(pixels)
    space = icc[16:20].decode("latin-1") if icc and len(icc) >= 20 else None
    if icc and channels not in ICC_SPACES.get(space, ()):
        profile = space.strip() if space and space.isprintable() else "an unknown colour model"
        model = "grey" if channels in (1, 2) else "RGB"
        notes.append(f"the ICC profile is for {profile}, the output is {model}: profile dropped")
        icc = None
    if fmt == "BMP" and (icc or exif):
        kept = " and ".join(k for k, v in (("ICC profile", icc), ("EXIF", exif)) if v)
        notes.append(f"BMP holds no {kept}: dropped (.png, .jpg, .webp keep them)")
        return None, None, notes
    if fmt == "JPEG" and exif and len(exif) > JPEG_MAX_EXIF:
        notes.append(f"the EXIF ({len(exif):,} bytes) exceeds JPEG's {JPEG_MAX_EXIF:,}: dropped")
        exif = None
    return icc, exif, notes


def _write_file(path: Path, write, overwrite: bool = True) -> None:
    """Atomic write; a destination the system refuses (read-only, /proc, full disk) or data the
    encoder refuses is one line, as is a file that appeared at ``path`` unless ``overwrite``."""
    from n2nkit.fileio import atomic_write

    try:
        atomic_write(path, write, replace=overwrite)  # .tmp: a killed run's leftover is no image
    except FileExistsError:
        raise UserInputError(
            f"{path} appeared while n2nkit was writing it (another process?): kept as it is; "
            "pass --overwrite to replace it"
        ) from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or first_line(exc)
        raise UserInputError(f"cannot write {path}: {reason}") from None


def write_image(
    path: Path,
    pixels: np.ndarray,
    source: ImageFile | None = None,
    quality: int = 95,
    overwrite: bool = True,
) -> list[str]:
    """Write ``pixels`` to ``path`` atomically in the format its extension names.

    ``source`` passes on the ICC profile and EXIF of the file the pixels came from. Returns
    notes on what the format could not hold. ``overwrite=False`` refuses to replace a file at
    ``path``, even one that appears while the image is encoded.
    """
    from PIL import Image

    path = Path(path)
    fmt = output_format(path)
    pixels = _writable(pixels)
    check_output_size(path, *pixels.shape[:2])
    pixels, notes = _fit_format(pixels, fmt)
    icc, exif, dropped = _metadata_to_keep(
        fmt, pixels, source.icc_profile if source else None, source.exif if source else None
    )
    notes += dropped
    shown = source.appearance if source else Appearance()
    notes += dropped_notes(shown, fmt)
    if fmt == "TIFF":
        if exif:
            notes.append("TIFF output: the source's EXIF is not carried")
        _write_file(path, lambda f: tiff.write_tiff(f, pixels, icc, shown.dpi), overwrite)
        return notes
    chunks = [*shown.png_chunks, *([png_physical(shown.dpi)] if shown.dpi else [])]
    if fmt == "PNG" and pixels.dtype == np.uint16:
        data = png16.encode_png16(pixels, icc, exif, chunks)
        _write_file(path, lambda f: f.write(data), overwrite)
        return notes
    image = Image.fromarray(pixels)
    options: dict = {"dpi": shown.dpi} if shown.dpi and fmt in DPI_FORMATS else {}
    if fmt == "PNG" and shown.png_chunks:
        from PIL.PngImagePlugin import PngInfo

        options["pnginfo"] = PngInfo()
        for kind, data in shown.png_chunks:
            options["pnginfo"].add(kind, data)
    if icc and fmt in ("PNG", "JPEG", "WEBP"):
        options["icc_profile"] = icc
    if exif and fmt in ("PNG", "JPEG", "WEBP"):
        options["exif"] = exif
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    _write_file(path, lambda f: image.save(f, format=fmt, **options), overwrite)
    return notes


def image_files(folder: Path) -> list[Path]:
    """Image files (by suffix, :data:`IMAGE_SUFFIXES`) directly inside ``folder``, by name;
    hidden ones (``.name``) are not: macOS's ``._photo.png`` resource forks are no images."""
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
