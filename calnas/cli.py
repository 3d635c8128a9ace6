"""The calnas command line (Typer + rich).

Commands are thin functions over the library, defined in :mod:`calnas.commands`; this module
only assembles them and turns :class:`~calnas.errors.UserError` into one line and exit code 2.
"""

from __future__ import annotations

import sys

import typer

from calnas.errors import UserError

app = typer.Typer(
    name="calnas",
    help="Calibration-aware neural architecture search over the NATS-Bench spaces.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Imported here so `calnas --help` stays fast and each command module stays independent.
    from calnas.commands import register_all

    register_all(app)


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        app(args=argv, standalone_mode=True)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
