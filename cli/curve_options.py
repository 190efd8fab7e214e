"""``--curve-server-key`` / ``--curve-key``: the CURVE options shared by ``send`` and ``subscribe``.

Both clients connect to a daemon socket that may be a CURVE server
(``curve_secret_key`` in its config section); these options make the client
socket a CURVE client.  pyzmq and the key code are imported inside
:func:`secure` so ``genretag --help`` stays instant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def curve_options(function: F) -> F:
    """Add the two options to a click command (parameters ``curve_server_key`` and ``curve_key``)."""
    function = click.option(
        "--curve-key",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="FILE",
        help="This client's secret key file (NAME.key_secret of `genretag keys generate`), whose public "
        "key is in the daemon's curve_clients directory.  Without it a throw-away key is used, which "
        "only a daemon without curve_clients accepts.",
    )(function)
    return click.option(
        "--curve-server-key",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="FILE",
        help="The daemon's public key file (its NAME.key): connect with CURVE encryption and "
        "authentication, as the daemon's curve_secret_key requires.",
    )(function)


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


class Handshake:
    """Watches a client socket's ZeroMQ handshake, so a refused client says why and stops.

    Without this a refused producer would block once its queue is full and a
    refused subscriber would wait for events forever, both in silence, while
    the reason (no CURVE, a key the daemon does not list, the wrong server
    key) is known to libzmq.  Create it before ``connect``.
    """

    def __init__(self, socket: Any, curve: bool) -> None:
        import zmq

        hint = "pass --curve-server-key with its public key file (and --curve-key if it lists its clients)"
        self._failures: dict[int, str] = {
            zmq.EVENT_HANDSHAKE_FAILED_AUTH: "the daemon refused this client's key (not in the daemon's "
            "curve_clients; check --curve-key)",
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "the daemon's socket does not use CURVE: leave out "
            "--curve-server-key"
            if curve
            else f"the daemon requires CURVE: {hint}",
            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the handshake failed: is --curve-server-key the daemon's "
            "public key?"
            if curve
            else f"the handshake failed; if the daemon requires CURVE, {hint}",
        }
        self._succeeded = zmq.EVENT_HANDSHAKE_SUCCEEDED
        self.monitor = socket.get_monitor_socket(self._succeeded | sum(self._failures))
        self.done = False

    def check(self, timeout_ms: int | None = 0) -> None:
        """Read what the monitor has (waiting up to ``timeout_ms``; None: forever); a refusal raises
        ``click.ClickException``, a success sets :attr:`done`."""
        from zmq.utils.monitor import recv_monitor_message

        while self.monitor.poll(timeout_ms):
            event = int(recv_monitor_message(self.monitor)["event"])
            if event == self._succeeded:
                self.done = True
                return
            if event in self._failures:
                raise click.ClickException(f"connection refused: {self._failures[event]}")
            timeout_ms = 0

    def wait(self) -> None:
        """Block until the handshake succeeds (the daemon may start later) or is refused."""
        while not self.done:
            self.check(None)

    def close(self) -> None:
        self.monitor.close(linger=0)


def connect_client(
    context: Any,
    socket_type: int,
    address: str | Sequence[str],
    server_key: Path | None,
    key: Path | None,
    param_hint: str,
    configure: Callable[[Any], None] | None = None,
) -> tuple[Any, Handshake]:
    """A client socket of ``socket_type``, CURVE-secured if asked, connected to ``address`` (or to each of
    several: a subscriber of a fleet's daemons).

    ``configure`` sets socket options before connecting.  On failure the
    context is destroyed (nothing lingers) and a click error names the option
    at fault.
    """
    import zmq

    socket = context.socket(socket_type)
    try:
        if configure is not None:
            configure(socket)
        secure(socket, server_key, key)
        handshake = Handshake(socket, server_key is not None)
        for endpoint in [address] if isinstance(address, str) else address:
            where = endpoint
            socket.connect(endpoint)
    except click.ClickException:
        context.destroy(linger=0)
        raise
    except zmq.ZMQError as err:
        context.destroy(linger=0)
        raise click.BadParameter(f"{where}: {err}", param_hint=param_hint) from None
    return socket, handshake
