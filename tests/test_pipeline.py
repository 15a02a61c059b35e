"""``n2nkit pipeline`` end to end on a few seconds of training: train, export, compare, report;
a second run skips what is done, and an interrupted training resumes within its budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from n2nkit.cli import app
from n2nkit.errors import UserInputError

runner = CliRunner()
ARGS = ["--variants", "truncated", "--budget", "4s", "--no-shipped", "--compare-budget", "0",
        "--compare-runs", "1", "--target", "cpu-fp32", "--target", "mobile-int8-1t",
        "--target", "gpu-trt-fp16"]  # fmt: skip


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("pipeline")
    result = runner.invoke(app, ["pipeline", "--out", str(out), *ARGS])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_pipeline_trains_exports_and_reports(first_run) -> None:
    out, output = first_run
    assert (out / "runs" / "truncated" / "best.pt").is_file()
    artifacts = {p.name for p in (out / "artifacts" / "truncated").iterdir()}
    assert {"model.onnx", "model.int8.onnx", "model.fp16.onnx", "model.ort"} <= artifacts
    report = json.loads((out / "report" / "report.json").read_text())
    status = {(r["model"], r["target"]): r["status"] for r in report["rows"]}
    assert status[("truncated", "cpu-fp32")] == "measured"
    assert status[("truncated", "mobile-int8-1t")] == "measured"
    assert status[("truncated", "gpu-trt-fp16")] == "skipped"
    assert status[("nlm", "cpu-python")] == "measured"
    assert "TensorRT engines skipped" in output and "n2nkit[gpu]" in output
    state = json.loads((out / "pipeline.json").read_text())
    settings = state.pop("settings")
    assert state == {"train:truncated": "done", "export:truncated": "done", "compare": "done"}
    assert settings == {"noise": "gaussian:25", "recipe": "fast", "residual": None,
                        "batch_size": None}  # fmt: skip


def test_a_second_run_with_other_training_settings_is_refused(first_run) -> None:
    """Its steps would be skipped as done and the old model measured under the new noise."""
    out, _ = first_run
    before = (out / "pipeline.json").read_bytes()
    result = runner.invoke(app, ["pipeline", "--out", str(out), *ARGS, "--noise", "gaussian:50"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "trained with --noise gaussian:25 (now --noise gaussian:50)" in result.output
    assert "--fresh" in result.output
    assert (out / "pipeline.json").read_bytes() == before


def test_a_second_run_skips_finished_steps_and_resumes_training(first_run) -> None:
    out, _ = first_run
    best = (out / "runs" / "truncated" / "best.pt").stat().st_mtime_ns
    result = runner.invoke(app, ["pipeline", "--out", str(out), *ARGS])
    assert result.exit_code == 0, result.output
    assert "train truncated: done in an earlier run, skipped" in result.output
    assert "export truncated: done in an earlier run, skipped" in result.output
    assert (out / "runs" / "truncated" / "best.pt").stat().st_mtime_ns == best
    # As if interrupted during training: the run resumes, and its 4 s were already spent.
    state = json.loads((out / "pipeline.json").read_text())
    state["train:truncated"] = "started"
    (out / "pipeline.json").write_text(json.dumps(state))
    result = runner.invoke(app, ["pipeline", "--out", str(out), *ARGS])
    assert result.exit_code == 0, result.output
    assert "its budget was spent" in result.output


def test_pipeline_refuses_bad_options_before_training(tmp_path: Path) -> None:
    result = runner.invoke(app, ["pipeline", "--out", str(tmp_path), "--variants", "tiny"])
    assert result.exit_code == 2 and "unknown model variant 'tiny'" in result.output
    result = runner.invoke(app, ["pipeline", "--out", str(tmp_path), "--target", "phone"])
    assert result.exit_code == 2 and "unknown target" in result.output
    result = runner.invoke(app, ["pipeline", "--out", str(tmp_path), "--budget", "soon"])
    assert result.exit_code == 2 and "cannot read duration" in result.output
    for option, value in (("--compare-runs", "0"), ("--compare-budget", "nan")):
        result = runner.invoke(app, ["pipeline", "--out", str(tmp_path), option, value])
        assert result.exit_code == 2 and option in result.output
    assert not (tmp_path / "runs").exists()


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_fresh_never_empties_a_folder_that_is_not_a_pipeline_s(tmp_path: Path) -> None:
    """`--out . --fresh` once removed every run `n2nkit train` had put in ./runs, and did so
    before an unknown --target was refused."""
    (tmp_path / "runs" / "mine").mkdir(parents=True)
    (tmp_path / "runs" / "mine" / "best.pt").write_bytes(b"a user's run")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "thesis.md").write_text("a user's report")
    before = _tree(tmp_path)
    result = runner.invoke(app, ["pipeline", "--out", str(tmp_path), "--fresh", "-t", "phone"])
    assert result.exit_code == 2 and "unknown target" in result.output
    assert _tree(tmp_path) == before
    result = runner.invoke(app, ["pipeline", "--out", str(tmp_path), "--fresh", *ARGS])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "runs, report but no pipeline.json" in result.output
    assert "nothing was removed" in result.output
    assert _tree(tmp_path) == before


def test_a_run_the_pipeline_did_not_start_is_not_trained_over(tmp_path: Path) -> None:
    """`n2nkit train` writes to runs/<variant>; a pipeline in the same folder (or one whose
    pipeline.json was lost) would have overwritten that run without --fresh."""
    (tmp_path / "runs" / "truncated").mkdir(parents=True)
    (tmp_path / "runs" / "truncated" / "best.pt").write_bytes(b"a user's run")
    before = _tree(tmp_path)
    result = runner.invoke(app, ["pipeline", "--out", str(tmp_path), *ARGS])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "holds a training run that pipeline.json does not record" in result.output
    assert _tree(tmp_path) == before


def _files(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(name.encode())


def test_fresh_removes_only_what_a_pipeline_wrote(tmp_path: Path) -> None:
    """--fresh removed the whole of runs/ and report/: a user's own run and notes too."""
    from n2nkit.bench.report import REPORT_FILES
    from n2nkit.pipeline_state import clear

    steps = {"train:truncated": "done", "export:truncated": "done", "compare": "done"}
    (tmp_path / "pipeline.json").write_text(json.dumps(steps))
    _files(tmp_path, "runs/truncated/best.pt", "artifacts/truncated/model.onnx",
           "report/report.md", "report/psnr_vs_latency.png")  # fmt: skip
    mine = ("runs/mine/best.pt", "report/notes.txt", "notes.txt")
    _files(tmp_path, *mine)
    clear(tmp_path, REPORT_FILES.values())
    assert _tree(tmp_path) == {name: name.encode() for name in mine}
    assert not (tmp_path / "artifacts").exists()  # left empty: removed


def test_fresh_with_an_unreadable_state_keeps_the_runs_it_cannot_vouch_for(tmp_path: Path):
    from n2nkit.bench.report import REPORT_FILES
    from n2nkit.pipeline_state import clear

    (tmp_path / "pipeline.json").write_text("{not json")
    _files(tmp_path, "runs/truncated/best.pt", "report/report.md")
    clear(tmp_path, REPORT_FILES.values())
    assert _tree(tmp_path) == {"runs/truncated/best.pt": b"runs/truncated/best.pt"}
    result = runner.invoke(app, ["pipeline", "--out", str(tmp_path), *ARGS])
    assert result.exit_code == 2 and "does not record" in result.output  # never trained over


def test_a_pipeline_json_that_is_a_folder_is_one_line(tmp_path: Path) -> None:
    """IsADirectoryError with a traceback."""
    (tmp_path / "pipeline.json").mkdir()
    result = runner.invoke(app, ["pipeline", "--out", str(tmp_path), *ARGS])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "cannot read" in result.output and "pipeline.json" in result.output


def test_a_changed_setting_is_named_as_the_option_that_gives_it(tmp_path: Path) -> None:
    """`--direct` against the recipe's default read 'trained with --residual None (now False)'."""
    from n2nkit.pipeline_state import PipelineState

    _files(tmp_path, "runs/truncated/best.pt")
    PipelineState(tmp_path).claim({"noise": "gaussian:25", "residual": None})
    with pytest.raises(UserInputError) as err:
        PipelineState(tmp_path).claim({"noise": "gaussian:25", "residual": False})
    assert "the recipe's default (no --residual/--direct) (now --direct)" in str(err.value)
