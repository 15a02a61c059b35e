"""Name the machine a number was measured on: CPU, cores, GPU, package versions.

Benchmarks and reports print this so a figure is never separated from its hardware. Nothing
here imports torch unless asked for the torch version, and a missing tool is simply "absent".
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from functools import lru_cache
from importlib import metadata


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (platform.processor() is often empty)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def max_threads() -> int:
    """The most CPU threads a run may ask for (4 per CPU): torch hangs or crashes setting
    thousands, and onnxruntime hangs when it cannot create them."""
    return 4 * (os.cpu_count() or 1)


def check_threads(threads: object) -> None:
    """None (all cores) or a whole number from 1 to :func:`max_threads`, for training and the
    runtime alike: onnxruntime hangs when it cannot create thousands, and a pybind TypeError is
    all it says to a float or a string."""
    import numbers

    from n2nkit.errors import UserInputError

    if threads is None:
        return
    most = max_threads()
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise UserInputError(f"threads must be a whole number, got {threads!r}")
    if not 1 <= threads <= most:
        raise UserInputError(f"threads must be from 1 to {most} (4 per CPU here), got {threads}")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def gpu_name() -> str | None:
    """First NVIDIA GPU's name via nvidia-smi, or None (no torch import needed)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0] if out else None


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


REPORTED_PACKAGES = (
    "n2nkit",
    "numpy",
    "torch",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "tensorrt",
    "scikit-image",
    "bm3d",
)


def machine_summary() -> dict[str, object]:
    """A JSON-friendly description of this machine and the packages that shape the numbers."""
    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "cpu_features": sorted(
            f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags
        ),
        "gpu": gpu_name(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": {p: v for p in REPORTED_PACKAGES if (v := package_version(p))},
    }


def machine_line() -> str:
    """One line for benchmark headers: 'AMD EPYC (2 cores, avx512_vnni), no GPU'."""
    info = machine_summary()
    ranked = ("avx512_vnni", "avx512f", "avx_vnni", "avx2")  # most capable first
    features = next((f for f in ranked if f in info["cpu_features"]), "")
    gpu = info["gpu"] or "no GPU"
    return f"{info['cpu']} ({info['cores']} cores{', ' + features if features else ''}), {gpu}"
