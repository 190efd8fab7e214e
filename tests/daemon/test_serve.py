"""``genretag serve`` end to end: the daemon as a subprocess, real sockets on 127.0.0.1, no mocks.

Uses the fast artifacts of ``conftest.py``; the bundled default model has its
own test in ``test_serve_default.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import zmq
from helpers.daemon import (
    LABELS,
    SR,
    Daemon,
    Producer,
    clip,
    expected_windows,
    free_port,
    genretag,
    not_live,
    promtool_check_metrics,
)
from prometheus_client.parser import text_string_to_metric_families

from genretag.models.artifact import read_manifest

MakeProducer = Callable[[str], Producer]
ANY_PORTS = ("--publish", "tcp://127.0.0.1:*", "--metrics", "127.0.0.1:0")


def test_send_subscribe_and_metrics_end_to_end(artifact: Path, tmp_path: Path) -> None:
    """The acceptance run: serve + genretag send + genretag subscribe + /metrics scraped twice + promtool."""
    p1, p2, p3 = free_port(), free_port(), free_port()
    program = tmp_path / "program.wav"
    sf.write(program, np.concatenate([clip("classical", 15, 1), clip("electronic", 15, 1)]), SR)
    with Daemon(
        "--model",
        artifact,
        "--source",
        f"zmq:tcp://127.0.0.1:{p1}",
        "--publish",
        f"tcp://127.0.0.1:{p2}",
        "--metrics",
        f"127.0.0.1:{p3}",
    ) as daemon:
        assert daemon.events_address == f"tcp://127.0.0.1:{p2}"
        assert daemon.metrics_url == f"http://127.0.0.1:{p3}/metrics"
        before = daemon.scrape()
        subscriber = genretag(
            "subscribe", f"tcp://127.0.0.1:{p2}", "--type", "label", "--count", 2, "--timeout", 60
        )
        sender = genretag(
            "send", program, "--to", f"tcp://127.0.0.1:{p1}", "--stream", "e2e", "--rate", 8, "--loop"
        )
        started = time.monotonic()
        try:
            out, err = subscriber.communicate(timeout=120)
        finally:
            sender.send_signal(signal.SIGINT)
            sender.communicate(timeout=10)
        assert subscriber.returncode == 0, err
        lines = out.splitlines()
        assert len(lines) == 2 and all(" e2e " in line and " label " in line for line in lines), lines
        assert {"classical", "electronic"} <= {word for line in lines for word in line.split()}, lines
        after = daemon.scrape()
        processed = daemon.metric("genretag_windows_processed_total", stream="e2e")
        print(
            f"\ne2e: {processed:.0f} windows in {time.monotonic() - started:.1f} s "
            f"(audio sent at 8x real time = 16 windows/s)"
        )
        assert daemon.stop() == 0

    def value(text: str, name: str, labels: str = "") -> float:
        lines = [
            line
            for line in text.splitlines()
            if line.startswith(name + labels + " ") or (not labels and line.startswith(name + " "))
        ]
        return float(lines[0].split()[-1]) if lines else 0.0

    for name, labels in [
        ("genretag_windows_processed_total", '{stream="e2e"}'),
        ("genretag_inference_batch_size_count", ""),
        ("genretag_inference_duration_seconds_count", ""),
        ("genretag_end_to_end_latency_seconds_count", ""),
        ("genretag_events_published_total", '{type="label"}'),
        ("genretag_label_changes_total", '{stream="e2e"}'),
    ]:
        assert value(after, name, labels) > value(before, name, labels), name
    assert value(after, "genretag_stream_up", '{stream="e2e"}') == 1
    assert 'genretag_smoothed_score{genre="electronic",stream="e2e"}' in after
    fingerprint = read_manifest(artifact).fingerprint()
    assert f'fingerprint="{fingerprint}"' in after and 'labels="classical,electronic,noise"' in after
    lint = promtool_check_metrics(after)
    assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_program_of_clips_with_silences(
    artifact: Path, tmp_path: Path, producer_factory: MakeProducer, workers: int
) -> None:
    """One stream: the right label once per clip, a silence state in each gap, no flapping.

    The same story with the stream windowed in ingest worker processes (``workers=2``).
    """
    port = free_port()
    program = [
        ("classical", 12),
        ("silence", 4),
        ("electronic", 12),
        ("silence", 4),
        ("noise", 12),
        ("silence", 4),
        ("classical", 12),
    ]
    audio = np.concatenate([clip(genre, seconds, seed=i) for i, (genre, seconds) in enumerate(program)])
    with Daemon(
        "--config",
        not_live(tmp_path / "burst.toml"),
        "--model",
        artifact,
        "--source",
        f"zmq:tcp://127.0.0.1:{port}?idle=1&workers={workers}",
        "--print",
        *ANY_PORTS,
    ) as daemon:
        producer_factory(f"tcp://127.0.0.1:{port}").send("radio", audio)  # 60 s of audio at once
        daemon.wait_for(
            lambda: bool(
                daemon.stream_events("radio", "state")
                and daemon.stream_events("radio", "state")[-1]["state"] == "down"
            ),
            60,
            "the stream to end",
        )
        assert daemon.metric("genretag_windows_dropped_total") == 0
        assert daemon.stop() == 0
    events = daemon.stream_events("radio", "label", "state")
    story = [e["label"] if e["type"] == "label" else e["state"] for e in events]
    assert story == [
        "up",
        "classical",
        "silence",
        None,
        "recovered",
        "electronic",
        "silence",
        None,
        "recovered",
        "noise",
        "silence",
        None,
        "recovered",
        "classical",
        "down",
        None,
    ], story
    assert [e["reason"] for e in events if e["type"] == "label" and e["label"] is None] == ["silence"] * 3 + [
        "idle"
    ]
    starts = np.cumsum([0] + [seconds for _, seconds in program])
    silences = [e["pos"] for e in events if e.get("state") == "silence"]
    for pos, gap in zip(silences, (1, 3, 5), strict=True):
        assert starts[gap] + 1.5 <= pos <= starts[gap + 1], (pos, starts[gap])  # hold time 2 s
    labels = [e for e in events if e["type"] == "label" and e["label"] is not None]
    for event, clip_index in zip(labels, (0, 2, 4, 6), strict=True):
        assert starts[clip_index] < event["pos"] < starts[clip_index] + 6, (event, starts[clip_index])
        assert event["prev"] is None and event["confidence"] > 0.5
        assert set(event["scores"]) == set(LABELS)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 3])
def test_many_streams_with_a_garbage_producer(
    artifact: Path, tmp_path: Path, producer_factory: MakeProducer, workers: int
) -> None:
    """12 streams tagged independently and correctly; garbage is refused, counted and harms no one.

    With ``workers=3`` the streams are spread over three ingest processes and the
    garbage is refused there (wrong part counts by the router), counted the same.
    """
    config = not_live(tmp_path / "limits.toml", "[limits]\nmax_frame_bytes = 65536\n")  # sent in a burst
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    streams = {f"s{i:02d}": LABELS[i % 3] for i in range(12)}
    audio = {name: clip(genre, 8, seed=i) for i, (name, genre) in enumerate(streams.items())}
    source = f"zmq:{address}?idle=1&workers={workers}"
    with Daemon("--config", config, "--model", artifact, "--source", source, "--print", *ANY_PORTS) as daemon:
        good, bad = producer_factory(address), producer_factory(address)
        bad.frame("garbage", clip("noise", 0.1))  # a valid first frame: the stream exists, then misbehaves
        int16_header = b'{"sr":8000,"channels":1,"dtype":"int16","seq":%d}'
        nan = np.full(800, np.nan, np.float32).tobytes()
        garbage = [
            [b"garbage", b"{not json", b"\x00\x00"],
            [b"garbage", int16_header % 1, b"\x01\x02\x03"],
            [b"garbage", b'{"sr":8000,"channels":1,"dtype":"float32","seq":2}', nan],
            [b"garbage", int16_header % 3, b"\x00" * 65540],
            [b"garbage", b'{"sr":8000,"channels":1,"dtype":"int8","seq":4}', b"\x00" * 10],
            [b"bad id", int16_header % 0, b"\x00\x00"],
            [b"garbage", int16_header % 5],
            [b"garbage", int16_header % 6, b"\x00" * (4 << 20)],
        ]  # beyond MAXMSGSIZE: libzmq drops it
        started = time.monotonic()
        step = SR // 10
        for k in range(0, 8 * SR, step):
            for name, samples in audio.items():
                good.frame(name, samples[k : k + step])
            if k // step < len(garbage):
                bad.socket.send_multipart(garbage[k // step])
        total = 12 * expected_windows(8 * SR)
        daemon.wait_for(lambda: daemon.metric("genretag_windows_processed_total") >= total, 60, "all windows")
        elapsed = time.monotonic() - started
        daemon.wait_for(
            lambda: all(
                daemon.stream_events(n, "state") and daemon.stream_events(n, "state")[-1]["state"] == "down"
                for n in streams
            ),
            30,
            "all streams to end",
        )
        scrape_metric = daemon.metric
        for name, genre in streams.items():
            assert daemon.labels(name) == [genre], name
            assert scrape_metric("genretag_windows_processed_total", stream=name) == expected_windows(8 * SR)
        assert scrape_metric("genretag_windows_dropped_total") == 0
        for reason in ("bad_header", "odd_byte_count", "nan", "too_large", "bad_dtype", "parts"):
            assert scrape_metric("genretag_decode_errors_total", stream="garbage", reason=reason) == 1, reason
        assert scrape_metric("genretag_decode_errors_total", stream="?", reason="bad_stream_id") == 1
        batches = scrape_metric("genretag_inference_batch_size_count")
        print(
            f"\n12 streams: {total} windows in {elapsed:.1f} s = {total / elapsed:.0f} windows/s, "
            f"mean batch {scrape_metric('genretag_inference_batch_size_sum') / batches:.1f}"
        )
        assert daemon.stop() == 0


@pytest.mark.slow
def test_sighup_swaps_models_without_loss_and_sigterm_is_prompt(
    artifacts: tuple[Path, Path], tmp_path: Path, producer_factory: MakeProducer
) -> None:
    first, second = artifacts
    broken = tmp_path / "broken"
    shutil.copytree(first, broken)
    model_file = broken / "model.skops"
    model_file.write_bytes(model_file.read_bytes()[:-100])  # truncated: refused by its SHA-256
    port = free_port()
    config = tmp_path / "serve.toml"

    def configure(model: Path) -> None:
        config.write_text(
            f'[model]\npath = "{model}"\n[publish]\naddress = "tcp://127.0.0.1:*"\n'
            f'[metrics]\naddress = "127.0.0.1:0"\n'
            f'[[source]]\nspec = "zmq:tcp://127.0.0.1:{port}?idle=60"\n'
        )

    configure(first)
    audio = clip("electronic", 24, seed=3)
    with Daemon("--config", config) as daemon:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sub = context.socket(zmq.SUB)
        sub.connect(daemon.events_address)
        sub.subscribe(b"genretag.state.")
        producer = producer_factory(f"tcp://127.0.0.1:{port}")
        sender = threading.Thread(target=producer.send, args=("live", audio), kwargs={"rate": 4})
        sender.start()
        t0 = time.monotonic()
        try:
            daemon.wait_for(lambda: daemon.metric("genretag_windows_processed_total") > 4, 30, "windows")
            configure(second)
            daemon.proc.send_signal(signal.SIGHUP)
            new = read_manifest(second).fingerprint()
            daemon.wait_for(lambda: daemon.metric("genretag_model_info", fingerprint=new) == 1, 30, "swap")
            assert daemon.metric("genretag_model_reloads_total", result="ok") == 1
            configure(broken)
            daemon.proc.send_signal(signal.SIGHUP)
            daemon.wait_for(
                lambda: daemon.metric("genretag_model_reloads_total", result="failed") == 1,
                30,
                "the refused reload",
            )
            assert daemon.metric("genretag_model_info", fingerprint=new) == 1
            processed_during_swaps = daemon.metric("genretag_windows_processed_total")
            print(f"\nswaps done after {time.monotonic() - t0:.1f} s")
        finally:
            sender.join()
        assert processed_during_swaps < expected_windows(len(audio)), "the swaps happened after the audio"
        daemon.wait_for(
            lambda: (
                daemon.metric("genretag_windows_processed_total", stream="live")
                == expected_windows(len(audio))
            ),
            30,
            "every window scored",
        )
        assert daemon.metric("genretag_windows_dropped_total") == 0
        assert any("reload refused" in line and "SHA-256" in line for line in daemon.log)
        stopping = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - stopping < 5
        states = []
        while "down" not in states and sub.poll(3000):
            topic, body = sub.recv_multipart()
            assert topic == b"genretag.state.live"
            states.append(json.loads(body)["state"])
        context.destroy(linger=0)
        # idle=60: the stream was still up, so this down was published at shutdown ("up" may have been
        # published before the subscription reached the daemon)
        assert states[-1:] == ["down"] and states.count("down") == 1, states


@pytest.mark.slow
def test_systemd_notify_protocol(artifact: Path, tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}
    received: list[str] = []

    def until(word: str) -> None:
        while not any(word in message for message in received):
            received.append(listener.recv(4096).decode())

    with Daemon("--model", artifact, "--source", "zmq:tcp://127.0.0.1:*", *ANY_PORTS, env=env) as daemon:
        until("READY=1")
        until("WATCHDOG=1")
        assert daemon.stop() == 0
    until("STOPPING=1")
    listener.close()
    ready = next(message for message in received if "READY=1" in message)
    assert "STATUS=0 streams up" in ready
    assert received.count("WATCHDOG=1") >= 1


@pytest.mark.slow
def test_bad_config_and_busy_port_fail_fast(artifact: Path, tmp_path: Path) -> None:
    """Start-up errors exit 1 with a clear line: a public bind without allow_public, a busy address."""
    proc = genretag(
        "serve", "--model", artifact, "--publish", "tcp://0.0.0.0:5999", "--source", "zmq:tcp://127.0.0.1:*"
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "publish.allow_public = true" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        proc = genretag(
            "serve",
            "--model",
            artifact,
            "--source",
            f"zmq:tcp://127.0.0.1:{busy.getsockname()[1]}",
            *ANY_PORTS,
        )
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "cannot start" in err and "Traceback" not in err, err


@pytest.mark.slow
def test_metrics_answer_while_the_model_loads(tmp_path: Path) -> None:
    """Issue 14.9: /metrics answers from the first second with genretag_ready 0; 1 and the load time once
    the daemon serves.  The bundled default model takes seconds to load, so the first scrape sees it load."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    proc = genretag(
        "serve",
        "--model",
        "default",
        "--source",
        "zmq:tcp://127.0.0.1:*",
        "--publish",
        "tcp://127.0.0.1:*",
        "--metrics",
        f"127.0.0.1:{port}",
    )
    started = time.monotonic()

    def scrape() -> dict[str, float] | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return None
        return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}

    def ready_status() -> int | None:
        """/ready's status code (what a Kubernetes readiness probe reads), None before it answers."""
        try:
            with urllib.request.urlopen(url.replace("/metrics", "/ready"), timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except OSError:
            return None

    try:
        first, starting = None, None
        while (first is None or starting is None) and proc.poll() is None and time.monotonic() - started < 60:
            starting = ready_status()  # before the scrape: ready only goes from 0 to 1 while it starts
            first = scrape()
            time.sleep(0.05)
        assert first is not None, "no /metrics while starting"
        assert first["genretag_ready"] == 0 and first["genretag_model_load_seconds"] == 0
        assert starting == 503
        print(f"\n/metrics answered {time.monotonic() - started:.2f} s after the start")
        while (latest := scrape()) is not None and latest["genretag_ready"] == 0:
            assert proc.poll() is None and time.monotonic() - started < 120
            time.sleep(0.2)
        assert latest is not None and latest["genretag_ready"] == 1
        assert 0 < latest["genretag_model_load_seconds"] < time.monotonic() - started
        assert ready_status() == 200
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        assert "# TYPE genretag_ready gauge" in text and "# TYPE genretag_model_load_seconds gauge" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
