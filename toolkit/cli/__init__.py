"""The ``n2nkit`` command line: composes one module per command (:mod:`n2nkit.cli.train`, ...).

Each command module imports only typer at module level, so ``n2nkit --help`` never loads torch;
:mod:`n2nkit.cli.console` holds the consoles and the one-line error guard they share.
"""

from __future__ import annotations

import typer

from n2nkit import __version__
from n2nkit.cli import compare as compare_cmd
from n2nkit.cli import denoise as denoise_cmd
from n2nkit.cli import export as export_cmd
from n2nkit.cli import models as models_cmd
from n2nkit.cli import pipeline as pipeline_cmd
from n2nkit.cli import train as train_cmd
from n2nkit.cli.console import guard
from n2nkit.cli.help_layout import FlagCommand, FlagGroup

app = typer.Typer(
    name="n2nkit",
    cls=FlagGroup,
    help="Train a Noise2Noise denoiser, export it, and run it on desktop GPUs and phones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"n2nkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Train a Noise2Noise denoiser, export it, and run it on desktop GPUs and phones."""


app.command("models", cls=FlagCommand)(guard(models_cmd.models))
app.command("train", cls=FlagCommand)(guard(train_cmd.train))
app.command("export", cls=FlagCommand)(guard(export_cmd.export))
app.command("denoise", cls=FlagCommand)(guard(denoise_cmd.denoise))
app.command("compare", cls=FlagCommand)(guard(compare_cmd.compare))
app.command("pipeline", cls=FlagCommand)(guard(pipeline_cmd.pipeline))


def main() -> None:
    """Console-script entry point. SIGTERM (``timeout``, schedulers, ``docker stop``, torchrun
    stopping its workers) is handled as Ctrl-C is: a training run saves a resumable last.pt and
    an export removes its scratch files before the process exits (143)."""
    import signal

    from n2nkit.cli.console import Terminated

    def terminate(_signum: int, _frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)
    app()


if __name__ == "__main__":
    main()
