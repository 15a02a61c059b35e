"""``n2nkit denoise``: images in, denoised images out, through the lightweight runtime (no torch).

    n2nkit denoise in.png out.png                       # one file; format from OUT's extension
    n2nkit denoise photos/ --out clean/                 # a folder (or several files) -> a folder
    n2nkit denoise a.jpg b.jpg --out clean/ --format png

Every output path is checked before the first image is touched: none may be an input, none may
exist unless ``--overwrite``, and its folder must be writable. Outputs are written atomically.
In a batch, a file that cannot be read is reported on its own line and the rest go on; the
exit code is non-zero if any failed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

ADVANCED = "Advanced"


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


def plan_jobs(
    inputs: list[Path], out: Path | None, fmt: str | None, overwrite: bool
) -> tuple[list[Job], bool]:
    """Pair every input with its output; (jobs, whether the output is a folder).

    ``IN OUT`` (two paths, no --out) is one file to one file, or a folder to a folder;
    with ``--out`` every path given is an input.
    """
    from n2nkit.errors import UserInputError
    from n2nkit.runtime.images import FORMATS, image_files, output_format

    if out is None:
        if len(inputs) != 2:
            raise UserInputError(
                "name the output: `n2nkit denoise IN OUT`, or `--out FOLDER` for several inputs"
            )
        inputs, out = inputs[:1], inputs[1]
    if fmt is not None and f".{fmt.lower().lstrip('.')}" not in FORMATS:
        raise UserInputError(f"--format {fmt}: choose one of {', '.join(sorted(FORMATS))}")
    sources: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = image_files(item)
            if not found:
                raise UserInputError(f"{item} holds no images ({', '.join(sorted(FORMATS))})")
            sources += found
        elif item.exists():
            sources.append(item)
        else:
            raise UserInputError(f"input not found: {item}")
    to_folder = out.is_dir() or len(sources) > 1 or inputs[0].is_dir() or not out.suffix
    if to_folder and not out.is_dir() and out.suffix.lower() in FORMATS:
        raise UserInputError(
            f"{len(sources)} image(s) go into a folder, and {out} names a file: give a folder "
            "(it is created), or one input for one output file"
        )
    jobs = []
    for source in sources:
        if to_folder:
            suffix = f".{fmt.lower().lstrip('.')}" if fmt else source.suffix
            if suffix.lower() not in FORMATS:  # readable, not writable (.jfif): say so now
                raise UserInputError(
                    f"{source.name}: n2nkit reads {suffix} but cannot write it; give --format "
                    f"({', '.join(sorted(f.lstrip('.') for f in FORMATS))})"
                )
            jobs.append(Job(source, out / (source.stem + suffix)))
        else:
            named = output_format(out)  # fail now on an unknown extension
            if fmt is not None and named != output_format(Path(f"x.{fmt}")):
                raise UserInputError(
                    f"--format {fmt} names the format of files written into a folder; {out.name} "
                    "names its own by its extension: drop --format or change the extension"
                )
            jobs.append(Job(source, out))
    _check_outputs(jobs, overwrite)
    return jobs, to_folder


def _check_outputs(jobs: list[Job], overwrite: bool) -> None:
    """Refuse the whole run before writing anything if any output is unsafe."""
    from n2nkit.errors import UserInputError

    sources = {j.source.resolve() for j in jobs}
    targets: dict[Path, Path] = {}
    for job in jobs:
        target = job.target.resolve()
        if target in sources:
            raise UserInputError(f"output {job.target} is an input: n2nkit never overwrites one")
        if target in targets:
            raise UserInputError(
                f"{targets[target]} and {job.source} would both be written to {job.target}"
            )
        targets[target] = job.source
    existing = [j.target for j in jobs if os.path.lexists(j.target)]  # dangling links too
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise UserInputError(f"{existing[0]}{more} already exist(s): pass --overwrite to replace")
    folder = _existing_parent(jobs[0].target.parent)
    for job in jobs:
        if job.target.is_dir():
            raise UserInputError(f"output {job.target} is a folder")
    if not os.access(folder, os.W_OK):
        raise UserInputError(f"cannot write to {folder}: permission denied")


def _existing_parent(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    if not path.is_dir():
        from n2nkit.errors import UserInputError

        raise UserInputError(f"cannot create an output folder under {path}: it is a file")
    return path


def denoise(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="IN OUT (one image to one image, or a folder to a folder), or input files and "
            "folders with --out.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output folder for several inputs (or an output file)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="A .onnx/.ort/.engine file, an export folder, or a shipped model (n2n, "
            "truncated). Default: the shipped n2n."
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="auto (TensorRT, then CUDA, then CPU), ort-cpu, ort-cuda, trt.")
    ] = "auto",
    tile: Annotated[
        int | None,
        typer.Option(help="Largest side denoised in one piece; larger images are tiled (1024)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace outputs that already exist.")
    ] = False,
    ensemble: Annotated[
        bool,
        typer.Option(
            "--ensemble",
            help="Quality mode: average the model over the 8 flips/rotations (8× the time; "
            "gain in docs/runtime.md).",
        ),
    ] = False,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="Output format for a folder of outputs: png, jpg, ..."),
    ] = None,
    overlap: Annotated[
        int | None,
        typer.Option(help="Pixels neighbouring tiles share (64).", rich_help_panel=ADVANCED),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(help="onnxruntime CPU threads (all cores).", rich_help_panel=ADVANCED),
    ] = None,
    quality: Annotated[
        int, typer.Option(help="JPEG/WebP quality, 1-100.", rich_help_panel=ADVANCED)
    ] = 95,
    max_pixels: Annotated[
        int | None,
        typer.Option(
            help="Refuse larger images (decompression-bomb guard; default Pillow's 89.5 MP).",
            rich_help_panel=ADVANCED,
        ),
    ] = None,
) -> None:
    """Denoise images with a trained model (the shipped n2n unless --model says otherwise)."""
    from rich.markup import escape

    from n2nkit.cli.console import console, print_note
    from n2nkit.errors import UserInputError
    from n2nkit.runtime import Denoiser

    if not 1 <= quality <= 100:
        raise UserInputError(f"--quality must lie in 1-100, got {quality}")
    if max_pixels is not None and max_pixels < 1:
        raise UserInputError(f"--max-pixels must be positive, got {max_pixels}")
    try:
        jobs, to_folder = plan_jobs(inputs, out, fmt, overwrite)
    except OSError as exc:  # a name the system refuses to look up (too long, a loop)
        raise UserInputError(f"{exc.filename}: {exc.strerror or exc}") from None
    denoiser = Denoiser.load(
        model, backend=backend, threads=threads, tile=tile, overlap=overlap, ensemble=ensemble
    )
    for note in denoiser.notes:
        print_note(note)
    meta = denoiser.metadata
    console.print(
        f"{meta.variant} ({meta.precision}, {escape(denoiser.path.name)}) on {denoiser.backend}"
        + (", quality mode (8-fold self-ensemble)" if ensemble else ""),
        highlight=False,
    )
    folder = jobs[0].target.parent
    created = to_folder and not folder.exists()
    if to_folder:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserInputError(f"cannot create {folder}: {exc.strerror or exc}") from None
    try:
        failed = _run(jobs, denoiser, quality, max_pixels, overwrite, progress=len(jobs) > 1)
    finally:
        denoiser.close()  # a TensorRT backend frees its device memory here
        if created and not any(folder.iterdir()):  # nothing written: leave no empty -o
            folder.rmdir()
    if failed:
        raise UserInputError(f"{failed} of {len(jobs)} image(s) could not be denoised")


def _run(
    jobs: list[Job],
    denoiser,
    quality: int,
    max_pixels: int | None,
    overwrite: bool,
    progress: bool,
) -> int:
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from n2nkit.cli.console import console, print_error, print_note
    from n2nkit.errors import N2NError
    from n2nkit.runtime.images import check_output_size, read_image, write_image

    failed = 0
    columns = (TextColumn("denoising"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.description}"))  # fmt: skip
    with Progress(*columns, console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("", total=len(jobs))
        for job in jobs:
            bar.update(task, description=escape(job.source.name))
            start = time.perf_counter()
            try:
                image = read_image(job.source, max_pixels)
                check_output_size(job.target, *image.pixels.shape[:2])
                clean = denoiser(image.pixels)
                notes = noise_notes(job.source.name, image.pixels, denoiser)
                notes += image.notes + write_image(
                    job.target, clean, image, quality=quality, overwrite=overwrite
                )
            except N2NError as exc:
                if not progress:
                    raise
                failed += 1
                print_error(exc)
            else:
                h, w = image.pixels.shape[:2]
                seconds = time.perf_counter() - start
                line = f"{job.source} -> {job.target} ({w}×{h}, {seconds:.2f} s)"
                console.print(escape(line), highlight=False, soft_wrap=True)
                for note in notes:
                    print_note(note)
            bar.advance(task)
    return failed


def noise_notes(name: str, pixels, denoiser) -> list[str]:
    """A one-line note when the image's estimated noise lies outside the model's trained range."""
    from n2nkit.runtime.noise_level import outside_range_note

    sigma_range = denoiser.metadata.sigma_range()
    if sigma_range is None:  # unknown range (or not Gaussian noise): nothing to compare
        return []
    note = outside_range_note(name, denoiser.estimate_noise(pixels), sigma_range)
    return [note] if note else []
