"""``dataset build --runner direct``: Apache Beam (DirectRunner, several processes) writes the same
files as the local build, byte for byte, on the shared corpus and on a corpus with broken files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.audio_corpus import DATASET_SR

from genretag.models.artifact import sha256_file
from genretag.training.beam_build import REPORTS_DIR, on_beam, pipeline_args
from genretag.training.dataset import BuildOptions, BuildRunnerError, build_dataset
from genretag.training.tfrecords import SHARD_RE


def quiet(_msg: str) -> None:
    """A build log that drops messages."""


def shard_hashes(directory: Path) -> dict[str, str]:
    """Every file of a built dataset but its index: name -> SHA-256."""
    return {p.name: sha256_file(p) for p in directory.iterdir() if SHARD_RE.match(p.name)}


def records_by_clip(directory: Path) -> dict[str, bytes]:
    """Every serialised record of the dataset, by its clip id (what "the same records" means)."""
    import tensorflow as tf

    records = {}
    for path in sorted(directory.glob("*.tfrecord")):
        for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            clip_id = tf.train.Example.FromString(raw).features.feature["clip_id"].bytes_list.value[0]
            records[clip_id.decode()] = raw
    return records


def index(directory: Path) -> dict:
    return json.loads((directory / "dataset.json").read_text(encoding="utf-8"))


def build_with_cli(source: Path, out: Path, *args: str) -> tuple[float, str]:
    """``genretag dataset build`` as a user runs it; (seconds, stderr)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "genretag.cli.main", "dataset", "build", str(source), "-o", str(out), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return time.monotonic() - started, done.stderr


@pytest.mark.slow  # each Beam pipeline starts worker processes that import TensorFlow
def test_shared_corpus_on_beam_equals_the_local_build(
    shared_music: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = shared_music / "manifest.csv"
    local_s, _ = build_with_cli(manifest, tmp_path / "local", "--workers", "2")
    beam_s, log = build_with_cli(manifest, tmp_path / "beam", "--workers", "2", "--runner", "direct")

    assert "--runner=DirectRunner --direct_running_mode=multi_processing --direct_num_workers=2" in log
    local, beam = tmp_path / "local", tmp_path / "beam"
    assert len(shard_hashes(local)) == 7
    assert shard_hashes(beam) == shard_hashes(local)
    records = records_by_clip(local)
    assert len(records) == 378
    assert records_by_clip(beam) == records
    assert index(beam) == index(local)
    assert not (beam / REPORTS_DIR).exists()
    with capsys.disabled():
        print(f"\nshared corpus, 2 processes: local {local_s:.1f} s, Beam DirectRunner {beam_s:.1f} s")


@pytest.mark.slow
def test_broken_files_are_skipped_alike_and_a_rerun_reuses_every_shard(
    corpus_manifest: Path, built_dataset: Path, tmp_path: Path
) -> None:
    options = BuildOptions(sample_rate=DATASET_SR, shard_size=2, workers=2)
    out = tmp_path / "beam"
    first = build_dataset(corpus_manifest, out, options, quiet, on_beam("direct"))

    assert first.written_shards == len(first.info.shards) and first.decoded
    assert index(out) == index(built_dataset)
    assert first.info.skipped and shard_hashes(out) == shard_hashes(built_dataset)
    again = build_dataset(corpus_manifest, out, options, quiet, on_beam("direct"))
    assert (again.decoded, again.written_shards, again.reused_shards) == (0, 0, len(first.info.shards))


@pytest.mark.slow
def test_a_failing_pipeline_is_an_error_and_leaves_no_index(corpus_manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "beam"
    out.mkdir()
    for total in range(1, 10):  # a folder where the first train shard's temp file goes: it can't be written
        (out / f"train-00000-of-{total:05d}.tfrecord.tmp").mkdir()
    options = BuildOptions(sample_rate=DATASET_SR, shard_size=4, workers=1)

    with pytest.raises(BuildRunnerError, match="the Beam pipeline failed: .*cannot write shard"):
        build_dataset(corpus_manifest, out, options, quiet, on_beam("direct", ["--direct_num_workers=1"]))
    assert not (out / "dataset.json").exists()


def test_user_options_come_last_so_they_win() -> None:
    args = pipeline_args("direct", 2, ["--direct_num_workers=8"])
    assert args[0] == "--runner=DirectRunner" and args[-1] == "--direct_num_workers=8"
    assert pipeline_args("flink", None, ["--flink_master=host:8081"])[0] == "--runner=FlinkRunner"


def test_without_the_beam_extra_a_beam_runner_says_what_to_install(
    corpus_manifest: Path, tmp_path: Path
) -> None:
    script = (
        "import sys\nsys.modules['apache_beam'] = None  # as if not installed\n"
        "from genretag.cli.main import cli\ncli(['dataset', 'build', *sys.argv[1:]])"
    )
    args = [str(corpus_manifest), "-o", str(tmp_path / "ds"), "--runner", "direct"]
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "genretag: error: this command needs apache_beam, part of the Apache Beam extra: "
        "pip install 'genretag[beam]'"
    )


def test_the_cli_offers_every_beam_runner() -> None:
    """``--runner``'s choices are spelled in the CLI (which must not import Beam for ``--help``)."""
    from genretag.cli.dataset_cmd import build
    from genretag.training.beam_build import RUNNERS

    runner = next(p for p in build.params if p.name == "runner")
    assert list(runner.type.choices) == ["local", *RUNNERS]  # type: ignore[attr-defined]
