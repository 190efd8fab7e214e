"""Sharding streams over a fleet of daemons: Prometheus' hashmod, the plan, refusing other shards' streams."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers.predictors import ConstantPredictor

from genretag.daemon.config import Config, ConfigError, FleetConfig, load_config
from genretag.daemon.fleet import Shard, moves, plan, shard_of
from genretag.daemon.metrics import Metrics
from genretag.daemon.sources.base import Chunk
from genretag.daemon.tagging import Tagger


def test_the_hash_is_prometheus_hashmod() -> None:
    """The expected values are Prometheus' own relabel tests (model/relabel/relabel_test.go): a
    ``hashmod`` relabel over a ``stream`` label with the same modulus picks the same daemon."""
    assert shard_of("baz", 1000) == 976
    assert shard_of("foo\nbar", 1000) == 734
    assert shard_of("anything", 1) == 0
    with pytest.raises(ValueError):
        shard_of("x", 0)


def test_streams_spread_evenly_and_a_resize_moves_what_modulo_hashing_moves() -> None:
    streams = [f"radio{i}" for i in range(3000)]
    sizes = [len(owned) for owned in plan(streams, 3).values()]
    assert sum(sizes) == 3000 and max(sizes) - min(sizes) < 150  # binomial spread: sd ~26
    moved = moves(streams, 3, 4)
    assert 0.70 < len(moved) / 3000 < 0.80  # modulo: 1 - 1/4 of the streams change daemon
    assert all(shard_of(s, 3) == old and shard_of(s, 4) == new for s, old, new in moved)
    assert moves(streams, 3, 3) == []


def test_a_shard_owns_its_streams_only() -> None:
    shards = [Shard(3, i) for i in range(3)]
    owners = Counter(sum(s.owns(f"s{k}") for s in shards) for k in range(300))
    assert owners == {1: 300}
    assert Shard().owns("anything")
    with pytest.raises(ValueError):
        Shard(3, 3)


def test_the_shard_index_must_be_below_the_shards(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[fleet]\nshards = 3\nindex = 3\n")
    with pytest.raises(ConfigError, match=r"fleet.index: must be below fleet.shards \(3\)"):
        load_config(path, check_model=False)
    assert load_config(path, {"fleet.index": 2}, check_model=False).fleet == FleetConfig(3, 2)


def test_a_daemon_refuses_and_counts_the_streams_of_other_shards() -> None:
    events: list[dict[str, object]] = []
    metrics = Metrics()
    config = replace(Config(), fleet=FleetConfig(shards=2, index=0))
    tagger = Tagger(config, ConstantPredictor([0.9, 0.1]), events.append, metrics)
    tagger.start()
    streams = [f"s{k}" for k in range(20)]
    audio = (0.3 * np.sin(np.arange(4000) / 5)).astype(np.float32)
    for stream in streams:
        tagger.audio(Chunk(stream, audio, 8000, 0.0))
    tagger.close()
    up = {e["stream"] for e in events if e.get("state") == "up"}
    assert up == {s for s in streams if shard_of(s, 2) == 0} and 0 < len(up) < 20
    text = metrics.render().decode()
    refused = 20 - len(up)
    assert (
        f'genretag_source_errors_total{{kind="other_shard",source_kind="zmq",stream="?"}} {refused:.1f}'
        in text
    )


def test_fleet_plan_lists_every_daemon_and_what_moves(tmp_path: Path) -> None:
    config = tmp_path / "fleet.toml"
    config.write_text(
        '[[source]]\nspec = "url:https://radio.example.org/a.mp3"\nname = "station-a"\n'
        '[[source]]\nspec = "zmq:tcp://127.0.0.1:5555"\n'
    )
    args = ["fleet", "plan", str(config), "--shards", "3", "--from", "2", "--stream", "radio1", "--json"]
    out = subprocess.run(
        [sys.executable, "-m", "genretag.cli.main", *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    daemons = result["daemons"]
    assert sorted(daemons) == ["0", "1", "2"] and sorted(sum(daemons.values(), [])) == ["radio1", "station-a"]
    for stream in ("radio1", "station-a"):
        assert stream in daemons[str(shard_of(stream, 3))]
    assert result["moves"] == [
        {"stream": s, "from": shard_of(s, 2), "to": shard_of(s, 3)}
        for s in ("station-a", "radio1")
        if shard_of(s, 2) != shard_of(s, 3)
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "genretag.cli.main", "fleet", "plan", "--shards", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "no streams" in bad.stderr
