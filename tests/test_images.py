"""Image files in and out: real PNG/JPEG/TIFF/WebP/BMP files written and read back."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from n2nkit.errors import UserInputError
from n2nkit.runtime.images import read_image, write_image

RNG = np.random.default_rng(0)


def _u8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, shape).astype(np.uint8)


def _u16(*shape: int) -> np.ndarray:
    return RNG.integers(0, 65536, shape).astype(np.uint16)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path: Path, orientation: int) -> None:
    image = Image.fromarray(_u8(5, 7, 3))
    exif = image.getexif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    image.save(path, exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    loaded = read_image(path)
    assert np.array_equal(loaded.pixels, expected)
    carried = Image.Exif()
    carried.load(loaded.exif)
    assert carried.get(0x0112, 1) == 1  # EXIF travels, orientation reset: pixels are upright


@pytest.mark.parametrize(
    "pixels",
    [
        _u16(33, 51),
        _u16(33, 51, 3),
        _u16(33, 51, 4),
        _u8(33, 51),
        _u8(33, 51, 2),
        _u8(33, 51, 3),
        _u8(33, 51, 4),
    ],  # fmt: skip
    ids=["grey16", "rgb16", "rgba16", "grey8", "greyalpha8", "rgb8", "rgba8"],
)
def test_png_round_trips_every_layout_bit_exactly(tmp_path: Path, pixels: np.ndarray) -> None:
    path = tmp_path / "x.png"
    assert write_image(path, pixels) == []
    loaded = read_image(path)
    assert loaded.pixels.dtype == pixels.dtype and np.array_equal(loaded.pixels, pixels)


def test_sixteen_bit_png_from_another_writer_reads_as_sixteen_bits(tmp_path: Path) -> None:
    """Pillow reads 16-bit colour PNGs as 8-bit; n2nkit must not (and Pillow must agree on
    the high bytes, which shows the file is read, not guessed)."""
    pixels = _u16(20, 30, 3)
    path = tmp_path / "rgb16.png"
    write_image(path, pixels)
    assert np.array_equal(np.asarray(Image.open(path)), (pixels >> 8).astype(np.uint8))
    assert np.array_equal(read_image(path).pixels, pixels)


def test_sixteen_bit_grey_tiff_stays_sixteen_bit(tmp_path: Path) -> None:
    pixels = _u16(21, 17)
    path = tmp_path / "g.tif"
    write_image(path, pixels)
    assert np.array_equal(read_image(path).pixels, pixels)


def test_palette_images_become_rgb_or_rgba(tmp_path: Path) -> None:
    image = Image.fromarray(_u8(16, 16, 3)).quantize(colors=16)
    image.save(tmp_path / "p.png")
    plain = read_image(tmp_path / "p.png")
    assert plain.pixels.shape == (16, 16, 3) and "palette" in plain.notes[0]
    image.save(tmp_path / "pt.png", transparency=0)
    assert read_image(tmp_path / "pt.png").pixels.shape == (16, 16, 4)


def _with_trns(png: bytes, key: bytes) -> bytes:
    """``png`` with a tRNS chunk (colour-key transparency) before its image data."""
    import struct
    import zlib

    at = png.index(b"IDAT") - 4
    chunk = struct.pack(">I", len(key)) + b"tRNS" + key
    return png[:at] + chunk + struct.pack(">I", zlib.crc32(b"tRNS" + key)) + png[at:]


def test_colour_key_transparency_becomes_alpha(tmp_path: Path) -> None:
    """A tRNS colour key would not survive denoising (the pixels move off the key), so it is
    read as an alpha channel: 0 exactly where the key colour was, at the file's bit depth."""
    import struct

    rgb16 = _u16(12, 10, 3)
    rgb16[2, 3] = rgb16[7, 1] = (1, 2, 3)
    write_image(tmp_path / "plain16.png", rgb16)
    keyed = _with_trns((tmp_path / "plain16.png").read_bytes(), struct.pack(">HHH", 1, 2, 3))
    (tmp_path / "rgb16.png").write_bytes(keyed)
    loaded = read_image(tmp_path / "rgb16.png")
    assert loaded.pixels.dtype == np.uint16 and loaded.pixels.shape == (12, 10, 4)
    assert np.array_equal(loaded.pixels[..., :3], rgb16)
    expected = np.full((12, 10), 65535, np.uint16)
    expected[2, 3] = expected[7, 1] = 0
    assert np.array_equal(loaded.pixels[..., 3], expected)
    assert any("tRNS" in note for note in loaded.notes)

    grey = _u8(9, 11)
    grey[4, 4] = 5
    Image.fromarray(grey).save(tmp_path / "grey.png", transparency=5)
    loaded = read_image(tmp_path / "grey.png")
    assert loaded.pixels.shape == (9, 11, 2) and np.array_equal(loaded.pixels[..., 0], grey)
    assert np.array_equal(loaded.pixels[..., 1] == 0, grey == 5)


@pytest.mark.parametrize("suffix", [".jpg", ".tif", ".webp", ".bmp"])
def test_other_formats_round_trip(tmp_path: Path, suffix: str) -> None:
    pixels = np.tile(np.linspace(0, 255, 24, dtype=np.uint8), (16, 1))[..., None].repeat(3, 2)
    path = tmp_path / f"x{suffix}"
    write_image(path, pixels)
    loaded = read_image(path)
    assert loaded.pixels.shape == pixels.shape
    assert np.abs(loaded.pixels.astype(int) - pixels).max() <= (8 if suffix in (".jpg", ".webp")
                                                                else 0)  # fmt: skip


def test_what_a_format_cannot_hold_is_noted(tmp_path: Path) -> None:
    notes = write_image(tmp_path / "a.jpg", _u8(8, 8, 4))
    assert any("alpha dropped" in n for n in notes)
    assert read_image(tmp_path / "a.jpg").pixels.shape == (8, 8, 3)
    rgba, grey_alpha = _u8(8, 8, 4), _u8(8, 8, 2)
    for name, pixels, kept in (
        ("c.bmp", rgba, rgba[..., :3]),
        ("d.bmp", grey_alpha, grey_alpha[..., 0]),
    ):
        notes = write_image(tmp_path / name, pixels)  # Pillow's BMP keeps no alpha: said so
        assert any("BMP holds no alpha" in n for n in notes), notes
        assert np.array_equal(read_image(tmp_path / name).pixels, kept)
    notes = write_image(tmp_path / "b.webp", _u16(8, 8, 3))
    assert any("8 bits" in n for n in notes)
    assert read_image(tmp_path / "b.webp").pixels.dtype == np.uint8


def test_icc_profile_travels_to_the_output(tmp_path: Path) -> None:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(_u8(8, 8, 3)).save(tmp_path / "in.png", icc_profile=icc)
    source = read_image(tmp_path / "in.png")
    for name, pixels in (("out.png", source.pixels), ("out16.png", _u16(8, 8, 3))):
        write_image(tmp_path / name, pixels, source)
        assert read_image(tmp_path / name).icc_profile == icc


def test_an_icc_profile_for_another_colour_model_is_dropped(tmp_path: Path) -> None:
    """A CMYK photo's profile on its RGB output, or a grey profile on RGB, would make viewers
    misread the colours: dropped, with a note. A matching profile stays (above)."""
    from PIL import ImageCms

    cmyk = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    cmyk[16:20] = b"CMYK"
    Image.fromarray(_u8(8, 8, 3)).convert("CMYK").save(tmp_path / "in.jpg", icc_profile=bytes(cmyk))
    source = read_image(tmp_path / "in.jpg")
    assert source.icc_profile == bytes(cmyk)
    for name in ("out.jpg", "out.png", "out.tif"):
        notes = write_image(tmp_path / name, source.pixels, source)
        assert any("profile is for CMYK, the output is RGB" in n for n in notes), notes
        assert read_image(tmp_path / name).icc_profile is None
    grey = bytearray(cmyk)
    grey[16:20] = b"GRAY"
    Image.fromarray(_u8(8, 8)).save(tmp_path / "g.png", icc_profile=bytes(grey))
    source = read_image(tmp_path / "g.png")
    assert write_image(tmp_path / "g_out.png", source.pixels, source) == []
    assert read_image(tmp_path / "g_out.png").icc_profile == bytes(grey)
    notes = write_image(tmp_path / "g_out.webp", source.pixels, source)  # WebP: grey -> RGB
    assert any("profile is for GRAY, the output is RGB" in n for n in notes), notes


def test_metadata_a_format_cannot_hold_is_dropped_with_a_note(tmp_path: Path) -> None:
    """EXIF over JPEG's 64 KB marker made Pillow raise (a traceback that stopped a batch);
    BMP keeps neither EXIF nor a profile. Both now write the pixels and say what was dropped."""
    exif = Image.Exif()
    exif[0x010E] = "x" * 70_000  # ImageDescription
    Image.fromarray(_u8(8, 8, 3)).save(tmp_path / "in.png", exif=exif.tobytes())
    source = read_image(tmp_path / "in.png")
    assert source.exif is not None and len(source.exif) > 65_533
    notes = write_image(tmp_path / "out.jpg", source.pixels, source)
    assert any("exceeds JPEG's 65,533: dropped" in n for n in notes), notes
    assert read_image(tmp_path / "out.jpg").pixels.shape == (8, 8, 3)
    notes = write_image(tmp_path / "out.png", source.pixels, source)  # PNG holds it
    assert notes == [] and read_image(tmp_path / "out.png").exif == source.exif
    notes = write_image(tmp_path / "out.bmp", source.pixels, source)
    assert any("BMP holds no EXIF: dropped" in n for n in notes), notes


def _png_bytes(pixels: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "input not found"),
        (b"", "empty"),
        (b"just some text, not pixels\n", "not an image"),
        ("truncated", "not a readable image"),
    ],
)
def test_bad_files_are_one_clear_error(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "in.png"
    if content == "truncated":
        content = _png_bytes(_u8(64, 64, 3))[:300]
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserInputError, match=message):
        read_image(path)


@pytest.mark.parametrize("damage", ["cut", "flipped"])
def test_a_damaged_deflate_tiff_is_one_clear_error(tmp_path: Path, damage: str) -> None:
    """n2nkit writes TIFF with deflate; a cut or corrupted copy made zlib raise a traceback."""
    write_image(tmp_path / "own.tif", _u8(256, 256, 3))
    data = bytearray((tmp_path / "own.tif").read_bytes())
    if damage == "cut":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # zeros inside the stream
    (tmp_path / "bad.tif").write_bytes(bytes(data))
    with pytest.raises(UserInputError, match="not a readable TIFF"):
        read_image(tmp_path / "bad.tif")


def test_decompression_bomb_guard_and_its_override(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(path)
    with pytest.raises(UserInputError, match="60,000 pixels, over the limit of 10,000"):
        read_image(path, max_pixels=10_000)
    assert read_image(path, max_pixels=60_000).pixels.shape == (200, 300, 3)


def test_unknown_output_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="output format"):
        write_image(tmp_path / "out.xyz", _u8(4, 4, 3))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("out_suffix", [".png", ".jpg", ".tif", ".bmp", ".webp"])
@pytest.mark.parametrize("depth", [np.uint8, np.uint16])
def test_resolution_and_png_colour_chunks_travel_where_the_format_holds_them(
    tmp_path: Path, out_suffix: str, depth
) -> None:
    """The 300 dpi of a scan and a PNG's gAMA/cHRM were dropped without a word."""
    from PIL import PngImagePlugin

    pixels = np.random.default_rng(0).integers(0, 256, (24, 40, 3), np.uint8)
    chunks = PngImagePlugin.PngInfo()
    chunks.add(b"gAMA", struct.pack(">I", 100_000))  # linear light: shows much darker if lost
    chunks.add(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000))
    Image.fromarray(pixels).save(tmp_path / "in.png", pnginfo=chunks, dpi=(300, 300))
    source = read_image(tmp_path / "in.png")
    out = tmp_path / f"out{out_suffix}"
    if depth is np.uint16 and out_suffix in (".png", ".tif"):
        notes = write_image(out, source.pixels.astype(np.uint16) * 257, source)
    else:
        notes = write_image(out, source.pixels, source)
    with Image.open(out) as written:
        dpi, gamma = written.info.get("dpi"), written.info.get("gamma")
    if out_suffix == ".webp":
        assert dpi is None and any("no resolution" in n for n in notes)
    else:
        assert dpi is not None and abs(dpi[0] - 300) < 0.5 and abs(dpi[1] - 300) < 0.5
    if out_suffix == ".png":
        assert gamma == 1.0 and not notes
        assert read_image(out).appearance == source.appearance
    else:
        assert gamma is None and any("gAMA and cHRM" in n for n in notes)


def test_a_quarter_turn_swaps_the_resolution(tmp_path: Path) -> None:
    pixels = np.zeros((20, 30, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to show
    Image.fromarray(pixels).save(tmp_path / "in.jpg", dpi=(300, 150), exif=exif)
    image = read_image(tmp_path / "in.jpg")
    assert image.pixels.shape[:2] == (30, 20) and image.appearance.dpi == (150, 300)


@pytest.mark.parametrize(
    ("pixels", "fragment"),
    [
        (np.zeros((4, 4, 3), np.float32), "uint8 or uint16 pixels, got float32"),
        (np.zeros((4, 4), bool), "got bool"),
        (np.zeros((4, 4), np.int16), "got int16"),  # TIFF wrote it; read_image refused it
        (np.zeros((4, 4, 5), np.uint8), "C = 1 to 4"),  # came back transposed from TIFF
        (np.zeros((2, 4, 4, 3), np.uint8), "C = 1 to 4"),
        (np.zeros((0, 4), np.uint8), "empty"),
    ],
)
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_write_image_refuses_what_it_cannot_write_faithfully(
    tmp_path: Path, pixels, fragment: str, suffix: str
) -> None:
    """Pillow raised 'TypeError: Cannot handle this data type' for these, or wrote a TIFF
    that read_image refuses."""
    with pytest.raises(UserInputError, match=fragment):
        write_image(tmp_path / f"out{suffix}", pixels)
    assert not list(tmp_path.iterdir())


def test_write_image_takes_big_endian_pixels(tmp_path: Path) -> None:
    pixels = np.arange(24 * 40, dtype=np.uint16).reshape(24, 40) * 60
    write_image(tmp_path / "out.png", pixels.astype(">u2"))
    np.testing.assert_array_equal(read_image(tmp_path / "out.png").pixels, pixels)
