"""The per-stream families the daemon writes itself, and the /metrics endpoint serving them.

The text they write is judged by Prometheus' own tools: prometheus-client's
parser and ``promtool check metrics``, with stream ids that need escaping.
"""

from __future__ import annotations

import gzip
import threading
import urllib.request

import pytest
from helpers.daemon import promtool_check_metrics
from prometheus_client.parser import text_string_to_metric_families

from genretag.daemon.metrics import Metrics
from genretag.daemon.stream_series import StreamFamily, StreamLabels

AWKWARD = ['radio"1', "back\\slash", "ràdio-ü", "plain"]  # valid stream ids: printable, no whitespace


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def populated() -> Metrics:
    metrics = Metrics()
    metrics.scores.start(["rock", 'odd"genre'])
    for k, stream in enumerate(AWKWARD):
        metrics.windows_processed.inc(stream, k + 1)
        metrics.stream_up.set(stream, 1)
        metrics.label_changes.touch(stream)
        metrics.silence.inc(stream, 0.5)
        metrics.scores.latest[stream] = [0.25 * k, 1 - 0.25 * k]
    metrics.stream(metrics.windows_dropped, "plain", "queue_full").inc()
    return metrics


def test_rendered_series_parse_back_to_the_values_set() -> None:
    found = samples(populated().render().decode())
    for k, stream in enumerate(AWKWARD):
        assert found[("genretag_windows_processed_total", (("stream", stream),))] == k + 1
        assert found[("genretag_stream_up", (("stream", stream),))] == 1
        assert found[("genretag_label_changes_total", (("stream", stream),))] == 0
        assert found[("genretag_silence_seconds_total", (("stream", stream),))] == 0.5
        odd = ("genretag_smoothed_score", (("genre", 'odd"genre'), ("stream", stream)))
        assert found[odd] == 1 - 0.25 * k
    assert ("genretag_windows_silent_total", (("stream", "plain"),)) not in found  # never touched
    assert found[("genretag_windows_dropped_total", (("reason", "queue_full"), ("stream", "plain")))] == 1


def test_exposition_passes_promtool() -> None:
    lint = promtool_check_metrics(populated().render().decode())
    assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint


def test_forget_removes_every_series_of_a_stream() -> None:
    metrics = populated()
    metrics.forget('radio"1')
    text = metrics.render().decode()
    assert not [key for key in samples(text) if ("stream", 'radio"1') in key[1]]
    assert ("genretag_stream_up", (("stream", "plain"),)) in samples(text)


def test_a_counter_refuses_to_go_down_and_threads_writing_their_own_streams_lose_nothing() -> None:
    """The contract: one writer thread per stream; renders meanwhile see whole values."""
    family = StreamFamily("genretag_test", "counter", "A test.", StreamLabels())
    with pytest.raises(ValueError, match="only goes up"):
        family.inc("s", -1)
    done, torn = threading.Event(), []

    def bump(stream: str) -> None:
        for _ in range(20_000):
            family.inc(stream)

    def scrape() -> None:
        while not done.is_set():
            torn.extend(v for v in samples(family.render()).values() if v != int(v) or not 0 <= v <= 20_000)

    threads = [threading.Thread(target=bump, args=(f"s{k}",)) for k in range(4)]
    scraper = threading.Thread(target=scrape)
    scraper.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    scraper.join()
    assert not torn
    assert set(samples(family.render()).values()) == {20_000.0}


def test_endpoint_serves_the_render_plain_and_gzipped() -> None:
    metrics = populated()
    port = metrics.serve("127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as plain:
            assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = plain.read()
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as zipped:
            assert zipped.headers["Content-Encoding"] == "gzip"
            unzipped = gzip.decompress(zipped.read())
        assert samples(body.decode()) == samples(unzipped.decode()) == samples(metrics.render().decode())
    finally:
        metrics.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)
