"""Running out of memory, for real: ``n2nkit denoise`` in a child process whose address space
is capped (RLIMIT_AS), so onnxruntime's and Pillow's allocations fail as they would on a small
board. Each failure is one line naming what to make smaller, a non-zero exit, no traceback and
no output; a batch goes on to the next image."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

LIMIT = 1000 << 20  # bytes of address space: enough to start, not for a 1536² tile


def _capped(*args: str) -> subprocess.CompletedProcess:
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))

    command = [sys.executable, "-m", "n2nkit", "denoise", *args, "--threads", "1"]
    return subprocess.run(command, capture_output=True, text=True, preexec_fn=cap, timeout=300)


def _photo(path: Path, side: int) -> Path:
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS caps allocations on Linux only")
def test_a_tile_too_big_for_memory_is_one_line_and_the_batch_goes_on(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    _photo(inputs / "a_big.png", 1536)
    _photo(inputs / "b_small.png", 64)
    result = _capped(str(inputs), "-o", str(tmp_path / "out"), "--tile", "1536")
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr and "[E:onnxruntime" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "out of memory running the model" in errors[0], result.stderr
    assert "smaller tile" in errors[0] and "1 of 2 image(s) could not be denoised" in errors[1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b_small.png"]


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS caps allocations on Linux only")
def test_an_image_too_big_to_decode_is_one_line(tmp_path: Path) -> None:
    """A 200-byte PNG whose header says 40,000² pixels, let through by a raised --max-pixels."""
    import io
    import zlib

    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    png = bytearray(buf.getvalue())
    header = (40_000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])  # 8-bit RGB
    png[16:29] = header
    png[29:33] = zlib.crc32(b"IHDR" + header).to_bytes(4, "big")
    (tmp_path / "bomb.png").write_bytes(bytes(png))
    result = _capped(str(tmp_path / "bomb.png"), str(tmp_path / "out.png"),
                     "--max-pixels", "2000000000")  # fmt: skip
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: out of memory decoding"), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out.png").exists()
