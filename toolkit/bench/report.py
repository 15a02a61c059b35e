"""Write a comparison: report.json (everything), report.csv (one row per measurement),
report.md (tables, machine and findings) and a PSNR-vs-latency plot."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from n2nkit.bench.targets import REFERENCE_SIZE
from n2nkit.fileio import atomic_write, atomic_write_text


@dataclass
class Row:
    """One model (or baseline) on one target."""

    model: str
    target: str
    group: str
    status: str  # measured | skipped | failed
    reason: str = ""
    variant: str = ""
    artifact: str = ""
    backend: str = ""
    threads: int | None = None
    size_mb: float | None = None
    psnr: dict[str, float] = field(default_factory=dict)  # noise spec -> mean dB
    psnr_delta: dict[str, float] = field(default_factory=dict)  # vs the model's FP32 ONNX
    latency: dict[str, dict[str, float]] = field(default_factory=dict)  # "HxWxN" -> stats
    peak_rss_mb: float | None = None


@dataclass
class Report:
    machine: dict[str, Any]
    protocol: dict[str, Any]
    rows: list[Row]
    findings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "protocol": self.protocol,
            "rows": [asdict(r) for r in self.rows],
            "findings": self.findings,
        }


def size_key(h: int, w: int, n: int) -> str:
    return f"{h}x{w}x{n}"


def _fmt(value: float | None, spec: str = ".2f", missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def write_json(report: Report, path: Path) -> None:
    atomic_write_text(path, json.dumps(report.to_dict(), indent=2) + "\n")


def write_csv(report: Report, path: Path) -> None:
    """Flat: one line per model × target × input size (and one per skipped row)."""
    columns = [
        "model", "variant", "target", "group", "status", "reason", "artifact", "backend",
        "threads", "size_mb", "peak_rss_mb", "noise", "psnr_db", "psnr_delta_db", "input",
        "p50_ms", "p90_ms", "p99_ms", "runs", "mpx_per_s",
    ]  # fmt: skip
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    for row in report.rows:
        base = {k: getattr(row, k) for k in columns if hasattr(row, k)}
        noises = list(row.psnr) or [""]
        sizes = list(row.latency) or [""]
        for noise in noises:
            for size in sizes:
                stats = row.latency.get(size, {})
                writer.writerow(
                    {
                        **base,
                        "noise": noise,
                        "psnr_db": row.psnr.get(noise),
                        "psnr_delta_db": row.psnr_delta.get(noise),
                        "input": size,
                        **{k: stats.get(k) for k in ("p50_ms", "p90_ms", "p99_ms", "runs")},
                        "mpx_per_s": stats.get("mpx_per_s"),
                    }
                )
    atomic_write_text(path, buf.getvalue())


def markdown(report: Report) -> str:
    m = report.machine
    noises = report.protocol.get("noise", [])
    sizes: list[str] = []
    for row in report.rows:
        sizes += [s for s in row.latency if s not in sizes]
    lines = [
        "# n2nkit compare",
        "",
        f"Machine: {m.get('cpu')} ({m.get('cores')} cores"
        f"{', ' + '/'.join(m.get('cpu_features', [])) if m.get('cpu_features') else ''}), "
        f"GPU: {m.get('gpu') or 'none'}; {m.get('os')}, Python {m.get('python')}.",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items()) + ".",
        "",
        f"PSNR: mean over the test images ({', '.join(report.protocol.get('images', []))}), "
        f"noise {', '.join(noises)} ({report.protocol.get('noise_protocol', '')}). "
        "Δ is against the same model's FP32 ONNX. Latency: p50 / p90 / p99 in ms per call "
        "after warm-up (runs in brackets), through the runtime's Denoiser (padding and tiling "
        "included).",
        "",
    ]
    header = ["model", "target", "status"]
    header += [f"PSNR {n}" for n in noises] + [f"Δ {n}" for n in noises]
    header += [f"{s} ms" for s in sizes] + ["MP/s @ " + size_key(*REFERENCE_SIZE)]
    header += ["size MB", "peak RSS MB"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    ref = size_key(*REFERENCE_SIZE)
    for r in report.rows:
        status = "measured" if r.status == "measured" else f"{r.status}: {r.reason}"
        cells = [r.model, r.target, status]
        cells += [_fmt(r.psnr.get(n)) for n in noises]
        cells += [_fmt(r.psnr_delta.get(n), "+.2f") for n in noises]
        for s in sizes:
            st = r.latency.get(s)
            cells.append(
                f"{st['p50_ms']:.1f} / {st['p90_ms']:.1f} / {st['p99_ms']:.1f} ({st['runs']})"
                if st
                else "–"
            )
        cells.append(_fmt(r.latency.get(ref, {}).get("mpx_per_s")))
        cells += [_fmt(r.size_mb), _fmt(r.peak_rss_mb, ".0f")]
        lines.append("| " + " | ".join(cells) + " |")
    if report.findings:
        lines += ["", "## Findings", ""] + [f"- {f}" for f in report.findings]
    return "\n".join(lines) + "\n"


def write_markdown(report: Report, path: Path) -> None:
    atomic_write_text(path, markdown(report))


def write_plot(report: Report, path: Path) -> bool:
    """PSNR (first noise level) against p50 latency at the reference size, one point per
    model × target; baselines at their own per-image latency. False if matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    noises = report.protocol.get("noise", [])
    if not noises:
        return False
    noise, ref = noises[0], size_key(*REFERENCE_SIZE)
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    for r in report.rows:
        if r.status != "measured" or noise not in r.psnr:
            continue
        stats = r.latency.get(ref) or r.latency.get("per-image")
        if not stats:
            continue
        marker = "s" if r.group == "baseline" else ("^" if r.group == "mobile-like" else "o")
        ax.scatter(stats["p50_ms"], r.psnr[noise], marker=marker)
        ax.annotate(f"{r.model}\n{r.target}", (stats["p50_ms"], r.psnr[noise]), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel(f"p50 latency, ms (models: {ref.replace('x1', '')} frame; baselines: per image)")
    ax.set_ylabel(f"PSNR, dB ({noise})")
    ax.set_title("n2nkit compare: quality vs speed per model × target")
    ax.grid(True, which="both", alpha=0.3)
    try:
        save = lambda f: fig.savefig(f, format="png", bbox_inches="tight")  # noqa: E731
        atomic_write(path, save, suffix=".png")
    finally:
        plt.close(fig)
    return True


def write_all(report: Report, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "report.json",
        "csv": out_dir / "report.csv",
        "md": out_dir / "report.md",
        "plot": out_dir / "psnr_vs_latency.png",
    }
    write_json(report, paths["json"])
    write_csv(report, paths["csv"])
    write_markdown(report, paths["md"])
    if not write_plot(report, paths["plot"]):
        paths.pop("plot")
    return paths
