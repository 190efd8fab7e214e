"""``--curve-server-key`` / ``--curve-key``: the CURVE options shared by ``send`` and ``subscribe``.

Both clients connect to a daemon socket that may be a CURVE server
(``curve_secret_key`` in its config section); these options make the client
socket a CURVE client.  pyzmq and the key code are imported inside
:func:`secure` so ``genretag --help`` stays instant.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def curve_options(function: F) -> F:
    """Add the two options to a click command (parameters ``curve_server_key`` and ``curve_key``)."""
    function = click.option(
        "--curve-key", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
        help="This client's secret key file (NAME.key_secret of `genretag keys generate`), whose public "
             "key is in the daemon's curve_clients directory.  Without it a throw-away key is used, which "
             "only a daemon without curve_clients accepts.")(function)
    return click.option(
        "--curve-server-key", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
        help="The daemon's public key file (its NAME.key): connect with CURVE encryption and "
             "authentication, as the daemon's curve_secret_key requires.")(function)


def secure(socket: Any, server_key: Path | None, key: Path | None) -> None:
    """Make ``socket`` a CURVE client as the options ask (nothing without ``--curve-server-key``)."""
    if server_key is None:
        if key is not None:
            raise click.UsageError("--curve-key needs --curve-server-key (the daemon's public key file)")
        return
    from genretag.daemon.curve import secure_client
    from genretag.daemon.keys import KeyFileError

    try:
        secure_client(socket, server_key, key)
    except KeyFileError as err:
        raise click.BadParameter(str(err), param_hint="--curve-server-key / --curve-key") from None
