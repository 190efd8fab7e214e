"""``genretag keys generate``: make CURVE key pairs for the daemon and its clients."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def keys() -> None:
    """CURVE keys that encrypt and authenticate the daemon's ZeroMQ sockets."""


@keys.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--name",
    default="genretag",
    show_default=True,
    help="Base name of the files: NAME.key (public) and NAME.key_secret (secret).",
)
def generate(directory: Path, name: str) -> None:
    """Write a new key pair into DIRECTORY (created if needed; existing files are never overwritten).

    \b
    NAME.key         the public key: hand it out.  The daemon's goes to its clients
                     (--curve-server-key); a client's goes into the daemon's
                     curve_clients directory.
    NAME.key_secret  the secret key, mode 0600: the daemon's is its
                     curve_secret_key, a client's is its --curve-key.
    """
    from genretag.daemon.keys import generate_keypair

    try:
        public, secret = generate_keypair(directory, name)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(
        f"public key: {public}\nsecret key: {secret} (mode 0600; never copy it off this machine unencrypted)"
    )
