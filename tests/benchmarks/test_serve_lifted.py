"""benchmarks.serve_lifted: the daemon_e2e launcher that lets limits.max_streams pass 10,000."""

from __future__ import annotations

import pytest

from benchmarks import serve_lifted
from genretag.daemon import config


def test_lift_stream_limit_relaxes_only_max_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {"limits": {"max_streams": 15016}, "source": [{"spec": "zmq:tcp://127.0.0.1:5999"}]}
    with pytest.raises(config.ConfigError, match="max_streams"):
        config.parse_config(raw, check_model=False)
    monkeypatch.setattr(config, "_RULES", dict(config._RULES))  # undone after the test
    serve_lifted.lift_stream_limit()
    assert config.parse_config(raw, check_model=False).limits.max_streams == 15016
    with pytest.raises(config.ConfigError, match="max_streams"):
        config.parse_config({**raw, "limits": {"max_streams": 0}}, check_model=False)
    with pytest.raises(config.ConfigError, match="max_batch_size"):
        config.parse_config({**raw, "batch": {"max_batch_size": 5000}}, check_model=False)
