"""Write a comparison: report.json (everything), report.csv (one row per measurement),
report.md (a compact table, findings, the per-size detail folded) and a PSNR-vs-throughput plot."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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


def _fmt(value: float | None, spec: str = ".2f", missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def write_json(report: Report, path: Path) -> None:
    atomic_write_text(path, json.dumps(report.to_dict(), indent=2) + "\n")


def read_json(path: Path) -> Report:
    """The report ``write_json`` wrote, to render it again (table, plot) without measuring."""
    data = json.loads(path.read_text())
    rows = [Row(**r) for r in data["rows"]]
    return Report(data["machine"], data["protocol"], rows, data.get("findings", []))


def write_csv(report: Report, path: Path) -> None:
    """Flat: one line per model × target × input size (and one per skipped row)."""
    columns = [
        "model", "variant", "target", "group", "status", "reason", "artifact", "backend",
        "threads", "size_mb", "peak_rss_mb", "noise", "psnr_db", "psnr_delta_db", "input",
        "p50_ms", "p90_ms", "p99_ms", "runs", "mpx_per_s", "ms_per_mp",
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
                        "ms_per_mp": 1000.0 / stats["mpx_per_s"]
                        if stats.get("mpx_per_s")
                        else None,
                    }
                )
    atomic_write_text(path, buf.getvalue())


# The headline throughput of every row, models and baselines alike: the test images that PSNR is
# measured on are the one workload every row runs (the per-size timings exist for models only,
# and a baseline at 1080×1920 would take minutes), so one unit compares like with like.
THROUGHPUT_WORKLOAD = "per-image"


def format_size(key: str) -> str:
    """``"720x1280x1"`` -> ``"720×1280"``, ``"32x32x400"`` -> ``"400 × 32×32"``."""
    if key == THROUGHPUT_WORKLOAD:
        return "test images"
    h, w, n = key.split("x")
    return f"{h}×{w}" if n == "1" else f"{n} × {h}×{w}"


def throughput(row: Row) -> float | None:
    """Megapixels per second on the test images (p50), or None when not measured."""
    stats = row.latency.get(THROUGHPUT_WORKLOAD) if row.status == "measured" else None
    return stats.get("mpx_per_s") if stats else None


def to_ms_per_mp(mpx_per_s: float | None) -> float | None:
    """The same speed the other way round: milliseconds per megapixel."""
    return 1000.0 / mpx_per_s if mpx_per_s else None


def ms_per_mp(row: Row) -> float | None:
    return to_ms_per_mp(throughput(row))


def _num(value: float | None) -> str:
    """Three significant digits without exponents (ms/MP and MP/s span 0.01 to 10,000)."""
    if value is None:
        return "–"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"


LEGEND = (
    "PSNR and Δ in dB; Δ against the same model's FP32 ONNX on the CPU. ms/MP and MP/s: p50 "
    "over the test images, through the runtime's Denoiser (padding and tiling included); "
    "MP/s = 1000 / ms/MP. size: the artifact file."
)
STATUS_MARK = {"measured": "✅", "skipped": "⏭", "failed": "❌"}  # reasons: under the table


def compact_columns(noises: list[str]) -> list[str]:
    """The lead table's header, in report.md and in the terminal alike (:data:`LEGEND` says
    what the columns mean)."""
    return (
        ["model", "target", "status"]
        + [f"PSNR {n}" for n in noises]
        + [f"Δ {n}" for n in noises]
        + ["ms/MP", "MP/s", "size MB"]
    )


def compact_cells(row: Row, noises: list[str]) -> list[str]:
    return (
        [row.model, row.target, STATUS_MARK.get(row.status, row.status)]
        + [_fmt(row.psnr.get(n)) for n in noises]
        + [_fmt(row.psnr_delta.get(n), "+.2f") for n in noises]
        + [_num(ms_per_mp(row)), _num(throughput(row)), _fmt(row.size_mb)]
    )


def not_measured(report: Report) -> list[str]:
    """One line per skipped or failed row, with its reason (kept out of the table's cells)."""
    return [
        f"{r.model} on {r.target}: {r.status}, {r.reason or 'no reason given'}"
        for r in report.rows
        if r.status != "measured"
    ]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header)] + [line(r) for r in rows]


def _md_detail(report: Report) -> list[str]:
    """Latency per input size, one line per model × target × size, folded away."""
    rows = []
    for r in report.rows:
        for key, st in r.latency.items():
            rows.append(
                [r.model, r.target, format_size(key),
                 f"{st['p50_ms']:.1f} / {st['p90_ms']:.1f} / {st['p99_ms']:.1f}",
                 str(st.get("runs", "–")), _num(st.get("mpx_per_s")), _fmt(r.peak_rss_mb, ".0f")]
            )  # fmt: skip
    if not rows:
        return []
    header = ["model", "target", "input (H×W)", "p50 / p90 / p99 ms", "runs", "MP/s",
              "peak RSS (MB)"]  # fmt: skip
    return [
        "",
        "<details><summary>Latency per input size (also in report.csv and report.json)</summary>",
        "",
        *_md_table(header, rows),
        "",
        "</details>",
    ]


def markdown(report: Report) -> str:
    m = report.machine
    noises = report.protocol.get("noise", [])
    features = "/".join(m.get("cpu_features", []))
    lines = [
        "# n2nkit compare",
        "",
        f"Machine: {m.get('cpu')} ({m.get('cores')} cores{', ' + features if features else ''}), "
        f"GPU: {m.get('gpu') or 'none'}; {m.get('os')}, Python {m.get('python')}.",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items()) + ".",
        "",
        f"PSNR: mean over the test images ({', '.join(report.protocol.get('images', []))}), "
        f"noise {', '.join(noises)} ({report.protocol.get('noise_protocol', '')}). " + LEGEND,
        "",
    ]
    lines += _md_table(compact_columns(noises), [compact_cells(r, noises) for r in report.rows])
    missing = not_measured(report)
    if missing:
        lines += ["", "Not measured here:", ""] + [f"- {x}" for x in missing]
    if report.findings:
        lines += ["", "## Findings", ""] + [f"- {f}" for f in report.findings]
    lines += _md_detail(report)
    return "\n".join(lines) + "\n"


def write_markdown(report: Report, path: Path) -> None:
    atomic_write_text(path, markdown(report))


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """Which points no other point beats on both axes (higher is better on both)."""
    return [
        not any(
            (x2 >= x and y2 >= y) and (x2 > x or y2 > y) for j, (x2, y2) in enumerate(points)
            if j != i
        )
        for i, (x, y) in enumerate(points)
    ]  # fmt: skip


# Colour = target, marker = model: every point is one (colour, marker) pair, and the legend
# lists each target and each model once instead of every pair.
MODEL_MARKERS = ("o", "^", "D", "v", "P", "h", "<", ">")
BASELINE_MARKERS = ("s", "X", "*", "p")


def _styles(rows: list[Row]) -> tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]:
    """Scatter keywords per row, and the legend's (label, keywords) entries under headings."""
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r.model for r in rows if r.group != "baseline"))
    targets = list(dict.fromkeys(r.target for r in rows if r.group != "baseline"))
    baselines = list(dict.fromkeys(r.model for r in rows if r.group == "baseline"))
    colors = plt.get_cmap("tab10" if len(targets) <= 10 else "tab20")
    color = {t: colors(i % colors.N) for i, t in enumerate(targets)}
    marker = {m: MODEL_MARKERS[i % len(MODEL_MARKERS)] for i, m in enumerate(models)}
    marker |= {b: BASELINE_MARKERS[i % len(BASELINE_MARKERS)] for i, b in enumerate(baselines)}
    per_row = [
        {"marker": marker[r.model], "color": "0.15" if r.group == "baseline" else color[r.target]}
        for r in rows
    ]
    heading = {"marker": "", "color": "none"}
    legend = [("colour: target", heading)]
    legend += [(t, {"marker": "o", "color": color[t]}) for t in targets]
    legend += [("marker: model", heading)]
    legend += [(m, {"marker": marker[m], "color": "0.6"}) for m in models]
    if baselines:
        legend += [("classical baseline", heading)]
        legend += [(b, {"marker": marker[b], "color": "0.15"}) for b in baselines]
    return per_row, legend


def _plain_log_ticks(ax: Any, xs: list[float]) -> None:
    """At least a factor of 6 around the points, ticked 0.1, 0.2, 0.3, 0.5, 1 … in plain
    numbers (not 3×10⁻¹), so that a narrow range still shows labelled ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = min(xs), max(xs)
    half = max(math.log10(hi / lo) / 2 + 0.1, 0.4)  # decades each side of the middle
    mid = math.sqrt(lo * hi)
    ax.set_xlim(mid / 10**half, mid * 10**half)
    subs = (1.0, 2.0, 3.0, 5.0) if half < 1 else (1.0, 2.0, 5.0) if half < 2.5 else (1.0,)
    ax.xaxis.set_major_locator(LogLocator(subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def write_plot(report: Report, path: Path) -> bool:
    """PSNR (first noise level) against throughput on the test images, one point per
    model × target and per baseline, a legend, and the Pareto front. False if matplotlib is
    absent or nothing was measured."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    noises = report.protocol.get("noise", [])
    if not noises:
        return False
    noise = noises[0]
    rows = [r for r in report.rows if throughput(r) and noise in r.psnr]
    if not rows:
        return False
    points = [(throughput(r), r.psnr[noise]) for r in rows]
    from matplotlib.lines import Line2D

    per_row, legend = _styles(rows)
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=110)
    for (x, y), style in zip(points, per_row, strict=True):
        ax.scatter(x, y, s=60, zorder=3, edgecolors="black", linewidths=0.5, **style)
    front = sorted(p for p, on in zip(points, pareto_front(points), strict=True) if on)
    front_label = "Pareto front (nothing is both faster and better)"
    front_style = {"ls": "--", "marker": "o", "color": "0.3", "lw": 1.2, "ms": 15, "mfc": "none"}
    ax.plot([p[0] for p in front], [p[1] for p in front], zorder=2, **front_style)
    ax.margins(y=0.12)  # room for the Pareto rings at the top and bottom
    ax.set_xscale("log")
    _plain_log_ticks(ax, [x for x, _ in points])
    ax.set_xlabel("throughput on the test images, MP/s (p50, log scale; right is faster)")
    ax.set_ylabel(f"PSNR, dB (mean over the test images, {noise})")
    ax.set_title(f"n2nkit compare: quality vs speed at {noise}")
    ax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], ls="none", ms=8, mec="black", mew=0.5, **kw) for _, kw in legend]
    handles.append(Line2D([], [], **front_style))
    labels = [label for label, _ in legend] + [front_label]
    box = ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                    frameon=False)  # fmt: skip
    for text, (_, kw) in zip(box.get_texts(), legend, strict=False):
        text.set_fontweight("bold" if not kw["marker"] else "normal")  # the headings
    try:
        save = lambda f: fig.savefig(f, format="png", bbox_inches="tight")  # noqa: E731
        atomic_write(path, save, suffix=".png")
    finally:
        plt.close(fig)
    return True


# The files a report is (kind -> name): what `compare --overwrite` replaces and `pipeline
# --fresh` removes, nothing else in their folder.
REPORT_FILES = {
    "json": "report.json",
    "csv": "report.csv",
    "md": "report.md",
    "plot": "psnr_vs_latency.png",
}


def write_all(report: Report, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / name for kind, name in REPORT_FILES.items()}
    write_json(report, paths["json"])
    write_csv(report, paths["csv"])
    write_markdown(report, paths["md"])
    if not write_plot(report, paths["plot"]):
        paths.pop("plot").unlink(missing_ok=True)  # an earlier run's plot would not match
    return paths
