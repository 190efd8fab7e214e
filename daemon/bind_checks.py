"""Validation of what the daemon exposes: where its sockets bind and with which CURVE keys.

Config validation (:mod:`genretag.daemon.config`) calls these for the event
publisher, each ``zmq:`` source and the metrics endpoint; they return problem
lines (``key: what is wrong``) instead of raising, so every problem of a file
is reported at once.

The rule: a ZeroMQ socket may bind a non-loopback address only with CURVE
authentication (a secret key *and* a list of authorised clients), or with
``allow_public = true`` as the operator's explicit choice to expose it plain.
Encryption without a client list accepts anyone who holds the daemon's public
key, which is meant to be handed out, so on its own it does not count as
authentication.  The metrics endpoint is plain HTTP with no ZeroMQ keys: it
keeps the ``allow_public`` rule (put a TLS proxy in front to expose it).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from genretag.daemon.keys import KeyFileError, read_clients, read_secret

KEYS_HINT = "`genretag keys generate DIR` writes a key pair"


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP literal; any other name or wildcard may reach the network."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; port 0: any free one) to its parts; ``ValueError`` if
    malformed.  The metrics endpoint's address."""
    host, sep, port = address.rpartition(":")
    if not sep or not _valid_host(host) or not _valid_port(port):
        raise ValueError(f"must be HOST:PORT with a port 0..65535 (0: any free port), got {address!r}")
    return host.strip("[]"), int(port)


def zmq_endpoint(address: str) -> str | None:
    """The host a ZeroMQ bind endpoint binds, or None for ``ipc://PATH`` (no network); ``ValueError``
    unless it is ``tcp://HOST:PORT`` (port 0..65535, ``*`` or 0: any free one) or ``ipc://PATH``.

    The event publisher's address and every ``zmq:`` source's.  libzmq itself
    refuses a port that is not a number only when the socket binds, after the
    model has loaded, and quietly binds a random port for one above 65535, so
    both are checked here, where ``check-config`` and ``serve`` see them alike.
    """
    scheme, sep, rest = address.partition("://")
    if sep and scheme == "ipc":
        if not rest:
            raise ValueError(f"ipc:// needs a socket file path, got {address!r}")
        return None
    if not sep or scheme != "tcp":
        raise ValueError(f"must be tcp://HOST:PORT or ipc://PATH, got {address!r}")
    host, sep, port = rest.rpartition(":")
    if not sep or not _valid_host(host) or not (port == "*" or _valid_port(port)):
        raise ValueError(
            f"must be tcp://HOST:PORT with a port 0..65535 (* or 0: any free port), got {address!r}"
        )
    return host.strip("[]")


def _valid_host(host: str) -> bool:
    """Non-empty, no blanks or slashes, IPv6 literals in brackets (``::1:5556`` would be ambiguous)."""
    if host.startswith("["):
        return host.endswith("]") and len(host) > 2
    return bool(host) and ":" not in host and not any(c.isspace() or c == "/" for c in host)


def _valid_port(port: str) -> bool:
    return port.isascii() and port.isdigit() and int(port) <= 65535


def zmq_socket(
    section: str,
    address_key: str,
    host: str | None,
    what: str,
    *,
    secret: str | None,
    clients: str | None,
    allow_public: bool,
) -> list[str]:
    """The key files of a ZeroMQ socket (``what``, configured in ``section``) and its bind on ``host``
    (``None`` for ``ipc://``, which never reaches the network)."""
    problems = curve_keys(section, secret, clients)
    authenticated = secret is not None and clients is not None
    if host is None or authenticated or allow_public or is_loopback(host):
        return problems
    return problems + [
        f"{address_key}: {what} binds {host!r}, which is not a loopback address, without authentication: "
        f"set curve keys ({section}.curve_secret_key = the daemon's secret key file and "
        f"{section}.curve_clients = a directory of the authorised clients' public keys; {KEYS_HINT}) "
        f"so only key holders connect, encrypted; or set {section}.allow_public = true to expose it "
        f"deliberately, unauthenticated and unencrypted"
    ]


def http_bind(key: str, host: str, section: str, what: str, *, allow_public: bool) -> list[str]:
    """An HTTP endpoint (``what``) binding ``host``: no keys exist for it, only the explicit opt-out."""
    if allow_public or is_loopback(host):
        return []
    return [
        f"{key}: {what} binds {host!r}, which is not a loopback address; it is plain HTTP without "
        f"authentication, so set {section}.allow_public = true to expose it deliberately (or keep it on "
        f"loopback behind a TLS proxy)"
    ]


def curve_keys(section: str, secret: str | None, clients: str | None) -> list[str]:
    """Every problem with a section's ``curve_secret_key`` and ``curve_clients`` files."""
    problems = []
    if secret is not None:
        try:
            read_secret(Path(secret))
        except KeyFileError as err:
            problems += [f"{section}.curve_secret_key: {problem}" for problem in err.problems]
    elif clients is not None:
        problems.append(
            f"{section}.curve_clients: needs {section}.curve_secret_key, the daemon's own "
            f"secret key file ({KEYS_HINT})"
        )
    if clients is not None:
        try:
            read_clients(Path(clients))
        except KeyFileError as err:
            problems += [f"{section}.curve_clients: {problem}" for problem in err.problems]
    return problems
