"""benchmarks/gpu_check.py and benchmarks/table2.py are GPU-only: without CUDA each prints one
``skipped: no CUDA GPU`` line, exits 0 and writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", ["gpu_check.py", "table2.py"])
def test_gpu_scripts_skip_without_cuda(script: str, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the script would run for minutes")
    md, js = tmp_path / "out.md", tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--md", str(md), "--json", str(js)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skipped: no CUDA GPU"), proc.stdout
    assert not md.exists() and not js.exists()


def test_gpu_check_section_names_the_gpu() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_check import section

    result = {
        "machine": {"gpu": "NVIDIA H200", "gpu_memory_gib": 139.8, "compute_capability": "9.0",
                    "cuda": "12.8", "torch": "2.13.0", "cpu": "x"},
        "wall_s": 300.0,
        "steps": {
            "train": {"status": "passed", "result": {"bf16": {
                "status": "passed", "steps": 250, "val_psnr": 29.0, "val_psnr_noisy": 20.4,
                "images_per_s": 90000.0}}},
            "epoch": {"status": "measured", "result": {
                "precision": "bfloat16", "epoch_s": 0.8, "images_per_s": 62500.0,
                "meets_1s": True, "network_only_epoch_s": 0.6, "data_path_share": 0.25}},
        },
    }  # fmt: skip
    text = section(result)
    assert text.startswith("## GPU check") and "NVIDIA H200" in text
    assert "0.80 s, 62,500 images/s (target ≤ 1 s: met)" in text
