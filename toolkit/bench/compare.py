"""``n2nkit compare``: how much quality and speed each model keeps on each deployment target.

For every model × target, a fresh worker process (:mod:`n2nkit.bench.compare_worker`) loads the
target's artifact through the runtime, denoises the test images (PSNR), and times the target's
input sizes (latency percentiles, megapixels/s, peak memory). Targets whose backend or artifact
is missing stay in the report as skipped, with the reason. Classical baselines run in this
process for context.

The PyTorch rows (:mod:`.torch_target`) need the training checkpoint: a model given as a run
folder (``best.pt``, else ``last.pt``) or a ``.pt`` file has it, and a folder holding both a
checkpoint and an export (``n2nkit export runs/n2n --out runs/n2n``) gets every row. When the
PyTorch CPU FP32 row is measured it is the PSNR reference of its model's other rows; otherwise
the FP32 ONNX on the CPU is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from n2nkit.bench.report import Report, Row
from n2nkit.bench.targets import CHECKPOINT, REFERENCE_SIZE, Target
from n2nkit.errors import UserInputError

NOISE_PROTOCOLS = {
    False: "noise drawn once with a fixed seed and left unclipped in float (every method gets "
    "the same array; the runtime clips it to [0, 1] before the network): the older protocol "
    "(--float-noise)",
    True: "8-bit protocol: noise drawn once with a fixed seed, then clipped to [0, 1] and "
    "rounded to 8 bits as a saved photo would be, which is what `n2nkit denoise` receives",
}


@dataclass
class ModelEntry:
    """A model to compare and the artifacts found for it, by kind (fp32, int8, trt-fp16, ...)."""

    label: str
    variant: str
    artifacts: dict[str, Path] = field(default_factory=dict)
    checkpoint: Path | None = None  # the PyTorch rows' network (best.pt / last.pt)


def _artifact_kind(path: Path) -> tuple[str, str] | None:
    """(kind, variant) of an artifact file from its n2nkit metadata, read the way the runtime
    reads it (engine sidecar, onnxruntime backend); None if it is not one of ours."""
    from n2nkit.errors import N2NError
    from n2nkit.runtime.artifacts import format_of, kind_key, read_sidecar
    from n2nkit.runtime.metadata import ModelMetadata

    fmt = format_of(path)
    if fmt is None:
        return None
    try:
        if fmt == "tensorrt":
            props = read_sidecar(path)["metadata"]
            meta = ModelMetadata.from_props(props, source=path.name)
        else:
            from n2nkit.runtime.ort_backend import OrtBackend

            with OrtBackend(path, device="cpu") as backend:
                meta = backend.metadata
    except N2NError:
        return None
    return kind_key(fmt, meta.precision), meta.variant


def _check_artifact_names(artifacts: dict[str, Path]) -> tuple[str, str] | None:
    """Every artifact's metadata must say what its file name does (a copied FP32 model named
    ``model.int8.onnx`` was measured as the INT8 row); (kind, variant) of the first. A file
    without readable metadata passes here and fails its own row."""
    first = None
    for kind, file in artifacts.items():
        found = _artifact_kind(file)
        if found is not None and found[0] != kind:
            raise UserInputError(
                f"{file} holds a {found[0]} model but its name says {kind}: re-export the "
                "folder (n2nkit export) rather than copying models into it"
            )
        first = first or found
    return first


def _check_same_weights(folder: Path, checkpoint: Path) -> None:
    """A folder holding a checkpoint and artifacts must hold artifacts *of* that checkpoint
    (export.json's fingerprint): after more training into it, the ONNX rows would be an older
    network's, and their Δ against PyTorch would measure training, not the export."""
    from n2nkit.export.pipeline import fingerprint
    from n2nkit.runtime.artifacts import read_manifest
    from n2nkit.training.checkpoint import build_model, load_checkpoint

    manifest = read_manifest(folder)
    if manifest is None:  # an export from before manifests: nothing to compare with
        return
    if manifest.get("fingerprint") != fingerprint(build_model(load_checkpoint(checkpoint))):
        raise UserInputError(
            f"{folder}: its artifacts were exported from other weights than its "
            f"{checkpoint.name} (trained further since?): re-export with `n2nkit export "
            f"{folder} --out {folder} --overwrite`"
        )


def _checkpoint_variant(path: Path) -> str:
    from n2nkit.training.checkpoint import load_checkpoint

    return str(load_checkpoint(path)["model"]["variant"])


def resolve_model(spec: str) -> ModelEntry:
    """An export folder, a run folder or ``.pt`` checkpoint (the PyTorch rows), a folder holding
    both, a single .onnx file, or the name of a shipped model (``n2n``)."""
    from n2nkit.runtime.artifacts import scan
    from n2nkit.training.checkpoint import BEST_NAME, LAST_NAME

    path = Path(spec)
    if path.is_dir():
        entry = ModelEntry(label=path.name, variant="", artifacts=scan(path))
        checkpoints = [path / n for n in (BEST_NAME, LAST_NAME) if (path / n).is_file()]
        entry.checkpoint = checkpoints[0] if checkpoints else None
        if not entry.artifacts and entry.checkpoint is None:
            raise UserInputError(
                f"{path} holds no n2nkit artifacts and no checkpoint (run `n2nkit export` or "
                "`n2nkit train` first)"
            )
        if entry.artifacts:
            found = _check_artifact_names(entry.artifacts)
            entry.variant = found[1] if found else ""
            if entry.checkpoint is not None:
                _check_same_weights(path, entry.checkpoint)
        else:
            entry.variant = _checkpoint_variant(entry.checkpoint)
        return entry
    if path.is_file() and path.suffix == ".pt":
        return ModelEntry(label=path.stem, variant=_checkpoint_variant(path), checkpoint=path)
    if path.is_file():
        found = _artifact_kind(path)
        if not found:
            raise UserInputError(f"{path} is not an n2nkit model (no n2nkit metadata)")
        return ModelEntry(label=path.stem, variant=found[1], artifacts={found[0]: path})
    from n2nkit.runtime.shipped import shipped_model_names, shipped_model_path

    if spec in shipped_model_names():
        file = shipped_model_path(spec)
        return ModelEntry(label=f"shipped-{spec}", variant=spec, artifacts={"fp32": file})
    raise UserInputError(
        f"{spec} is neither an export folder, a model file, nor a shipped model "
        f"({', '.join(shipped_model_names())})"
    )


def distinguish_labels(entries: list[ModelEntry], specs: list[str], taken: list[str]) -> None:
    """Give every model a label of its own, in place: rows, Δ against the model's FP32 and the
    findings are matched by label, so two folders both named ``n2n`` (``runs/a/n2n`` and
    ``runs/b/n2n``, before and after a change) would mix their figures. A colliding label
    grows by parent folders (``a/n2n``) until it is unique; the same model named twice is
    refused. ``taken``: labels already in use (the classical baselines)."""
    seen: dict[Path, str] = {}
    for entry, spec in zip(entries, specs, strict=True):
        path = Path(spec).resolve() if entry.label != f"shipped-{spec}" else Path(spec)
        if path in seen:
            raise UserInputError(f"{spec} is named twice (as {seen[path]}): name each model once")
        seen[path] = spec
    paths = list(seen)
    depth = [1] * len(entries)
    while True:
        labels = [e.label if d == 1 else "/".join([*p.parts[-d:-1], e.label])
                  for e, p, d in zip(entries, paths, depth, strict=True)]  # fmt: skip
        clashes = [i for i, label in enumerate(labels)
                   if labels.count(label) > 1 or label in taken]  # fmt: skip
        if not clashes or all(depth[i] >= len(paths[i].parts) for i in clashes):
            break
        for i in clashes:
            depth[i] += 1
    for entry, label in zip(entries, labels, strict=True):
        entry.label = label


def _missing_artifact_reason(kind: str) -> str:
    from n2nkit.bench.targets import CHECKPOINT

    if kind == CHECKPOINT:
        return (
            "no checkpoint: the PyTorch rows need the run folder or its best.pt as the model "
            "(or a folder holding the export and the checkpoint)"
        )
    if kind.startswith("trt-"):
        return (
            f"no {kind} engine (`n2nkit export --trt` needs TensorRT and an NVIDIA GPU: "
            "pip install 'n2nkit[gpu]')"
        )
    flag = {"int8": "--int8", "fp16": "--fp16", "ort": "--ort"}.get(kind, "")
    return f"no {kind} artifact (export it with `n2nkit export {flag}`)".replace(" )", ")")


def prepare_test_data(
    noises: list[str], out: Path, seed: int = 0, clip: bool = False
) -> tuple[list[str], Path]:
    """Clean built-in test images and their noisy versions, saved for the workers.

    Each (photo, noise) pair draws from a generator of its own, seeded from ``seed``, the
    photo's place and the noise spec: a level's figures do not depend on which other levels
    the same call measures, or in what order.
    """
    import zlib

    import torch

    from n2nkit.training.data import BUILTIN_SPLITS, load_builtin_images
    from n2nkit.training.noise import add_noise

    images = load_builtin_images("test")
    arrays: dict[str, np.ndarray] = {}
    for i, image in enumerate(images):
        clean = image.astype(np.float32) / 255.0
        arrays[f"clean_{i}"] = clean
        for n_index, noise in enumerate(noises):
            key = zlib.crc32(f"{seed}/{i}/{noise}".encode())
            generator = torch.Generator().manual_seed(key)
            x = torch.from_numpy(clean).permute(2, 0, 1)[None]
            noisy = add_noise(x, noise, generator=generator, clip=clip)
            arrays[f"noisy_{n_index}_{i}"] = noisy[0].permute(1, 2, 0).numpy().astype(np.float32)
    np.savez(out, **arrays)
    return list(BUILTIN_SPLITS["test"]), out


def run_worker(job: dict, timeout_s: float = 1800) -> dict:
    """Run one measurement in a fresh process; its failures become a failed row."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
        job_path = f.name
    env = {**os.environ, "OMP_NUM_THREADS": str(job["threads"] or os.cpu_count() or 1)}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "n2nkit.bench.compare_worker", job_path],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"status": "failed", "reason": f"timed out after {timeout_s:.0f} s"}
    finally:
        Path(job_path).unlink(missing_ok=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "failed", "reason": f"worker exited {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def measure_baselines(noises: list[str], data: Path, names: list[str]) -> list[Row]:
    from n2nkit.bench.baselines import BASELINES, sigma_of
    from n2nkit.bench.timing import summarize
    from n2nkit.psnr import psnr

    rows = []
    arrays = np.load(data)
    count = sum(1 for k in arrays.files if k.startswith("clean_"))
    for baseline in BASELINES:
        if baseline.name not in names:
            continue
        row = Row(model=baseline.name, target="cpu-python", group="baseline", status="measured",
                  backend=baseline.description)  # fmt: skip
        reason = baseline.available()
        usable = [(i, n) for i, n in enumerate(noises) if sigma_of(n) is not None]
        if reason is None and not usable:
            reason = "needs a fixed gaussian noise level (e.g. gaussian:25) to be told σ"
        if reason:
            row.status, row.reason = "skipped", reason
            rows.append(row)
            continue
        times: list[float] = []
        pixels = 0
        for n_index, noise in usable:
            values = []
            for i in range(count):
                clean, noisy = arrays[f"clean_{i}"], arrays[f"noisy_{n_index}_{i}"]
                t0 = time.perf_counter()
                out = baseline.run(noisy, sigma_of(noise))
                times.append((time.perf_counter() - t0) * 1e3)
                pixels += clean.shape[0] * clean.shape[1]
                values.append(psnr(clean, np.clip(out, 0, 1)))
            row.psnr[noise] = float(np.mean(values))
        stats = summarize(times)
        mpx_per_s = pixels / len(times) / 1e6 / (stats.p50_ms / 1e3)
        row.latency["per-image"] = {**stats.as_dict(), "mpx_per_s": mpx_per_s}
        rows.append(row)
    return rows


def noise_levels(noises: list[str]) -> list[str]:
    """The levels to measure, checked now with the noise module's message, each once however
    it is written (GAUSSIAN:25 and gaussian:25 are one column, with one noise draw)."""
    from n2nkit.training.noise import parse_noise

    if not noises:
        raise UserInputError("name at least one noise level, e.g. --noise gaussian:25")
    return list(dict.fromkeys(str(parse_noise(noise)) for noise in noises))


def compare(
    models: list[str],
    targets: list[Target],
    noises: list[str],
    *,
    budget_s: float = 3.0,
    min_runs: int = 3,
    warmup: int = 2,
    baselines: list[str] | None = None,
    seed: int = 0,
    clip_noise: bool = True,
    torch_compile: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> Report:
    """Measure every model on every target; return the report (nothing written yet)."""
    from n2nkit.sysinfo import machine_summary

    if not models:
        raise UserInputError("name at least one model: an export folder, a .onnx file or n2n")
    noises = noise_levels(noises)
    entries = [resolve_model(m) for m in models]
    distinguish_labels(entries, models, taken=baselines or [])
    step = on_step or (lambda _msg: None)

    with tempfile.TemporaryDirectory(prefix="n2nkit-compare-") as tmp:
        step("preparing test images")
        image_names, data = prepare_test_data(noises, Path(tmp) / "test.npz", seed, clip_noise)
        rows: list[Row] = []
        for entry in entries:
            for target in targets:
                step(f"{entry.label} on {target.name}")
                row = Row(model=entry.label, target=target.name, group=target.group,
                          status="skipped", variant=entry.variant, artifact=target.artifact,
                          backend=target.backend, threads=target.threads)  # fmt: skip
                artifact = (
                    entry.checkpoint
                    if target.artifact == CHECKPOINT
                    else entry.artifacts.get(target.artifact)
                )
                if artifact is None:
                    row.reason = _missing_artifact_reason(target.artifact)
                    rows.append(row)
                    continue
                row.size_mb = artifact.stat().st_size / 1e6
                result = run_worker(
                    {
                        "artifact": str(artifact),
                        "backend": target.backend,
                        "threads": target.threads,
                        "sizes": [list(s) for s in target.sizes],
                        "data": str(data),
                        "noises": noises,
                        "budget_s": budget_s,
                        "min_runs": min_runs,
                        "warmup": warmup,
                        "precision": target.precision,
                        "compile": torch_compile,
                    }
                )
                row.status = result["status"]
                row.reason = result.get("reason", "")
                row.psnr = result.get("psnr", {})
                row.latency = result.get("latency", {})
                row.peak_rss_mb = result.get("peak_rss_mb")
                rows.append(row)
        _fill_psnr_deltas(rows)
        if baselines:
            step("classical baselines")
            rows += measure_baselines(noises, data, baselines)

    report = Report(
        machine=machine_summary(),
        protocol={
            "images": image_names,
            "noise": noises,
            "noise_protocol": NOISE_PROTOCOLS[clip_noise],
            "clip_noise": clip_noise,
            "seed": seed,
            "latency_budget_s_per_size": budget_s,
            "min_runs": min_runs,
            "warmup_runs": warmup,
            "reference_size": list(REFERENCE_SIZE),
        },
        rows=rows,
    )
    from n2nkit.bench.findings import findings

    report.findings = findings(report, entries)
    return report


def _fill_psnr_deltas(rows: list[Row]) -> None:
    """Δ PSNR of each row against the same model's PyTorch FP32 on the CPU (the network as
    trained), or its FP32 ONNX on the CPU where there is no checkpoint."""
    reference: dict[str, dict[str, float]] = {}
    for row in rows:
        if row.status == "measured" and row.backend == "torch-cpu" and row.psnr:
            reference.setdefault(row.model, row.psnr)
    for row in rows:
        if row.status == "measured" and row.artifact == "fp32" and row.backend == "ort-cpu":
            reference.setdefault(row.model, row.psnr)
    for row in rows:
        ref = reference.get(row.model)
        if row.status == "measured" and ref:
            row.psnr_delta = {n: v - ref[n] for n, v in row.psnr.items() if n in ref}
