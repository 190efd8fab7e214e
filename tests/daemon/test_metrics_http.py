"""The /metrics server: any path gives the exposition, /ready a status code following the daemon's state."""

from __future__ import annotations

import urllib.error
import urllib.request

from genretag.daemon.metrics import CONTENT_TYPE, Metrics


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode()


def test_ready_follows_the_daemon_and_metrics_answer_on_any_other_path() -> None:
    metrics = Metrics()
    port = metrics.serve("127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    try:
        assert get(f"{base}/ready") == (503, "not ready\n")
        status, text = get(f"{base}/metrics")
        assert status == 200 and "genretag_ready 0.0" in text
        metrics.set_ready(True)
        assert get(f"{base}/ready") == (200, "ready\n")
        assert "genretag_ready 1.0" in get(f"{base}/anything")[1]
        metrics.set_ready(False)  # stopping
        assert get(f"{base}/ready")[0] == 503
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            assert response.headers["Content-Type"] == CONTENT_TYPE
    finally:
        metrics.close()
