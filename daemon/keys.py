"""CURVE key files: write a key pair, read one back, and say exactly what is wrong with a bad one.

The files are ZeroMQ's own certificate format (ZPL, as written by
``zmq.auth.create_certificates`` and czmq's ``zcert``): ``NAME.key`` holds the
public key and may be handed out; ``NAME.key_secret`` holds the public and the
secret key and must stay private.  A directory of ``*.key`` files is the list
of authorised clients (``curve_clients``), the layout pyzmq's and czmq's
authenticators read, so keys made by other ZeroMQ tools work unchanged.

Secret key files that other users may read are refused, not merely warned
about, as ssh refuses a private key with open permissions: a secret anyone on
the machine could copy lets them impersonate the daemon (or an authorised
client), and a warning in a log nobody reads would leave it that way.  Group
access is allowed so that a root-owned key can be given to the service's
group (``chmod 640``, ``chown root:genretag``).

Everything that can be wrong with a file (missing, unreadable, not a
certificate, a malformed key, a secret that does not match its public key) is
a :class:`KeyFileError` with one message per problem, so ``genretag
check-config`` can list them all at once.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
_KEY_CHARS = 40  # Z85 of 32 bytes


class KeyFileError(ValueError):
    """One or more key files are unusable; :attr:`problems` says what is wrong with each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def generate_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public, mode 0644) and ``NAME.key_secret`` (mode 0600) into ``directory``.

    The pair is made in a private temporary directory and moved into place, so
    the secret is never readable by others, not even for a moment; existing
    files are never overwritten (a key in use must not vanish by accident).
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"key name must be a plain file name, got {name!r}")
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}"
    existing = [str(p) for p in (public, secret) if p.exists()]
    if existing:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); remove it or pick another --name")
    with tempfile.TemporaryDirectory(dir=directory, prefix=".keys-") as private:  # mode 0700
        made_public, made_secret = (Path(p) for p in zmq.auth.create_certificates(private, name))
        made_secret.chmod(0o600)
        made_public.chmod(0o644)
        os.replace(made_secret, secret)
        os.replace(made_public, public)
    return public, secret


def _check_key(path: Path, what: str, key: bytes | None) -> bytes:
    if key is None:
        hint = "; a secret key is in NAME.key_secret, not NAME.key" if what == "secret" else ""
        raise KeyFileError(
            [f'{path}: no {what} key in it (not a ZeroMQ certificate with a {what}-key = "..." line{hint})']
        )
    try:
        if len(key) != _KEY_CHARS or len(z85.decode(key)) != 32:
            raise ValueError
    except (ValueError, KeyError, IndexError, TypeError):
        raise KeyFileError(
            [f"{path}: the {what} key is not a {_KEY_CHARS}-character Z85 CURVE key"]
        ) from None
    return key


def _load(path: Path) -> tuple[bytes | None, bytes | None]:
    """The (public, secret) keys of a certificate file, ``None`` for a missing one."""
    try:
        with path.open("rb"):
            pass
        return zmq.auth.load_certificate(path)
    except FileNotFoundError:
        raise KeyFileError([f"{path}: no such key file"]) from None
    except IsADirectoryError:
        raise KeyFileError([f"{path}: is a directory, not a key file"]) from None
    except OSError as err:
        raise KeyFileError([f"{path}: cannot read: {err.strerror or err}"]) from None
    except ValueError:  # no "public-key = ..." line at all
        return None, None


def read_public(path: Path) -> bytes:
    """The Z85 public key of a ``.key`` (or ``.key_secret``) file."""
    public, _ = _load(path)
    return _check_key(path, "public", public)


def read_secret(path: Path) -> tuple[bytes, bytes]:
    """The Z85 (public, secret) keys of a ``.key_secret`` file that only its owner and group may read."""
    public, secret = _load(path)
    secret = _check_key(path, "secret", secret)
    mode = path.stat().st_mode
    if mode & stat.S_IROTH:
        raise KeyFileError(
            [
                f"{path}: secret key file is readable by every user (mode "
                f"{stat.S_IMODE(mode):o}); refused because anyone on this machine could copy "
                f"it: chmod o-rwx {path}"
            ]
        )
    public = _check_key(path, "public", public)
    if zmq.curve_public(secret) != public:
        raise KeyFileError([f"{path}: the public key does not belong to the secret key"])
    return public, secret


def read_clients(directory: Path) -> frozenset[bytes]:
    """The public keys of every ``*.key`` file in ``directory``: the clients allowed to connect.

    An empty or missing directory is an error (it would lock everyone out, which
    is never what the operator meant), and so is any malformed ``*.key`` file
    (a typo must not silently drop a client); every problem is reported.
    """
    if not directory.is_dir():
        raise KeyFileError(
            [
                f"{directory}: no such directory (curve_clients is a directory of "
                f"authorised client {PUBLIC_SUFFIX} files)"
            ]
        )
    keys, problems = set(), []
    for path in sorted(directory.glob(f"*{PUBLIC_SUFFIX}")):
        try:
            keys.add(read_public(path))
        except KeyFileError as err:
            problems += err.problems
    if problems:
        raise KeyFileError(problems)
    if not keys:
        raise KeyFileError(
            [
                f"{directory}: holds no client public key ({PUBLIC_SUFFIX} file); "
                f"`genretag keys generate` writes one"
            ]
        )
    return frozenset(keys)
