"""``n2nkit denoise`` on real files with the shipped model: formats and modes kept, several
files and folders, and every user mistake refused with one line and nothing written."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from n2nkit.cli import app
from n2nkit.runtime.images import read_image, write_image

runner = CliRunner()
ODD = (41, 67)  # H, W: not multiples of anything


def _noisy(shape: tuple[int, ...], dtype=np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    ramp = np.linspace(0.2, 0.8, shape[1])[None, :]
    clean = np.broadcast_to(ramp.reshape(1, -1, *([1] * (len(shape) - 2))), shape)
    return np.rint(np.clip(clean + rng.normal(0, 0.1, shape), 0, 1) * top).astype(dtype)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _invoke(*args: str):
    return runner.invoke(app, ["denoise", *args, "--backend", "ort-cpu"])


@pytest.mark.parametrize(
    ("name", "pixels"),
    [
        ("grey.png", _noisy(ODD)),
        ("rgba.png", np.concatenate([_noisy((*ODD, 3)), _noisy((*ODD, 1), seed=1)], axis=2)),
        ("rgb16.png", _noisy((*ODD, 3), np.uint16)),
        ("grey16.png", _noisy(ODD, np.uint16)),
        ("photo.jpg", _noisy((*ODD, 3))),
        ("photo.tif", _noisy((*ODD, 3))),
        ("photo.webp", _noisy((*ODD, 3))),
        ("photo.bmp", _noisy((*ODD, 3))),
    ],
)
def test_one_image_keeps_its_mode_depth_and_alpha(tmp_path: Path, name: str, pixels) -> None:
    source = tmp_path / name
    write_image(source, pixels)
    before = _digest(source)
    target = tmp_path / f"out{source.suffix}"
    result = _invoke(str(source), str(target))
    assert result.exit_code == 0, result.output
    out = read_image(target).pixels
    original = read_image(source).pixels
    assert out.shape == original.shape and out.dtype == original.dtype
    if out.ndim == 3 and out.shape[2] == 4:
        assert np.array_equal(out[..., 3], original[..., 3])  # alpha untouched
    assert _digest(source) == before  # the input is never touched
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, target.name])


def test_output_format_follows_the_extension(tmp_path: Path) -> None:
    write_image(tmp_path / "in.png", _noisy((*ODD, 3)))
    assert _invoke(str(tmp_path / "in.png"), str(tmp_path / "out.jpg")).exit_code == 0
    assert Image.open(tmp_path / "out.jpg").format == "JPEG"


def test_palette_image_is_denoised_as_rgb(tmp_path: Path) -> None:
    Image.fromarray(_noisy((*ODD, 3))).quantize(colors=32).save(tmp_path / "p.png")
    result = _invoke(str(tmp_path / "p.png"), str(tmp_path / "out.png"))
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out.png").mode == "RGB"


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.fromarray(_noisy((40, 64, 3)))
    exif = image.getexif()
    exif[0x0112] = 6  # stored sideways: viewers rotate it 90° clockwise
    image.save(tmp_path / "side.jpg", exif=exif.tobytes())
    assert _invoke(str(tmp_path / "side.jpg"), str(tmp_path / "up.png")).exit_code == 0
    assert Image.open(tmp_path / "up.png").size == (40, 64)  # W×H: upright


def test_a_folder_in_and_a_folder_out(tmp_path: Path) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    for i, suffix in enumerate((".png", ".jpg", ".webp")):
        write_image(src / f"img{i}{suffix}", _noisy((*ODD, 3), seed=i))
    (src / "notes.txt").write_text("not an image")
    result = _invoke(str(src), "--out", str(tmp_path / "clean"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "clean").iterdir()) == [
        "img0.png", "img1.jpg", "img2.webp"]  # fmt: skip
    result = _invoke(str(src / "img0.png"), str(src / "img1.jpg"), "--out",
                     str(tmp_path / "as_png"), "--format", "png")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "as_png").iterdir()) == ["img0.png", "img1.png"]


def test_a_bad_file_in_a_batch_is_reported_and_the_rest_go_on(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "good.png", _noisy((*ODD, 3)))
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = _invoke(str(src), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "broken.png" in result.output and "1 of 2 image(s)" in result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    write_image(tmp_path / "in.png", _noisy((*ODD, 3)))
    (tmp_path / "out.png").write_bytes(b"keep me")
    result = _invoke(str(tmp_path / "in.png"), str(tmp_path / "out.png"))
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (tmp_path / "out.png").read_bytes() == b"keep me"
    result = _invoke(str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--overwrite")
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "out.png").pixels.shape == (*ODD, 3)


def test_a_file_that_appears_at_the_output_while_writing_is_kept(tmp_path: Path) -> None:
    """The existence check runs before the work; another process may create the file while
    the image is denoised and encoded. Without --overwrite it is kept, not replaced."""
    from n2nkit.errors import UserInputError
    from n2nkit.fileio import atomic_write

    target = tmp_path / "out.png"

    def racing_writer(f) -> None:
        target.write_bytes(b"another process's file")  # appears mid-write
        f.write(b"ours")

    with pytest.raises(FileExistsError):
        atomic_write(target, racing_writer, replace=False)
    assert target.read_bytes() == b"another process's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temp file left
    with pytest.raises(UserInputError, match="appeared while n2nkit was writing it"):
        write_image(target, _noisy((*ODD, 3)), overwrite=False)
    assert target.read_bytes() == b"another process's file"
    write_image(target, _noisy((*ODD, 3)))  # the library's default replaces
    assert read_image(target).pixels.shape == (*ODD, 3)


def test_an_input_in_a_format_it_cannot_write_back_is_refused_up_front(tmp_path: Path) -> None:
    """A .jfif (JPEG) given by name was read and denoised, then refused at writing."""
    from PIL import Image

    Image.fromarray(_noisy((*ODD, 3))).save(tmp_path / "a.jfif", format="JPEG")
    write_image(tmp_path / "b.png", _noisy((*ODD, 3)))
    args = [str(tmp_path / "a.jfif"), str(tmp_path / "b.png"), "--out", str(tmp_path / "out")]
    result = _invoke(*args)
    assert result.exit_code == 2 and "reads .jfif but cannot write it" in result.output
    assert not (tmp_path / "out").exists()
    result = _invoke(*args, "--format", "png")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_a_batch_that_writes_nothing_leaves_no_output_folder(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (src / "broken2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken too")
    result = _invoke(str(src), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "2 of 2 image(s)" in result.output
    assert not (tmp_path / "out").exists()


def test_the_input_is_never_the_output(tmp_path: Path) -> None:
    write_image(tmp_path / "in.png", _noisy((*ODD, 3)))
    before = _digest(tmp_path / "in.png")
    for args in (["in.png", "in.png"], ["in.png", "./in.png", "--overwrite"]):
        result = _invoke(*(str(tmp_path / a) for a in args[:2]), *args[2:])
        assert result.exit_code == 2 and "is an input" in result.output
    result = _invoke(str(tmp_path), "--out", str(tmp_path), "--overwrite")
    assert result.exit_code == 2 and "is an input" in result.output
    assert _digest(tmp_path / "in.png") == before
    assert [p.name for p in tmp_path.iterdir()] == ["in.png"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "input not found"),
        ("empty", "empty (0 bytes)"),
        ("text", "not an image"),
        ("truncated", "not a readable image"),
        ("bomb", "over the limit"),
        ("bad-ext", "output format"),
        ("under-a-file", "it is a file"),
        ("one-arg", "name the output"),
    ],
)
def test_user_mistakes_are_one_line_and_write_nothing(tmp_path: Path, setup: str, message: str):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    extra: list[str] = []
    if setup == "empty":
        src.write_bytes(b"")
    elif setup == "text":
        src.write_text("hello")
    elif setup == "truncated":
        write_image(src, _noisy((64, 64, 3)))
        src.write_bytes(src.read_bytes()[:200])
    elif setup != "missing":
        write_image(src, _noisy((*ODD, 3)))
    if setup == "bomb":
        extra = ["--max-pixels", "100"]
    if setup == "bad-ext":
        out = tmp_path / "out.xyz"
    if setup == "under-a-file":
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "out.png"
    before = set(tmp_path.rglob("*"))
    args = [str(src)] if setup == "one-arg" else [str(src), str(out)]
    result = _invoke(*args, *extra)
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert set(tmp_path.rglob("*")) == before  # nothing written


def test_raising_the_pixel_limit_lets_a_large_image_through(tmp_path: Path) -> None:
    write_image(tmp_path / "in.png", _noisy((*ODD, 3)))
    args = [str(tmp_path / "in.png"), str(tmp_path / "out.png")]
    assert _invoke(*args, "--max-pixels", "100").exit_code == 2
    assert _invoke(*args, "--max-pixels", "5000").exit_code == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_unwritable_output_folder(tmp_path: Path) -> None:
    write_image(tmp_path / "in.png", _noisy((*ODD, 3)))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = _invoke(str(tmp_path / "in.png"), str(locked / "out.png"))
        assert result.exit_code == 2 and "permission denied" in result.output
    finally:
        locked.chmod(0o700)


def test_unknown_backend_and_model_are_refused(tmp_path: Path) -> None:
    write_image(tmp_path / "in.png", _noisy((*ODD, 3)))
    args = [str(tmp_path / "in.png"), str(tmp_path / "out.png")]
    result = runner.invoke(app, ["denoise", *args, "--backend", "npu"])
    assert result.exit_code == 2 and "unknown backend" in result.output
    result = _invoke(*args, "--model", "nonexistent")
    assert result.exit_code == 2 and "model not found" in result.output
    result = _invoke(*args, "--model", "/dev/null")  # there, but not a file
    assert result.exit_code == 2 and "/dev/null is not a model file" in result.output
    result = _invoke(*args, "--model", "")  # once read as the current folder
    assert result.exit_code == 2 and "the model is empty" in result.output
    assert not (tmp_path / "out.png").exists()


def test_denoise_command_never_imports_torch(tmp_path: Path) -> None:
    write_image(tmp_path / "in.png", _noisy((*ODD, 3)))
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch': raise ImportError('torch blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from n2nkit.cli import main\n"
        f"sys.argv = ['n2nkit', 'denoise', {str(tmp_path / 'in.png')!r}, "
        f"{str(tmp_path / 'out.png')!r}]\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.png").is_file()


def test_file_names_with_brackets_are_printed_as_they_are(tmp_path: Path) -> None:
    """Names were read as rich markup: 'photo [edited].png' printed as 'photo .png', and a
    folder path holding 'd[/red]x' ended in a MarkupError traceback after the file was written."""
    folder = tmp_path / "d[" / "red]x"  # the path reads d[/red]x: a closing tag
    folder.mkdir(parents=True)
    source = folder / "photo [edited].png"
    write_image(source, _noisy((*ODD, 3)))
    target = folder / "out [v2].png"
    result = _invoke(str(source), str(target))
    assert result.exit_code == 0, result.output
    assert f"{source} -> {target}" in result.output.replace("\n", "")
    assert read_image(target).pixels.shape == (*ODD, 3)
