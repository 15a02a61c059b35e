"""Plain-language findings computed from a comparison's own numbers.

They answer the questions the toolkit exists for: what INT8 buys at the same thread count and
what it costs, whether the report's Truncated variant is really cheaper on a phone-like target,
whether Deeper is better at the same training budget, and how the models stand against the
classical baselines. Every sentence is derived from measured rows; nothing is hard-coded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from n2nkit.bench.compare import ModelEntry
    from n2nkit.bench.report import Report, Row


def _find(rows: list[Row], model: str, target: str) -> Row | None:
    for row in rows:
        if row.model == model and row.target == target and row.status == "measured":
            return row
    return None


def _p50(row: Row | None, size: str) -> float | None:
    if row is None or size not in row.latency:
        return None
    return row.latency[size]["p50_ms"]


def _int8_findings(report: Report, models: list[str], noise: str) -> list[str]:
    out = []
    for model in models:
        for threads in (1, 2):
            fp32 = _find(report.rows, model, f"mobile-fp32-{threads}t")
            int8 = _find(report.rows, model, f"mobile-int8-{threads}t")
            if not fp32 or not int8:
                continue
            speedups = {
                s: _p50(fp32, s) / _p50(int8, s)
                for s in fp32.latency
                if s != "per-image" and _p50(int8, s)
            }
            if not speedups:
                continue
            loss = int8.psnr_delta.get(noise)
            parts = ", ".join(f"{v:.2f}× at {s}" for s, v in speedups.items())
            verdict = (
                "meets" if min(speedups.values()) >= 1.6 and (loss is None or loss >= -0.2)
                else "misses"
            )  # fmt: skip
            loss_text = f"{loss:+.2f} dB" if loss is not None else "n/a"
            out.append(
                f"{model}: INT8 vs FP32 at {threads} thread(s): {parts}; PSNR change "
                f"{loss_text} at {noise}. It {verdict} the target (≥1.6× faster, ≤0.2 dB lost)."
            )
    return out


def _variant_of(entries: list[ModelEntry], variant: str) -> ModelEntry | None:
    return next((e for e in entries if e.variant == variant), None)


def _model_costs(variant: str) -> tuple[int, int] | None:
    try:
        from n2nkit.training.models import count_macs, count_parameters, create_model
    except ImportError:
        return None
    model = create_model(variant).eval()
    return count_parameters(model), count_macs(model, 32, 32)


def _truncated_findings(report: Report, entries: list[ModelEntry]) -> list[str]:
    full, small = _variant_of(entries, "n2n"), _variant_of(entries, "truncated")
    if not full or not small:
        return []
    costs_full, costs_small = _model_costs("n2n"), _model_costs("truncated")
    lines = []
    if costs_full and costs_small:
        lines.append(
            f"Truncated vs Noise2Noise: {costs_small[0] / costs_full[0]:.2f}× the parameters "
            f"but {costs_small[1] / costs_full[1]:.2f}× the multiply-accumulates per pixel: "
            "the work sits at full and half resolution, which the truncated network keeps."
        )
    for target in ("mobile-fp32-1t", "mobile-int8-1t", "mobile-fp32-2t", "mobile-int8-2t"):
        a, b = _find(report.rows, full.label, target), _find(report.rows, small.label, target)
        if not a or not b:
            continue
        ratios = ", ".join(
            f"{_p50(b, s) / _p50(a, s):.2f}× at {s}"
            for s in a.latency
            if s != "per-image" and _p50(b, s)
        )
        lines.append(f"Truncated/Noise2Noise latency on {target}: {ratios}.")
    return lines


def _deeper_findings(report: Report, entries: list[ModelEntry], noise: str) -> list[str]:
    base, deep = _variant_of(entries, "n2n"), _variant_of(entries, "deeper")
    if not base or not deep:
        return []
    a, b = _find(report.rows, base.label, "cpu-fp32"), _find(report.rows, deep.label, "cpu-fp32")
    if not a or not b or noise not in a.psnr or noise not in b.psnr:
        return []
    diff = b.psnr[noise] - a.psnr[noise]
    word = "better" if diff > 0.05 else ("worse" if diff < -0.05 else "no better")
    return [
        f"Deeper vs Noise2Noise ({deep.label} vs {base.label}, same training budget when both "
        f"come from one pipeline run): {b.psnr[noise]:.2f} vs {a.psnr[noise]:.2f} dB at "
        f"{noise} ({diff:+.2f} dB): Deeper is {word}."
    ]


def _fastest(rows: list[Row], model: str, noise: str) -> Row | None:
    """The model's quickest measured target per test image that loses at most 0.2 dB."""
    usable = [
        r
        for r in rows
        if r.model == model
        and r.status == "measured"
        and _p50(r, "per-image")
        and r.psnr_delta.get(noise, 0.0) >= -0.2
    ]
    return min(usable, key=lambda r: _p50(r, "per-image"), default=None)


def _baseline_findings(report: Report, models: list[str], noise: str) -> list[str]:
    lines = []
    baselines = {r.model: r for r in report.rows if r.group == "baseline" and noise in r.psnr}
    for model in models:
        row = _find(report.rows, model, "cpu-fp32")
        if not row or noise not in row.psnr:
            continue
        fastest = _fastest(report.rows, model, noise)
        for name, base in baselines.items():
            diff = row.psnr[noise] - base.psnr[noise]
            speed = ""
            model_ms, base_ms = _p50(row, "per-image"), _p50(base, "per-image")
            if model_ms and base_ms:
                ratio = base_ms / model_ms
                speed = f", {_faster(ratio)} per test image on this CPU (cpu-fp32)"
                if fastest is not None and fastest.target != row.target:
                    best = base_ms / _p50(fastest, "per-image")
                    delta = fastest.psnr_delta.get(noise, 0.0)
                    speed += f", {_faster(best)} on {fastest.target} ({delta:+.2f} dB)"
                    ratio = max(ratio, best)
                if name == "bm3d":  # the issues' target: at least 100× faster than BM3D
                    speed += f"; {'meets' if ratio >= 100 else 'misses'} the ≥100× target"
            lines.append(
                f"{model} vs {name} at {noise}: {row.psnr[noise]:.2f} vs "
                f"{base.psnr[noise]:.2f} dB ({diff:+.2f} dB){speed}."
            )
    return lines


def _times(ratio: float) -> str:
    return f"{ratio:.{0 if ratio >= 10 else 1}f}×"


def _faster(ratio: float) -> str:
    """``2.0`` -> "2.0× faster", ``0.5`` -> "2.0× slower" (never "0.5× faster")."""
    return f"{_times(ratio)} faster" if ratio >= 1 else f"{_times(1 / ratio)} slower"


def findings(report: Report, entries: list[ModelEntry]) -> list[str]:
    noises = report.protocol.get("noise", [])
    if not noises:
        return []
    noise = noises[0]
    models = [e.label for e in entries]
    skipped = sorted(
        {r.target for r in report.rows if r.status == "skipped" and r.group != "baseline"}
    )
    skipped_baselines = [
        r.model for r in report.rows if r.status == "skipped" and r.group == "baseline"
    ]
    lines = _int8_findings(report, models, noise)
    lines += _truncated_findings(report, entries)
    lines += _deeper_findings(report, entries, noise)
    lines += _baseline_findings(report, models, noise)
    if skipped:
        lines.append(f"Targets skipped here (reasons under the table): {', '.join(skipped)}.")
    if skipped_baselines:
        lines.append(f"Baselines skipped here: {', '.join(skipped_baselines)}.")
    return lines
