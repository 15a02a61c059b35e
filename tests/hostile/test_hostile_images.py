"""Hostile image files through ``n2nkit denoise`` (a real CLI run on real files, the shipped
model on the CPU): refused with one line, a non-zero exit, the input untouched and no output,
or, where the file is valid, a correct output that other software opens."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from n2nkit.cli import app
from n2nkit.runtime.images import read_image

runner = CliRunner()
SHAPE = (24, 40)
RNG = np.random.default_rng(0)
# The only tags n2nkit writes into a TIFF (tifffile's baseline for its own pixels + ICC).
OWN_TIFF_TAGS = {
    "NewSubfileType", "ImageWidth", "ImageLength", "BitsPerSample", "Compression",
    "PhotometricInterpretation", "StripOffsets", "SamplesPerPixel", "RowsPerStrip",
    "StripByteCounts", "XResolution", "YResolution", "PlanarConfiguration", "ResolutionUnit",
    "Software", "ExtraSamples", "SampleFormat", "InterColorProfile",
}  # fmt: skip


def _noisy(*shape: int, dtype=np.uint8) -> np.ndarray:
    top = np.iinfo(dtype).max
    ramp = np.linspace(0.2, 0.8, shape[1]).reshape(1, -1, *([1] * (len(shape) - 2)))
    values = np.clip(ramp + RNG.normal(0, 0.1, shape), 0, 1)
    return np.rint(values * top).astype(dtype)


def _denoise(source: Path, target: Path):
    return runner.invoke(app, ["denoise", str(source), str(target), "--backend", "ort-cpu"])


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(source: Path, target: Path, *fragments: str) -> None:
    """One ``error:`` line naming ``fragments``, a non-zero exit, input untouched, no output."""
    before = _digest(source)
    result = _denoise(source, target)
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert _digest(source) == before
    assert not target.exists()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]


def _notes(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("note:")]


# ------------------------------------------------------------------ TIFF layouts
def test_cmyk_tiff_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "cmyk.tif"
    Image.fromarray(_noisy(*SHAPE, 4), "CMYK").save(source)
    _refused(source, tmp_path / "out.tif", "CMYK", "convert it to RGB")


@pytest.mark.parametrize(
    ("samples", "photometric", "extrasamples"),
    [(5, "minisblack", (0, 0, 0, 0)), (5, "rgb", (2, 0)), (6, "rgb", (2, 2, 0))],
    ids=["grey+4", "rgb+alpha+extra", "rgb+3"],
)
def test_tiff_with_several_extra_samples_is_refused(
    tmp_path: Path, samples: int, photometric: str, extrasamples: tuple[int, ...]
) -> None:
    source = tmp_path / "extra.tif"
    tifffile.imwrite(
        source,
        _noisy(*SHAPE, samples),
        photometric=photometric,
        extrasamples=extrasamples,
        planarconfig="contig",
    )
    _refused(source, tmp_path / "out.tif", f"{samples} samples per pixel", "at most one alpha")


def test_premultiplied_alpha_tiff_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "assoc.tif"
    tifffile.imwrite(source, _noisy(*SHAPE, 4), photometric="rgb", extrasamples=["assocalpha"])
    _refused(source, tmp_path / "out.tif", "premultiplied")


def test_rgba_tiff_with_an_extra_sample_round_trips_openable(tmp_path: Path) -> None:
    """RGB + one alpha extra sample: denoised, alpha untouched, and the output carries only
    n2nkit's own tags, so Pillow and tifffile both open it as RGBA."""
    pixels = _noisy(*SHAPE, 4)
    source, target = tmp_path / "rgba.tif", tmp_path / "out.tif"
    Image.fromarray(pixels, "RGBA").save(source)  # Pillow writes ExtraSamples = unassociated
    result = _denoise(source, target)
    assert result.exit_code == 0, result.output
    with Image.open(target) as image:
        assert image.mode == "RGBA" and image.size == SHAPE[::-1]
        out = np.asarray(image)
    assert np.array_equal(out[..., 3], pixels[..., 3])
    assert np.abs(out[..., :3].astype(int) - pixels[..., :3]).mean() < 40  # denoised, not junk
    with tifffile.TiffFile(target) as tif:
        page = tif.pages.first
        assert {tag.name for tag in page.tags.values()} <= OWN_TIFF_TAGS
        assert tuple(int(e) for e in page.extrasamples) == (2,)


def test_sixteen_bit_rgb_tiff_stays_sixteen_bit(tmp_path: Path) -> None:
    pixels = _noisy(*SHAPE, 3, dtype=np.uint16)
    source, target = tmp_path / "rgb16.tif", tmp_path / "out.tif"
    tifffile.imwrite(source, pixels, photometric="rgb")
    assert read_image(source).pixels.dtype == np.uint16
    assert np.array_equal(read_image(source).pixels, pixels)
    result = _denoise(source, target)
    assert result.exit_code == 0, result.output
    assert not any("8 bits" in n for n in _notes(result)), result.output
    out = tifffile.imread(target)
    assert out.dtype == np.uint16 and out.shape == pixels.shape
    assert len(np.unique(out & 0xFF)) > 16  # real low bytes, not 8 bits scaled up
    assert np.abs(out.astype(np.int64) - pixels).mean() < 40 * 257
    # the same image as 8 bits gives the same picture (the model sees [0, 1] either way)
    eight = tmp_path / "rgb8.tif"
    tifffile.imwrite(eight, (pixels >> 8).astype(np.uint8), photometric="rgb")
    assert _denoise(eight, tmp_path / "out8.tif").exit_code == 0
    out8 = tifffile.imread(tmp_path / "out8.tif").astype(np.float64) / 255
    assert np.abs(out.astype(np.float64) / 65535 - out8).mean() < 0.02


def test_lzw_tiff_written_by_pillow_is_read(tmp_path: Path) -> None:
    """LZW needs imagecodecs in tifffile; 8-bit files fall back to Pillow, which reads them."""
    pixels = _noisy(*SHAPE, 3)
    source = tmp_path / "lzw.tif"
    Image.fromarray(pixels).save(source, compression="tiff_lzw")
    assert np.array_equal(read_image(source).pixels, pixels)
    assert _denoise(source, tmp_path / "out.png").exit_code == 0


def test_multi_page_tiff_says_only_the_first_page_is_denoised(tmp_path: Path) -> None:
    source = tmp_path / "pages.tif"
    with tifffile.TiffWriter(source) as tif:
        for _ in range(3):
            tif.write(_noisy(*SHAPE, 3), photometric="rgb")
    result = _denoise(source, tmp_path / "out.tif")
    assert result.exit_code == 0, result.output
    assert any("3 pages" in n and "first" in n for n in _notes(result)), result.output


def test_a_tiff_whose_first_page_is_a_preview_is_denoised_at_full_resolution(tmp_path: Path):
    """A scanner's TIFF with a half-size preview first: the preview was denoised and written."""
    full = _noisy(*SHAPE, 3)
    source = tmp_path / "scan.tif"
    with tifffile.TiffWriter(source) as tif:
        tif.write(full[::2, ::2], photometric="rgb", subfiletype=1)  # reduced resolution
        tif.write(full, photometric="rgb")
    result = _denoise(source, tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "out.png").pixels.shape == full.shape
    assert any("only page 2" in n and "previews" in n for n in _notes(result)), result.output


def test_a_preview_first_tiff_that_pillow_decodes_is_read_at_its_full_resolution_page(
    tmp_path: Path,
) -> None:
    """LZW needs Pillow here: it decoded its first frame, the preview, under a note naming
    page 2 (and a second note on the frames)."""
    full = Image.fromarray(_noisy(*SHAPE, 3))
    source = tmp_path / "scan.tif"
    full.resize((SHAPE[1] // 2, SHAPE[0] // 2)).save(
        source, compression="tiff_lzw", save_all=True, append_images=[full], tiffinfo={254: 1}
    )
    with tifffile.TiffFile(source, mode="r+b") as tif:  # Pillow marked both pages reduced
        tif.pages[1].tags["NewSubfileType"].overwrite(0)
    result = _denoise(source, tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "out.png").pixels.shape == (*SHAPE, 3)
    pages = [n for n in _notes(result) if "page" in n or "frame" in n]
    assert len(pages) == 1 and "only page 2" in pages[0], result.output


# ------------------------------------------------------------------ other hostile files
def test_animated_png_says_only_the_first_frame_is_denoised(tmp_path: Path) -> None:
    source, target = tmp_path / "anim.png", tmp_path / "out.png"
    frames = [Image.fromarray(np.full((*SHAPE, 3), v, np.uint8)) for v in (60, 200)]
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=100)
    result = _denoise(source, target)
    assert result.exit_code == 0, result.output
    assert any("2 frames" in n and "first frame" in n for n in _notes(result)), result.output
    assert abs(float(np.asarray(Image.open(target)).mean()) - 60) < 10  # the first frame


def test_a_multi_picture_jpeg_is_not_called_animated(tmp_path: Path) -> None:
    """An MPO (a camera's stereo pair or preview) holds pictures, not animation frames."""
    source, target = tmp_path / "pair.mpo", tmp_path / "out.png"
    pictures = [Image.fromarray(np.full((*SHAPE, 3), v, np.uint8)) for v in (60, 200)]
    pictures[0].save(source, format="MPO", save_all=True, append_images=pictures[1:])
    result = _denoise(source, target)
    assert result.exit_code == 0, result.output
    notes = _notes(result)
    assert any("MPO with 2 pictures: only the first picture" in n for n in notes), notes
    assert not any("animated" in n for n in notes)


def _exif_with_text_orientation() -> bytes:
    """A big-endian EXIF block whose Orientation (0x0112) is the ASCII string "six"."""
    entry = struct.pack(">HHI", 0x0112, 2, 4) + b"six\x00"
    return b"Exif\x00\x00MM\x00*" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0)


def test_text_exif_orientation_is_ignored_with_a_note(tmp_path: Path) -> None:
    pixels = _noisy(*SHAPE, 3)
    source, target = tmp_path / "text.png", tmp_path / "out.png"
    Image.fromarray(pixels).save(source, exif=_exif_with_text_orientation())
    loaded = read_image(source)
    assert np.array_equal(loaded.pixels, pixels)  # as stored: not rotated, not rejected
    result = _denoise(source, target)
    assert result.exit_code == 0, result.output
    assert any("orientation" in n and "ignored" in n for n in _notes(result)), result.output
    assert np.asarray(Image.open(target)).shape == pixels.shape


def test_pillow_warnings_become_notes_not_raw_lines(tmp_path: Path) -> None:
    """A corrupt EXIF block makes Pillow warn; the user sees one n2nkit note, no raw warning."""
    source, target = tmp_path / "badexif.png", tmp_path / "out.png"
    broken = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06"
    Image.fromarray(_noisy(*SHAPE, 3)).save(source, exif=broken)
    with _no_raw_warnings():
        result = _denoise(source, target)
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output and "warnings.warn" not in result.output
    assert any("Corrupt EXIF" in n for n in _notes(result)), result.output


class _no_raw_warnings:
    """Fail if any warning escapes n2nkit's reading (it would print raw outside pytest)."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings(record=True)
        self.caught = self._catch.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        escaped = [str(w.message) for w in self.caught]
        assert not escaped, escaped


def test_unwritable_destination_is_one_line(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(_noisy(*SHAPE, 3)).save(source)
    before = _digest(source)
    result = _denoise(source, Path("/proc/out.png"))
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "/proc/out.png" in errors[0], result.output
    assert _digest(source) == before and not Path("/proc/out.png").exists()


def _pillow_tiff(path: Path, mode: str, **options) -> np.ndarray:
    """Write a ``mode`` TIFF with Pillow; return what Pillow reads back (as RGB for palette)."""
    grey = _noisy(*SHAPE)
    image = {
        "L": lambda: Image.fromarray(grey),
        "1": lambda: Image.fromarray(grey > 128),
        "P": lambda: Image.fromarray(grey % 4, "P"),
        "I;16": lambda: Image.fromarray(grey.astype(np.uint16) * 257),
        "LA": lambda: Image.fromarray(_noisy(*SHAPE, 2), "LA"),
        "RGB": lambda: Image.fromarray(_noisy(*SHAPE, 3)),
    }[mode]()
    if mode == "P":
        image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    image.save(path, **options)
    with Image.open(path) as back:
        return np.asarray(back.convert("RGB") if mode == "P" else back)


@pytest.mark.parametrize(
    ("mode", "options"),
    [("L", {}), ("1", {}), ("P", {}), ("I;16", {}), ("I;16", {"compression": "tiff_lzw"}),
     ("LA", {}), ("RGB", {"compression": "jpeg"})],
    ids=["grey", "bilevel", "palette", "grey16", "grey16-lzw", "grey-alpha", "ycbcr-jpeg"],
)  # fmt: skip
def test_other_tiff_layouts_read_as_pillow_sees_them(tmp_path: Path, mode: str, options) -> None:
    path = tmp_path / "in.tif"
    expected = _pillow_tiff(path, mode, **options)
    if expected.dtype == bool:
        expected = expected.astype(np.uint8) * 255
    loaded = read_image(path)
    assert loaded.pixels.dtype == expected.dtype and np.array_equal(loaded.pixels, expected)
    assert _denoise(path, tmp_path / "out.tif").exit_code == 0


def test_planar_and_min_is_white_tiffs(tmp_path: Path) -> None:
    rgb, grey = _noisy(*SHAPE, 3), _noisy(*SHAPE)
    tifffile.imwrite(tmp_path / "planar.tif", rgb.transpose(2, 0, 1), photometric="rgb",
                     planarconfig="separate")  # fmt: skip
    tifffile.imwrite(tmp_path / "white.tif", grey, photometric="miniswhite")
    assert np.array_equal(read_image(tmp_path / "planar.tif").pixels, rgb)
    assert np.array_equal(read_image(tmp_path / "white.tif").pixels, 255 - grey)


@pytest.mark.parametrize(
    ("pixels", "fragment"),
    [(np.zeros((*SHAPE, 3), np.float32), "float samples"),
     (np.zeros(SHAPE, np.uint32), "32-bit samples"),
     (np.zeros(SHAPE, np.int16), "signed 16-bit samples")],  # was "holds 16-bit: reads 16-bit"
    ids=["float32", "uint32", "int16"],
)  # fmt: skip
def test_tiff_sample_types_n2nkit_cannot_hold_are_refused(tmp_path: Path, pixels, fragment):
    source = tmp_path / "deep.tif"
    tifffile.imwrite(source, pixels, photometric="rgb" if pixels.ndim == 3 else "minisblack")
    _refused(source, tmp_path / "out.png", fragment)


@pytest.mark.parametrize("damage", ["truncated", "garbage-ifd", "magic-only"])
def test_broken_tiffs_are_one_line(tmp_path: Path, damage: str) -> None:
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, _noisy(64, 80, 3), photometric="rgb")
    data = good.read_bytes()
    source = tmp_path / "broken.tif"
    source.write_bytes(
        {
            "truncated": data[: len(data) // 3],
            "garbage-ifd": data[:8] + bytes(RNG.integers(0, 256, 500, dtype=np.uint8)),
            "magic-only": b"II*\x00" + bytes(RNG.integers(0, 256, 300, dtype=np.uint8)),
        }[damage]
    )
    _refused(source, tmp_path / "out.tif", "broken.tif")


def test_an_image_too_large_for_the_output_format_is_one_line_and_the_batch_goes_on(
    tmp_path: Path,
) -> None:
    """WebP holds at most 16383 pixels per side: refused before denoising, with one line, and
    the other images of the folder are still written."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name, shape in (("a.png", SHAPE), ("b.png", (2, 16_400)), ("c.png", SHAPE)):
        Image.fromarray(_noisy(*shape, 3)).save(folder / name)
    single = _denoise(folder / "b.png", tmp_path / "b.webp")
    assert single.exit_code == 2 and "Traceback" not in single.output
    assert "WEBP holds at most 16383 pixels per side" in single.output
    assert not (tmp_path / "b.webp").exists()
    out = tmp_path / "out"
    args = ["denoise", str(folder), "--out", str(out), "--format", "webp", "--backend", "ort-cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "1 of 3 image(s) could not be denoised" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.webp", "c.webp"]


def test_a_tile_no_larger_than_its_overlap_step_is_refused_before_any_work(tmp_path: Path):
    """n2n's tiles step by 32 pixels: --tile 32 with any overlap cannot make progress."""
    source = tmp_path / "in.png"
    Image.fromarray(_noisy(64, 64, 3)).save(source)
    args = ["denoise", str(source), str(tmp_path / "out.png"), "--backend", "ort-cpu",
            "--tile", "32", "--overlap", "8"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "tile 32 is too small for overlap 8" in result.output and "at least 64" in result.output
    assert not (tmp_path / "out.png").exists()
    args[args.index("32")] = "64"  # the smallest tile that works
    assert runner.invoke(app, args).exit_code == 0 and (tmp_path / "out.png").is_file()


# ------------------------------------------------------------------ awkward paths
LONG = "日" * 90  # 270 bytes in UTF-8: over the 255-byte limit of a file name


def _photo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_noisy(*SHAPE, 3)).save(path)
    return path


def test_names_the_system_refuses_are_one_line(tmp_path: Path) -> None:
    """A 270-byte name raised OSError 'File name too long' with a traceback, as input or output;
    so did an output folder the system will not create."""
    source = _photo(tmp_path / "in.png")
    for args in ((source, tmp_path / f"{LONG}.png"), (tmp_path / f"{LONG}.png", source)):
        result = _denoise(*args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert "File name too long" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["in.png"]
    if Path("/proc").is_dir():  # /proc refuses new folders, even to root
        _refused(source, Path("/proc/n2nkit-hostile/"), "cannot create /proc/n2nkit-hostile")


def test_a_name_near_the_limit_is_written(tmp_path: Path) -> None:
    """The temporary file beside a 243-byte name took 14 bytes more than a name may hold."""
    name = "日" * 80 + ".png"  # 244 bytes
    source = _photo(tmp_path / "in" / name)
    result = runner.invoke(app, ["denoise", str(source.parent), "--out", str(tmp_path / "out"),
                                 "--backend", "ort-cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == [name]


def test_a_folder_is_not_written_into_a_folder_named_like_a_file(tmp_path: Path) -> None:
    """`n2nkit denoise photos out.png` made a folder called out.png."""
    source = _photo(tmp_path / "photos" / "a.png")
    result = _denoise(source.parent, tmp_path / "out.png")
    assert result.exit_code == 2 and "names a file" in result.output, result.output
    assert not (tmp_path / "out.png").exists()


def test_a_dangling_link_at_the_output_counts_as_an_existing_file(tmp_path: Path) -> None:
    """It said the file 'appeared while n2nkit was writing it (another process?)'."""
    source = _photo(tmp_path / "in.png")
    link = tmp_path / "out.png"
    link.symlink_to(tmp_path / "nowhere" / "x.png")
    _refused(source, link, "already exist", "--overwrite")
    assert link.is_symlink()


def test_hidden_files_and_a_killed_run_s_leftovers_are_not_read_as_images(tmp_path: Path) -> None:
    """A run killed while writing left '.a.png.XXXXXXXX.png' beside its output, and macOS
    leaves '._a.png' resource forks: a later run over the folder failed on each."""
    folder = tmp_path / "photos"
    _photo(folder / "a.png")
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (folder / ".a.png.k3jd8s0q.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = runner.invoke(app, ["denoise", str(folder), "--out", str(tmp_path / "out"),
                                 "--backend", "ort-cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]


def test_a_killed_write_leaves_no_image_named_file(tmp_path: Path) -> None:
    """The temporary file of an image write ends in .tmp, so what a SIGKILL leaves behind is
    never taken for an image (here: the write killed from inside the encoder)."""
    script = (
        "import os, signal, numpy as np\n"
        "from PIL import Image\n"
        "from n2nkit.runtime.images import write_image\n"
        "real = Image.Image.save\n"
        "def save(self, fp, *a, **k):\n"
        "    fp.write(b'\\x89PNG partial'); fp.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        "Image.Image.save = save\n"
        f"write_image({str(tmp_path / 'out.png')!r}, np.zeros((8, 8, 3), np.uint8))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".out.png.") and left[0].endswith(".tmp")


def _low_bit_grey_png(path: Path, bits: int, key: int, values: np.ndarray) -> Path:
    """A grey PNG of ``bits`` per pixel with a tRNS colour key, written byte by byte (Pillow
    writes no 2- or 4-bit grey): what PNG optimisers make of small icons."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    height, width = values.shape
    rows = b"".join(b"\x00" + np.packbits(np.unpackbits(
        row.astype(np.uint8)[:, None], axis=1)[:, 8 - bits:].ravel()).tobytes() for row in values
    )  # fmt: skip
    header = struct.pack(">IIBBBBB", width, height, bits, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"tRNS", struct.pack(">H", key)) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))  # fmt: skip
    return path


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_a_low_bit_grey_colour_key_becomes_alpha_where_it_matched(tmp_path: Path, bits) -> None:
    """A 2- or 4-bit grey PNG's key was compared with the decoded 0-255 values, so nothing
    matched and the output was opaque everywhere, under a note saying it kept the key."""
    top = 2**bits - 1
    values = np.arange(16 * 24).reshape(16, 24) % (top + 1)
    source = _low_bit_grey_png(tmp_path / "icon.png", bits, top, values)
    result = _denoise(source, tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    alpha = read_image(tmp_path / "out.png").pixels[..., 1]
    np.testing.assert_array_equal(alpha == 0, values == top)
