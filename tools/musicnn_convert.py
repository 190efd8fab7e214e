"""Convert the TF1 checkpoints of the musicnn wheel into genretag's Keras weights.

Four variants: ``MSD_musicnn`` and ``MTT_musicnn`` (:mod:`genretag.models.musicnn`),
``MSD_vgg`` and ``MTT_vgg`` (:mod:`genretag.models.musicnn_vgg`).

The ``musicnn==0.1.0`` wheel (ISC licence) cannot be installed next to modern
NumPy, but its checkpoints can be read: each variant directory holds files
literally named ``.index`` and ``.data-00000-of-00001``, i.e. a checkpoint whose
prefix is the directory path plus ``/``.  Its ``checkpoint`` file points at the
author's machine, so ``tf.train.load_checkpoint(directory)`` fails; the prefix is
opened directly instead.

Only model variables are taken; Adam slots and the ``beta*_power`` counters are
optimizer state.  The TF1 graph created its layers in a fixed order, so the
auto-generated scopes (``conv2d_5``, ``batch_normalization_9``, ...) map onto
this port's named layers as listed in :data:`CHECKPOINT_SCOPES` (musicnn) and
:data:`VGG_CHECKPOINT_SCOPES` (vgg).

Usage::

    python -m tools.musicnn_convert --wheel-dir DIR --out models/musicnn_weights/

Add ``--variants MSD_vgg MTT_vgg`` for the vgg taggers (not bundled).
``DIR`` may be a ``musicnn-*.whl`` file, a directory holding one, or an extracted
``musicnn`` package directory.  One ``<variant>.weights.npz`` is written per
variant; load it with :func:`genretag.models.musicnn.load_backbone_weights`.
"""

from __future__ import annotations

import argparse
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from genretag.models.musicnn import (
    VARIANTS,
    backbone_weights,
    build_musicnn_architecture,
    set_backbone_weights,
)
from genretag.models.musicnn_vgg import VGG_VARIANTS, build_vgg_architecture

#: Every variant the converter knows, musicnn first.
ALL_VARIANTS = (*VARIANTS, *VGG_VARIANTS)

#: Keras layer of the port -> variable scope of the TF1 checkpoint.
CHECKPOINT_SCOPES: dict[str, str] = {
    "input_bn": "batch_normalization",
    "timbral_7x38_conv": "conv2d",
    "timbral_7x38_bn": "batch_normalization_1",
    "timbral_7x67_conv": "conv2d_1",
    "timbral_7x67_bn": "batch_normalization_2",
    "temporal_128x1_conv": "conv2d_2",
    "temporal_128x1_bn": "batch_normalization_3",
    "temporal_64x1_conv": "conv2d_3",
    "temporal_64x1_bn": "batch_normalization_4",
    "temporal_32x1_conv": "conv2d_4",
    "temporal_32x1_bn": "batch_normalization_5",
    "midend_1_conv": "conv2d_5",
    "midend_1_bn": "batch_normalization_6",
    "midend_2_conv": "conv2d_6",
    "midend_2_bn": "batch_normalization_7",
    "midend_3_conv": "conv2d_7",
    "midend_3_bn": "batch_normalization_8",
    "pooled_bn": "batch_normalization_9",
    "penultimate_dense": "dense",
    "penultimate": "batch_normalization_10",
    "logits": "dense_1",
}
#: The same for the vgg variants (the TF1 graph named its convs "1CNN" ... "5CNN").
VGG_CHECKPOINT_SCOPES: dict[str, str] = {
    "input_bn": "batch_normalization",
    **{f"conv{i}": f"{i}CNN" for i in range(1, 6)},
    **{f"bn{i}": f"batch_normalization_{i}" for i in range(1, 6)},
    "logits": "dense",
}
OPTIMIZER_MARKERS = ("/Adam", "beta1_power", "beta2_power")


def _check_variant(variant: str) -> None:
    if variant not in ALL_VARIANTS:
        raise ValueError(f"unknown musicnn variant {variant!r}; expected one of {ALL_VARIANTS}")


def build_architecture(variant: str) -> keras.Model:
    """The untrained port of any of :data:`ALL_VARIANTS`."""
    _check_variant(variant)
    return build_vgg_architecture(variant) if variant in VGG_VARIANTS else build_musicnn_architecture(variant)


def checkpoint_scopes(variant: str) -> dict[str, str]:
    """Port layer -> checkpoint scope for ``variant``."""
    _check_variant(variant)
    return VGG_CHECKPOINT_SCOPES if variant in VGG_VARIANTS else CHECKPOINT_SCOPES


def checkpoint_prefix(checkpoint_dir: str | Path, variant: str) -> str:
    """Prefix of ``variant``'s checkpoint under ``checkpoint_dir``.

    ``checkpoint_dir`` is either the extracted ``musicnn`` package directory
    (holding ``<variant>/.index``) or the variant directory itself.
    """
    _check_variant(variant)
    root = Path(checkpoint_dir)
    for directory in (root / variant, root):
        if (directory / ".index").is_file():
            return f"{directory}/"
    raise FileNotFoundError(f"no {variant} checkpoint (<dir>/.index) under {root}")


def read_checkpoint(prefix: str) -> dict[str, np.ndarray]:
    """All model variables (no optimizer state) of the TF1 checkpoint at ``prefix``."""
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if not any(marker in name for marker in OPTIMIZER_MARKERS)
    }


def checkpoint_name(key: str, variant: str = "MSD_musicnn") -> str:
    """The checkpoint variable behind a port weight key ``"<layer>/<variable>"`` of ``variant``."""
    layer, variable = key.split("/")
    return f"{checkpoint_scopes(variant)[layer]}/{variable}"


def to_port_layout(key: str, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Reshape a checkpoint array to the port variable ``key`` of shape ``shape``.

    The port differs from TF1 only by singleton kernel axes: the mid-end's 2-D
    convs spanning all channels, ``(7, channels, 1, 64)``, are Conv1D kernels
    ``(7, channels, 64)``, and the temporal ``(width, 1, 1, 51)`` kernels run
    as ``(1, width, 1, 51)``.  Dropping or moving a size-1 axis keeps the
    element order, so a reshape is exact; anything else is refused.
    """
    if [d for d in value.shape if d != 1] != [d for d in shape if d != 1]:
        raise ValueError(f"{key}: checkpoint shape {value.shape} does not fit {shape}")
    return value.reshape(shape)


def convert_checkpoint(checkpoint_dir: str | Path, variant: str) -> dict[str, np.ndarray]:
    """Port weights ``{"<layer>/<variable>": array}`` from a musicnn TF1 checkpoint.

    Raises ``ValueError`` if the checkpoint holds a model variable that no port
    layer takes, or lacks one the port needs, so nothing can be dropped quietly.
    """
    tf1 = read_checkpoint(checkpoint_prefix(checkpoint_dir, variant))
    shapes = {key: value.shape for key, value in backbone_weights(build_architecture(variant)).items()}
    sources = {key: checkpoint_name(key, variant) for key in shapes}
    missing = sorted(set(sources.values()) - set(tf1))
    unused = sorted(set(tf1) - set(sources.values()))
    if missing or unused:
        raise ValueError(f"checkpoint does not match the port: missing {missing}, unused {unused}")
    return {key: to_port_layout(key, tf1[name], shapes[key]) for key, name in sources.items()}


def save_weights(model: keras.Model, out_path: str | Path) -> Path:
    """Write the backbone weights of ``model`` to an ``.npz`` (plain arrays, no pickle)."""
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Typed Any: numpy's stub would read the arrays as its allow_pickle flag (an array keyword, not a flag).
    arrays: dict[str, Any] = backbone_weights(model)
    with path.open("wb") as f:  # a file object stops np.savez from renaming the file
        np.savez(f, **arrays)
    return path


def extract_wheel(wheel: str | Path, dest: str | Path) -> Path:
    """Extract the musicnn checkpoints of ``wheel`` under ``dest``; return the package dir."""
    members_of = tuple(f"musicnn/{variant}/" for variant in ALL_VARIANTS)
    with zipfile.ZipFile(wheel) as archive:
        members = [name for name in archive.namelist() if name.startswith(members_of)]
        if not members:
            raise FileNotFoundError(f"{wheel}: holds no musicnn/{{{','.join(ALL_VARIANTS)}}}/")
        archive.extractall(dest, members=members)
    return Path(dest) / "musicnn"


def locate_package_dir(wheel_or_dir: str | Path, scratch: str | Path) -> Path:
    """The ``musicnn`` package directory behind a wheel file or a directory.

    Accepts an extracted package directory, a directory holding ``musicnn/``, a
    ``musicnn-*.whl`` file, or a directory holding one (as ``pip download``
    leaves it); wheels are extracted under ``scratch``.
    """
    path = Path(wheel_or_dir)
    if path.is_file() and path.suffix == ".whl":
        return extract_wheel(path, scratch)
    if path.is_dir():
        for candidate in (path, path / "musicnn"):
            if all((candidate / variant / ".index").is_file() for variant in VARIANTS):
                return candidate
        wheels = sorted(path.glob("musicnn-*.whl"))
        if wheels:
            return extract_wheel(wheels[-1], scratch)
    raise FileNotFoundError(
        f"{path}: neither a musicnn wheel nor a directory holding one or its extracted "
        "package; get it with `pip download --no-deps musicnn==0.1.0`"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.musicnn_convert",
        description="Convert musicnn TF1 checkpoints into genretag .weights.npz files.",
    )
    parser.add_argument(
        "--wheel-dir",
        required=True,
        type=Path,
        help="musicnn-0.1.0 wheel, a directory holding it, or its extracted package",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=ALL_VARIANTS,
        default=list(VARIANTS),
        help="default: the bundled musicnn variants; the vgg ones are not bundled",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        package_dir = locate_package_dir(args.wheel_dir, scratch)
        for variant in args.variants:
            model = build_architecture(variant)
            set_backbone_weights(model, convert_checkpoint(package_dir, variant))
            path = save_weights(model, args.out / f"{variant}.weights.npz")
            print(f"{variant}: {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
