"""What genretag itself says on stderr: one prefix for its errors and warnings, in every command.

A user (or a script grepping a log) must be able to tell genretag's own
failures from a library's chatter: libmpg123 and TensorFlow print lines that
begin with ``error:`` or ``W0000`` for things that are not failures at all.
So every error genretag reports starts with :data:`ERROR`, every warning with
:data:`WARNING`, whether a command prints it itself or click reports a bad
flag (:class:`Group` rewrites click's ``Error:``).
"""

from __future__ import annotations

import errno
import io
import os
import re
import sys
from typing import Any

import click

ERROR = "genretag: error: "
WARNING = "genretag: warning: "


def error(message: str) -> None:
    """One error line on stderr (the command decides whether it goes on)."""
    click.echo(ERROR + message, err=True)


def warning(message: str) -> None:
    click.echo(WARNING + message, err=True)


def format_click_error(err: click.ClickException) -> str:
    """Click's own rendering of ``err`` (usage and hint for a usage error) with :data:`ERROR` for
    its ``Error:``."""
    out = io.StringIO()
    err.show(file=out)
    return re.sub(r"^Error: ", ERROR, out.getvalue(), count=1, flags=re.MULTILINE)


#: Top-level modules of the ``train`` extra (pyproject.toml): serving runs without them.
TRAINING_MODULES = frozenset(
    {"keras", "tensorflow", "librosa", "sklearn", "skops", "matplotlib", "tf2onnx", "onnx", "tensorboard"}
)
#: The extra (pip name, and what the message calls it) that brings each optional module a command imports.
EXTRA_OF_MODULE = {
    **dict.fromkeys(TRAINING_MODULES, ("train", "training")),
    "apache_beam": ("beam", "Apache Beam"),
}


class Group(click.Group):
    """The ``genretag`` group: click's standalone error handling, with genretag's prefix."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as err:
            click.echo(format_click_error(err), err=True, nl=False)
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except ModuleNotFoundError as err:
            module = (err.name or "").partition(".")[0]
            if module not in EXTRA_OF_MODULE:
                raise
            pip_extra, called = EXTRA_OF_MODULE[module]
            install = f"pip install 'genretag[{pip_extra}]'"
            error(f"this command needs {module}, part of the {called} extra: {install}")
            sys.exit(1)
        except OSError as err:  # as click does: a closed pipe (| head) ends the command quietly
            if err.errno != errno.EPIPE:
                raise
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (stays open until exit, by design)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)
