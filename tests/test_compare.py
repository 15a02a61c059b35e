"""``n2nkit compare`` on a small trained model: every file written, CPU rows measured, GPU rows
skipped with a reason, baselines in the same table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from n2nkit.bench.targets import TARGETS, select_targets
from n2nkit.cli import app
from n2nkit.errors import UnknownNameError

runner = CliRunner()


def test_targets_cover_the_three_groups() -> None:
    groups = {t.group for t in TARGETS}
    assert groups == {"desktop-gpu", "desktop-cpu", "mobile-like"}
    mobile = select_targets(["mobile-like"])
    assert {t.artifact for t in mobile} >= {"int8", "fp16", "ort"}
    assert {t.threads for t in mobile} == {1, 2}
    assert any((32, 32, 400) in t.sizes for t in mobile)  # the report's own workload


def test_unknown_target_lists_the_choices() -> None:
    with pytest.raises(UnknownNameError, match="mobile-like"):
        select_targets(["phone"])


def test_compare_cli_rejects_bad_input(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compare", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "neither an export folder" in result.output
    result = runner.invoke(app, ["compare", "n2n", "--target", "phone"])
    assert result.exit_code == 2 and "unknown target" in result.output
    for budget in ("nan", "inf", "-1"):
        result = runner.invoke(app, ["compare", "n2n", "--budget", budget, "--out", str(tmp_path)])
        assert result.exit_code == 2 and "--budget must be a number >= 0" in result.output


@pytest.fixture(scope="module")
def report_dir(exported_n2n: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    args = ["compare", str(exported_n2n), "--out", str(out), "--noise", "gaussian:25"]
    for target in (
        "cpu-fp32",
        "mobile-int8-1t",
        "mobile-fp32-1t",
        "gpu-trt-fp16",
        "gpu-trt-int8",
        "gpu-ort-cuda",
    ):
        args += ["--target", target]
    args += ["--baseline", "nlm", "--budget", "0", "--min-runs", "1", "--warmup", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_compare_writes_every_file(report_dir: Path) -> None:
    for name in ("report.json", "report.csv", "report.md", "psnr_vs_latency.png"):
        assert (report_dir / name).stat().st_size > 0, name
    assert (report_dir / "psnr_vs_latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cpu_rows_are_measured_and_gpu_rows_skipped_with_reason(report_dir: Path) -> None:
    report = json.loads((report_dir / "report.json").read_text())
    rows = {(r["model"], r["target"]): r for r in report["rows"]}
    cpu = next(r for (m, t), r in rows.items() if t == "cpu-fp32")
    assert cpu["status"] == "measured"
    assert cpu["psnr"]["gaussian:25"] > 22.0  # clean of noise: the noisy input is ~20 dB
    assert cpu["psnr_delta"]["gaussian:25"] == 0.0  # it is its own FP32 reference
    assert cpu["latency"]["1080x1920x1"]["runs"] >= 1
    assert cpu["latency"]["1080x1920x1"]["mpx_per_s"] > 0
    assert cpu["peak_rss_mb"] > 10
    int8 = next(r for (m, t), r in rows.items() if t == "mobile-int8-1t")
    assert int8["status"] == "measured"
    assert set(int8["latency"]) >= {"512x512x1", "720x1280x1", "32x32x400"}
    assert abs(int8["psnr_delta"]["gaussian:25"]) < 1.0
    for target in ("gpu-trt-fp16", "gpu-trt-int8", "gpu-ort-cuda"):
        row = next(r for (m, t), r in rows.items() if t == target)
        assert row["status"] == "skipped" and row["reason"], row
    nlm = rows[("nlm", "cpu-python")]
    assert nlm["status"] == "measured" and nlm["psnr"]["gaussian:25"] > 25.0


def test_report_names_the_machine_and_states_findings(report_dir: Path) -> None:
    report = json.loads((report_dir / "report.json").read_text())
    assert report["machine"]["cpu"] and report["machine"]["cores"] >= 1
    assert report["protocol"]["clip_noise"] is True  # the 8-bit protocol unless --float-noise
    assert report["protocol"]["noise_protocol"].startswith("8-bit protocol")
    assert "onnxruntime" in report["machine"]["packages"]
    assert any("INT8 vs FP32" in f for f in report["findings"])
    assert any("vs nlm" in f for f in report["findings"])
    md = (report_dir / "report.md").read_text()
    assert report["machine"]["cpu"] in md and "## Findings" in md
    assert "skipped" in md


def test_csv_has_one_line_per_measurement(report_dir: Path) -> None:
    with open(report_dir / "report.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    report = json.loads((report_dir / "report.json").read_text())
    expected = sum(max(1, len(r["psnr"])) * max(1, len(r["latency"])) for r in report["rows"])
    assert len(lines) == expected
    assert {line["status"] for line in lines} == {"measured", "skipped"}


def test_clip_noise_protocol_gives_8_bit_noisy_images(tmp_path: Path) -> None:
    import numpy as np

    from n2nkit.bench.compare import prepare_test_data

    _, raw = prepare_test_data(["gaussian:25"], tmp_path / "raw.npz", clip=False)
    _, photo = prepare_test_data(["gaussian:25"], tmp_path / "photo.npz", clip=True)
    unclipped, clipped = np.load(raw)["noisy_0_0"], np.load(photo)["noisy_0_0"]
    assert unclipped.min() < 0 and unclipped.max() > 1
    assert clipped.min() >= 0 and clipped.max() <= 1
    assert np.allclose(clipped * 255, np.round(clipped * 255), atol=1e-4)


def test_a_levels_noise_draw_does_not_depend_on_the_other_levels(tmp_path: Path) -> None:
    import numpy as np

    from n2nkit.bench.compare import prepare_test_data

    _, alone = prepare_test_data(["gaussian:25"], tmp_path / "alone.npz", clip=True)
    _, listed = prepare_test_data(["gaussian:15", "gaussian:25"], tmp_path / "two.npz", clip=True)
    _, seeded = prepare_test_data(["gaussian:25"], tmp_path / "seed1.npz", seed=1, clip=True)
    alone, listed, seeded = np.load(alone), np.load(listed), np.load(seeded)
    for photo in (0, 1):
        assert np.array_equal(alone[f"noisy_0_{photo}"], listed[f"noisy_1_{photo}"])
        assert not np.array_equal(alone[f"noisy_0_{photo}"], seeded[f"noisy_0_{photo}"])


def test_baseline_speed_finding_uses_the_fastest_target_within_the_psnr_budget() -> None:
    from n2nkit.bench.findings import _baseline_findings
    from n2nkit.bench.report import Report, Row

    def row(model, target, group, ms, psnr, delta=0.0):
        return Row(model, target, group, "measured", psnr={"g": psnr},
                   psnr_delta={"g": delta} if group != "baseline" else {},
                   latency={"per-image": {"p50_ms": ms}})  # fmt: skip

    rows = [
        row("m", "cpu-fp32", "desktop-cpu", 100.0, 30.0),
        row("m", "mobile-int8-2t", "mobile-like", 50.0, 29.9, -0.1),
        row("m", "mobile-int8-1t", "mobile-like", 20.0, 29.0, -1.0),  # too lossy to count
        row("bm3d", "cpu-python", "baseline", 8000.0, 33.0),
    ]
    (line,) = _baseline_findings(Report({}, {}, rows), ["m"], "g")
    assert "80× faster per test image on this CPU (cpu-fp32)" in line
    assert "160× faster on mobile-int8-2t (-0.10 dB)" in line and "meets the ≥100× target" in line
    rows[1].latency["per-image"]["p50_ms"] = 90.0
    (line,) = _baseline_findings(Report({}, {}, rows), ["m"], "g")
    assert "89× faster on mobile-int8-2t" in line and "misses the ≥100× target" in line
    rows[0].latency["per-image"]["p50_ms"] = 16000.0  # a baseline faster than the model
    (line,) = _baseline_findings(Report({}, {}, rows), ["m"], "g")
    assert "2.0× slower per test image on this CPU" in line and "0.5×" not in line


# --- the report a person reads: compact table, H×W sizes, one speed unit, the Pareto front ---

NOISE = "gaussian:25"
COMPACT = ["model", "target", "status", f"PSNR {NOISE}", f"Δ {NOISE}", "ms/MP", "MP/s",
           "size MB"]  # fmt: skip


def _made_up_report():
    from n2nkit.bench.report import Report, Row

    def stats(ms: float, mpx: float, runs: int = 3) -> dict:
        return {"p50_ms": ms, "p90_ms": ms * 1.1, "p99_ms": ms * 1.2, "runs": runs,
                "mpx_per_s": mpx}  # fmt: skip

    rows = [
        Row("n2n", "cpu-fp32", "desktop-cpu", "measured", size_mb=3.9, psnr={NOISE: 30.1},
            psnr_delta={NOISE: 0.0}, latency={"per-image": stats(80.0, 3.3),
            "1080x1920x1": stats(600.0, 3.46)}, peak_rss_mb=200.0),
        Row("n2n", "mobile-int8-1t", "mobile-like", "measured", size_mb=1.0, psnr={NOISE: 29.9},
            psnr_delta={NOISE: -0.2}, latency={"per-image": stats(40.0, 6.6),
            "720x1280x1": stats(140.0, 6.58), "32x32x400": stats(60.0, 6.8)}),
        Row("n2n", "gpu-trt-fp16", "desktop-gpu", "skipped", reason="no trt-fp16 artifact"),
        Row("nlm", "cpu-python", "baseline", "measured", psnr={NOISE: 28.0},
            latency={"per-image": stats(900.0, 0.29)}),
    ]  # fmt: skip
    return Report({"cpu": "test CPU", "cores": 2, "gpu": None}, {"noise": [NOISE]}, rows)


def _md_table_rows(md: str) -> list[list[str]]:
    """The first markdown table's lines, split into cells (header first)."""
    lines = [x for x in md.split("\n\n") if x.startswith("| model")][0].splitlines()
    return [[c.strip() for c in x.strip("|").split("|")] for x in lines if "---|" not in x]


def test_markdown_leads_with_the_compact_table() -> None:
    from n2nkit.bench.report import markdown

    md = markdown(_made_up_report())
    table = _md_table_rows(md)
    assert table[0] == COMPACT
    assert [r[:3] for r in table[1:]] == [["n2n", "cpu-fp32", "✅"],
        ["n2n", "mobile-int8-1t", "✅"], ["n2n", "gpu-trt-fp16", "⏭"],
        ["nlm", "cpu-python", "✅"]]  # fmt: skip
    assert "n2n on gpu-trt-fp16: skipped, no trt-fp16 artifact" in md  # the reason, below


def test_terminal_prints_the_same_compact_table() -> None:
    from rich.console import Console

    from n2nkit.bench.report import compact_cells, markdown
    from n2nkit.cli.compare import _print_report

    report = _made_up_report()
    console = Console(record=True, width=200)
    _print_report(console, report)
    text = console.export_text()
    header = next(x for x in text.splitlines() if "model" in x and "target" in x)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == COMPACT
    for row in report.rows:  # every cell as in report.md
        line = next(x for x in text.splitlines() if f" {row.model} " in x and row.target in x)
        assert [c.strip() for c in line.strip("│ ").split("│")] == compact_cells(row, [NOISE])
    assert _md_table_rows(markdown(report))[1:] == [compact_cells(r, [NOISE]) for r in report.rows]
    assert "no trt-fp16 artifact" in text


def test_sizes_print_as_height_by_width() -> None:
    from n2nkit.bench.report import format_size, markdown

    assert format_size("720x1280x1") == "720×1280"
    assert format_size("32x32x400") == "400 × 32×32"
    md = markdown(_made_up_report())
    assert "| 720×1280 |" in md and "| 1080×1920 |" in md and "| 400 × 32×32 |" in md
    assert "720280" not in md and "720x1280" not in md


def _assert_speed_units_agree(md: str) -> None:
    table = _md_table_rows(md)
    ms_col, mpx_col = table[0].index("ms/MP"), table[0].index("MP/s")
    measured = [r for r in table[1:] if r[2] == "✅"]
    assert measured
    for row in measured:
        ms, mpx = float(row[ms_col]), float(row[mpx_col])
        assert ms == pytest.approx(1000.0 / mpx, rel=0.01), row  # 3 significant digits each


def test_ms_per_megapixel_matches_megapixels_per_second() -> None:
    from n2nkit.bench.report import markdown

    _assert_speed_units_agree(markdown(_made_up_report()))


def test_report_md_speed_units_agree(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    assert _md_table_rows(md)[0] == COMPACT
    _assert_speed_units_agree(md)


def test_pareto_front_marks_exactly_the_non_dominated_points() -> None:
    from n2nkit.bench.report import pareto_front

    points = [
        (1.0, 33.0),  # slowest, best: on the front
        (10.0, 30.0),  # on the front
        (5.0, 29.0),  # dominated by (10, 30)
        (100.0, 25.0),  # fastest: on the front
        (10.0, 28.0),  # dominated by (10, 30): as fast, worse
        (50.0, 25.0),  # dominated by (100, 25): as good, slower
        (0.5, 20.0),  # dominated by everything above it
    ]
    assert pareto_front(points) == [True, True, False, True, False, False, False]
    assert pareto_front([(1.0, 1.0), (1.0, 1.0)]) == [True, True]  # ties dominate nothing
    assert pareto_front([]) == []


def test_plot_is_a_png_of_readable_size(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from n2nkit.bench.report import write_plot

    path = tmp_path / "plot.png"
    assert write_plot(_made_up_report(), path)
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert 800 <= width <= 2400 and 400 <= height <= 1400, (width, height)
    assert 10_000 < path.stat().st_size < 2_000_000


def test_read_json_gives_back_the_report(tmp_path: Path) -> None:
    from n2nkit.bench.report import markdown, read_json, write_json

    report = _made_up_report()
    write_json(report, tmp_path / "report.json")
    assert markdown(read_json(tmp_path / "report.json")) == markdown(report)


def test_two_folders_of_one_name_keep_their_own_rows(
    exported_n2n: Path, untrained_truncated_onnx, tmp_path: Path
) -> None:
    """``runs/a/n2n`` against ``runs/b/n2n`` (before and after a change): each row is labelled
    by enough of its path to tell them apart, and each Δ is against its own FP32 model."""
    import shutil

    for name in ("model.onnx", "model.int8.onnx"):
        (tmp_path / "a" / "n2n").mkdir(parents=True, exist_ok=True)
        shutil.copy(exported_n2n / name, tmp_path / "a" / "n2n" / name)
    (tmp_path / "b" / "n2n").mkdir(parents=True)
    shutil.copy(untrained_truncated_onnx[0], tmp_path / "b" / "n2n" / "model.onnx")
    out = tmp_path / "report"
    args = ["compare", str(tmp_path / "a" / "n2n"), str(tmp_path / "b" / "n2n"), "--out",
            str(out), "--noise", "gaussian:25", "--target", "cpu-fp32", "--target",
            "mobile-int8-2t", "--no-baselines", "--budget", "0", "--min-runs", "1",
            "--warmup", "0"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "report.json").read_text())["rows"]
    measured = {(r["model"], r["target"]): r for r in rows if r["status"] == "measured"}
    assert set(measured) == {("a/n2n", "cpu-fp32"), ("a/n2n", "mobile-int8-2t"),
                             ("b/n2n", "cpu-fp32")}  # fmt: skip
    for model in ("a/n2n", "b/n2n"):  # each FP32 row is its own reference
        assert measured[(model, "cpu-fp32")]["psnr_delta"]["gaussian:25"] == 0.0
    a_fp32 = measured[("a/n2n", "cpu-fp32")]["psnr"]["gaussian:25"]
    int8 = measured[("a/n2n", "mobile-int8-2t")]
    assert int8["psnr_delta"]["gaussian:25"] == pytest.approx(int8["psnr"]["gaussian:25"] - a_fp32)


def test_the_same_model_named_twice_is_refused(exported_n2n: Path, tmp_path: Path) -> None:
    again = f"{exported_n2n}/../{exported_n2n.name}"
    result = runner.invoke(app, ["compare", str(exported_n2n), again, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "named twice" in result.output and "Traceback" not in result.output


def test_a_broken_model_fails_its_row_and_the_exit_code(tmp_path: Path) -> None:
    """A model.onnx that does not parse is a failed measurement, not a skipped one: the report
    is written and says so (an earlier run's plot is not left beside it), and compare exits
    non-zero with one line."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"junk")
    out = tmp_path / "report"
    out.mkdir()
    (out / "psnr_vs_latency.png").write_bytes(b"an earlier run's plot")
    args = ["compare", str(broken), "--out", str(out), "--target", "cpu-fp32", "--no-baselines",
            "--budget", "0", "--min-runs", "1", "--warmup", "0"]  # fmt: skip
    refused = runner.invoke(app, args)  # an earlier report is replaced only when asked
    assert refused.exit_code == 2 and "pass --overwrite" in refused.output, refused.output
    assert (out / "psnr_vs_latency.png").read_bytes() == b"an earlier run's plot"
    result = runner.invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 1, result.output
    assert "1 measurement(s) failed, e.g. broken on cpu-fp32" in result.output
    assert "Traceback" not in result.output
    (row,) = json.loads((out / "report.json").read_text())["rows"]
    assert row["status"] == "failed" and "broken" in row["reason"]
    assert not (out / "psnr_vs_latency.png").exists()  # nothing measured: no stale plot beside it


def test_artifacts_of_other_weights_than_the_folders_checkpoint_are_refused(
    trained_n2n_run: Path, exported_n2n: Path, tmp_path: Path
) -> None:
    """`n2nkit export run --out run`, then more training into run: the ONNX rows were the old
    network's and their Δ against PyTorch measured the training, marked ✅."""
    import shutil

    from n2nkit.training.checkpoint import load_checkpoint, save_checkpoint

    folder = tmp_path / "run"
    shutil.copytree(exported_n2n, folder)
    shutil.copy(trained_n2n_run / "best.pt", folder / "best.pt")  # the exported weights
    args = ["compare", str(folder), "--out", str(tmp_path / "r1"), "--target", "cpu-fp32",
            "--no-baselines", "--budget", "0", "--min-runs", "1", "--warmup", "0"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    trained_on = load_checkpoint(folder / "best.pt")
    key = next(iter(trained_on["state_dict"]))
    trained_on["state_dict"][key] = trained_on["state_dict"][key] + 0.01  # "trained further"
    save_checkpoint(folder / "best.pt", trained_on)
    args[3] = str(tmp_path / "r2")
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "exported from other weights than its best.pt" in result.output
    assert not (tmp_path / "r2").exists()


def test_a_model_file_whose_name_says_another_precision_is_refused(
    exported_n2n: Path, tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "copied"
    folder.mkdir()
    shutil.copy(exported_n2n / "model.onnx", folder / "model.onnx")
    shutil.copy(exported_n2n / "model.onnx", folder / "model.int8.onnx")  # FP32 under INT8's name
    result = runner.invoke(app, ["compare", str(folder), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "model.int8.onnx holds a fp32 model but its name says int8" in result.output


def test_one_noise_level_written_two_ways_is_one_column(untrained_truncated_onnx, tmp_path) -> None:
    """--noise gaussian:25 --noise GAUSSIAN:25 gave two columns, the second with another draw."""
    out = tmp_path / "report"
    args = ["compare", str(untrained_truncated_onnx[0]), "--out", str(out), "--noise",
            "gaussian:25", "--noise", "GAUSSIAN:25.0", "--target", "cpu-fp32", "--no-baselines",
            "--budget", "0", "--min-runs", "1", "--warmup", "0"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "report.json").read_text())["rows"]
    assert [list(r["psnr"]) for r in rows if r["status"] == "measured"] == [["gaussian:25"]]


def test_the_float_protocol_measures_strong_noise(untrained_truncated_onnx, tmp_path) -> None:
    """Unclipped gaussian:75 spans about -1.3 to 2.2 and poisson:0.1 reaches tens: the
    runtime's check against 0-255 floats once failed every row of the older protocol (the PSNR
    and the latency runs) at such levels."""
    out = tmp_path / "report"
    args = ["compare", str(untrained_truncated_onnx[0]), "--out", str(out), "--noise",
            "gaussian:75", "--noise", "poisson:0.1", "--float-noise", "--target", "cpu-fp32",
            "--no-baselines", "--budget", "0", "--min-runs", "1", "--warmup", "0"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "report.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["measured"]
    assert set(rows[0]["psnr"]) == {"gaussian:75", "poisson:0.1"}
