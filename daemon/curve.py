"""CURVE on the daemon's ZeroMQ sockets: encryption, client authentication, refusals counted.

A socket given :class:`ServerKeys` becomes a CURVE server: every connection
is encrypted and the client must know the daemon's public key.  With a
client list (``curve_clients``) the client's own key must also be on it;
without one, any client holding the daemon's public key is accepted
(encrypted, but the client is not authenticated), which the config allows on
loopback only.

Client keys are checked by one ZAP handler for the whole ZeroMQ context
(pyzmq's :class:`~zmq.auth.thread.ThreadAuthenticator`), each socket in its
own ZAP domain with its own list.  pyzmq's ``configure_curve`` cannot mix
"any client" and "these clients" in one authenticator (its allow-any switch
is global), so every domain gets a credentials callback instead.

Refused connections never reach the daemon's code, so a socket monitor
watches each protected socket for failed handshakes: a client without CURVE
(mechanism mismatch), with the wrong server key (undecryptable hello), or
with a key not on the list (ZAP denial).  Each one calls ``on_refused(label)``
(the daemon counts them in ``genretag_auth_failures_total{socket}``) and is
logged at most every ``LOG_EVERY_SECONDS`` per socket.  A refused client
keeps reconnecting (libzmq's reconnect interval), and every attempt counts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from genretag.daemon.keys import read_clients, read_public, read_secret

log = logging.getLogger(__name__)

REFUSALS: dict[int, str] = {
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake failed",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "no CURVE or the wrong server key",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "client key not authorised",
}
LOG_EVERY_SECONDS = 10.0
POLL_MS = 100


@dataclass(frozen=True)
class ServerKeys:
    """A CURVE server's key pair (Z85) and the clients it accepts (``None``: any client)."""

    public: bytes
    secret: bytes
    clients: frozenset[bytes] | None = None


def load_server_keys(secret_file: str | Path, clients_dir: str | Path | None) -> ServerKeys:
    """Read a ``.key_secret`` file and an optional directory of client ``.key`` files (``KeyFileError``)."""
    public, secret = read_secret(Path(secret_file))
    return ServerKeys(public, secret, None if clients_dir is None else read_clients(Path(clients_dir)))


def secure_client(socket: zmq.Socket[Any], server_key_file: Path, key_file: Path | None) -> None:
    """Make ``socket`` a CURVE client of the server whose public key is in ``server_key_file``.

    ``key_file`` is the client's ``.key_secret``; without one a fresh key pair
    is made, which only a server without a client list accepts.  Call before
    ``connect``; raises ``KeyFileError``.
    """
    server = read_public(server_key_file)
    public, secret = read_secret(key_file) if key_file is not None else zmq.curve_keypair()
    socket.curve_serverkey = server
    socket.curve_publickey = public
    socket.curve_secretkey = secret


class _Allowed:
    """The credentials callback of one ZAP domain (pyzmq's ``configure_curve_callback`` protocol)."""

    def __init__(self, clients: frozenset[bytes] | None) -> None:
        self.clients = clients

    def callback(self, domain: str, key: bytes) -> bool:
        return self.clients is None or key in self.clients


class CurveGuard:
    """Turns bound sockets into CURVE servers and counts the connections they refuse.

    Use :meth:`server` for a hook to call on a new socket before it binds.  The
    ZAP handler starts with the first protected socket; :meth:`close` stops it
    and the monitors, after the protected sockets are closed.
    """

    def __init__(self, on_refused: Callable[[str], None], context: zmq.Context[Any] | None = None) -> None:
        self._on_refused = on_refused
        self._context = context or zmq.Context.instance()
        self._authenticator: ThreadAuthenticator | None = None
        self._monitors: list[tuple[threading.Thread, zmq.Socket[Any]]] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def server(self, keys: ServerKeys, label: str) -> Callable[[zmq.Socket[Any]], None]:
        """A hook that makes a socket a CURVE server with ``keys``; refusals are reported as ``label``."""
        return lambda socket: self._protect(socket, keys, label)

    def _protect(self, socket: zmq.Socket[Any], keys: ServerKeys, label: str) -> None:
        if socket.context is not self._context:
            raise ValueError("a protected socket must belong to the guard's ZeroMQ context")
        with self._lock:
            if self._authenticator is None:
                self._authenticator = ThreadAuthenticator(self._context, log=log.getChild("zap"))
                self._authenticator.start()
            domain = f"genretag-{len(self._monitors)}"
            self._authenticator.configure_curve_callback(domain, credentials_provider=_Allowed(keys.clients))
            socket.zap_domain = domain.encode()
            socket.curve_server = True
            socket.curve_publickey = keys.public
            socket.curve_secretkey = keys.secret
            monitor = socket.get_monitor_socket(sum(REFUSALS))
            thread = threading.Thread(
                target=self._watch, args=(monitor, label), name=f"curve-{label}", daemon=True
            )
            self._monitors.append((thread, monitor))
        thread.start()

    def _watch(self, monitor: zmq.Socket[Any], label: str) -> None:
        refused, logged = 0, -LOG_EVERY_SECONDS
        while not self._stopping.is_set():
            if not monitor.poll(POLL_MS):
                continue
            event = recv_monitor_message(monitor)
            why = REFUSALS.get(int(event["event"]))
            if why is None:
                continue  # EVENT_MONITOR_STOPPED when the socket closes
            self._on_refused(label)
            refused += 1
            now = time.monotonic()
            if now - logged >= LOG_EVERY_SECONDS:
                log.warning(
                    "%s socket refused a connection: %s (%d refused so far; logged at most every %g s)",
                    label,
                    why,
                    refused,
                    LOG_EVERY_SECONDS,
                )
                logged = now

    def close(self) -> None:
        """Stop watching and stop the ZAP handler; call after the protected sockets are closed."""
        self._stopping.set()
        with self._lock:
            for thread, monitor in self._monitors:
                thread.join(2 * POLL_MS / 1000 + 1)
                monitor.close(linger=0)
            self._monitors.clear()
            if self._authenticator is not None:
                self._authenticator.stop()
                self._authenticator = None
