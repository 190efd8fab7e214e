"""``genretag devices``: list the audio inputs a ``mic:`` source can capture from."""

from __future__ import annotations

import click


@click.command()
def devices() -> None:
    """List audio input devices: index, channels, default rate, host API and name.

    The default input is marked with *; `genretag serve --source mic:` uses
    it.  Pick another with mic:INDEX or mic:PART-OF-NAME; names survive a
    re-plug, indices may not.  Exits 1 with a message when PortAudio is
    missing or sees no input device (a container without a sound device).
    """
    from genretag.daemon.sources.devices import AudioDeviceError, input_devices, portaudio

    try:
        inputs, default = input_devices(portaudio())
    except AudioDeviceError as err:
        raise click.ClickException(str(err)) from None
    if not inputs:
        raise click.ClickException(
            "no audio input devices found (PortAudio lists none: no sound card, "
            "or none passed into this container)"
        )
    click.echo("   INDEX   CH      RATE  HOST API  NAME")
    for d in inputs:
        mark = "*" if d.index == default else " "
        click.echo(f"{mark} {d.index:>6}  {d.channels:>3}  {d.default_rate:>8g}  {d.hostapi:<8}  {d.name}")
