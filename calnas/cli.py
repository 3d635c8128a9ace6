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
    # Once per process: main() may run several times in one (tests, notebooks).
    if app.registered_commands or app.registered_groups:
        return
    from calnas.commands import register_all

    register_all(app)


# click's base exception (a bad option value, an unknown option, a missing argument), found through
# typer's public BadParameter: typer vendors click in some versions and imports it in others.
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        # Not standalone: click's usage errors come here, to be one line like every other error.
        code = app(args=argv, standalone_mode=False)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except _CLICK_EXCEPTION as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `calnas table` alone: typer has shown the help
            sys.exit(exc.exit_code)
        typer.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        import errno

        if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # a full disk, wherever it struck
            typer.echo(f"error: {exc.strerror or 'no space left on device'}"
                       + (f": {str(exc.filename)[:200]!r}" if exc.filename else ""), err=True)
            sys.exit(2)
        # A file or folder the user named that the system refuses (a name too long, a loop of links,
        # no permission): the user's to fix. An OSError about no named file is a bug, traceback kept.
        if exc.filename is None:
            raise
        typer.echo(f"error: cannot use {str(exc.filename)[:200]!r}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    if code == 130:  # typer turns Ctrl-C into exit code 130
        typer.echo("interrupted", err=True)
    sys.exit(code if isinstance(code, int) else 0)


def _one_line(exc) -> str:
    """A usage error's message with the command it is about (``calnas search: no such option
    --bugdet``), on one line."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    return f"{ctx.command_path}: {message}" if ctx is not None else message
