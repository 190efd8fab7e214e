"""``dataset build`` from and to an object store: ``s3://`` URLs against a real S3 server (moto's,
on loopback), locally and on Beam; the shards equal a local build's, byte for byte."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.audio_corpus import DATASET_SR

from genretag.models.artifact import sha256_file
from genretag.training.beam_build import on_beam
from genretag.training.dataset import BuildOptions, build_dataset
from genretag.training.layouts import read_layout
from genretag.training.storage import is_remote, list_ahead
from genretag.training.tfrecords import SHARD_RE

OPTIONS = BuildOptions(sample_rate=DATASET_SR, shard_size=2, workers=2)


def quiet(_msg: str) -> None:
    """A build log that drops messages."""


@pytest.fixture(scope="module")
def s3(corpus_manifest: Path) -> Iterator[object]:
    """An S3 server on 127.0.0.1 with the generated corpus under s3://genretag-src/corpus/; the
    s3fs filesystem that reaches it.  Credentials and endpoint go through the environment, as a
    user's would, so that the decoder processes and Beam's workers find them too."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = pytest.MonkeyPatch()
    for name, value in {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "genretag-test",
        "AWS_SECRET_ACCESS_KEY": "genretag-test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        env.setenv(name, value)
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir("genretag-src")
    fs.mkdir("genretag-out")
    fs.put(str(corpus_manifest.parent), "genretag-src/corpus", recursive=True)
    try:
        yield fs
    finally:
        env.undo()
        server.stop()


def remote_shard_hashes(fs: object, prefix: str) -> dict[str, str]:
    import hashlib

    files = [p for p in fs.ls(prefix) if SHARD_RE.match(p.rsplit("/", 1)[1])]  # type: ignore[attr-defined]
    return {p.rsplit("/", 1)[1]: hashlib.sha256(fs.cat(p)).hexdigest() for p in files}  # type: ignore[attr-defined]


def local_shard_hashes(directory: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in directory.iterdir() if SHARD_RE.match(p.name)}


def without_source(doc: dict) -> dict:
    """An index but its source block (path, and a fingerprint over the files' mtimes)."""
    return {k: v for k, v in doc.items() if k != "source"}


def test_a_build_from_s3_to_s3_equals_the_local_build(s3: object, built_dataset: Path) -> None:
    source, out = "s3://genretag-src/corpus/manifest.csv", "s3://genretag-out/local"
    first = build_dataset(source, out, OPTIONS, quiet)

    assert remote_shard_hashes(s3, "genretag-out/local") == local_shard_hashes(built_dataset)
    remote = json.loads(s3.cat("genretag-out/local/dataset.json"))  # type: ignore[attr-defined]
    local = json.loads((built_dataset / "dataset.json").read_text(encoding="utf-8"))
    assert without_source(remote) == without_source(local)
    assert remote["source"]["path"] == source
    assert "no such file" in {s["reason"] for s in remote["skipped"]}  # the manifest's missing clip
    assert not [p for p in s3.ls("genretag-out/local") if p.endswith(".tmp")]  # type: ignore[attr-defined]

    again = build_dataset(source, out, OPTIONS, quiet)
    assert (again.decoded, again.reused_shards) == (0, len(first.info.shards))


@pytest.mark.slow  # a Beam pipeline starts worker processes that import TensorFlow
def test_beam_from_s3_to_s3_equals_the_local_build(s3: object, built_dataset: Path) -> None:
    build_dataset(
        "s3://genretag-src/corpus/manifest.csv", "s3://genretag-out/beam", OPTIONS, quiet, on_beam("direct")
    )

    assert remote_shard_hashes(s3, "genretag-out/beam") == local_shard_hashes(built_dataset)
    remote = json.loads(s3.cat("genretag-out/beam/dataset.json"))  # type: ignore[attr-defined]
    local = json.loads((built_dataset / "dataset.json").read_text(encoding="utf-8"))
    assert without_source(remote) == without_source(local)
    assert not s3.exists("genretag-out/beam/.beam-reports")  # type: ignore[attr-defined]


def test_one_listing_answers_the_stat_of_every_clip(s3: object) -> None:
    scan = read_layout("s3://genretag-src/corpus/manifest.csv")
    fs = scan.root.fs  # type: ignore[attr-defined]
    fs.invalidate_cache()
    assert is_remote(scan.root) and not fs.dircache

    list_ahead(scan.root)
    folders = {str(clip.path.parent.path) for clip in scan.clips}  # type: ignore[attr-defined]
    assert folders and folders <= set(fs.dircache)  # what fsspec answers a stat from, without a request
