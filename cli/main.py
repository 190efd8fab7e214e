"""Entry point of the ``genretag`` command.

Every sub-command lives in its own module and imports heavy libraries
(TensorFlow, Keras, librosa) inside its function body, so ``genretag --help``
stays instant.
"""

from __future__ import annotations

from importlib.metadata import version

import click

from genretag.cli import (
    classify_cmd,
    dataset_cmd,
    devices_cmd,
    evaluate_cmd,
    export_cmd,
    fleet_cmd,
    heads_cmd,
    keys_cmd,
    messages,
    send_cmd,
    serve_cmd,
    subscribe_cmd,
    tagger_cmd,
    train_cmd,
)


@click.group(cls=messages.Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version("genretag"), prog_name="genretag")
def cli() -> None:
    """genretag: music-genre tagging, from labelled audio to live streams.

    \b
    Live:     serve (the daemon), send / subscribe (its clients), devices, check-config,
              keys generate (CURVE keys for the daemon's ZeroMQ sockets)
    Offline:  dataset build -> train -> evaluate / compare / crossval
    Files:    classify FILES/DIRS (bundled default model unless --model is given)
    Models:   export MODEL_DIR (the ONNX export that serves without TensorFlow, for older artifacts)
    """


cli.add_command(dataset_cmd.dataset)
cli.add_command(train_cmd.train)
cli.add_command(train_cmd.compare)
cli.add_command(train_cmd.crossval)
cli.add_command(tagger_cmd.train_tagger)
cli.add_command(heads_cmd.train_heads)
cli.add_command(evaluate_cmd.evaluate)
cli.add_command(classify_cmd.classify)
cli.add_command(export_cmd.export)
cli.add_command(send_cmd.send)
cli.add_command(fleet_cmd.fleet)
cli.add_command(subscribe_cmd.subscribe)
cli.add_command(devices_cmd.devices)
cli.add_command(serve_cmd.serve)
cli.add_command(serve_cmd.check_config)
cli.add_command(keys_cmd.keys)


if __name__ == "__main__":
    cli()
