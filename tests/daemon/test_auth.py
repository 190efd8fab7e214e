"""CURVE on the daemon's ZeroMQ sockets, end to end: the daemon, ``genretag send`` and ``genretag
subscribe`` as subprocesses, real sockets on loopback, key files written by the project's own code."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import soundfile as sf
import zmq
from helpers.daemon import SR, Daemon, Producer, clip, expected_windows, free_port, genretag

from genretag.daemon.keys import generate_keypair

MakeProducer = Callable[[str], Producer]

SECONDS = 6


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """``daemon`` pair; ``producer`` and ``subscriber`` authorised (public key in clients/); ``rogue`` not."""
    root = tmp_path / "keys"
    generate_keypair(root, "daemon")
    generate_keypair(root, "rogue")
    for name in ("producer", "subscriber"):
        _, secret = generate_keypair(root / "clients", name)
        secret.rename(root / secret.name)
    return root


def _ended(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.mark.slow
def test_keys_admit_their_holders_and_refuse_and_count_everyone_else(
    artifact: Path, tmp_path: Path, keys: Path, producer_factory: MakeProducer
) -> None:
    """Input with a client list: the keyed producer is tagged; an unkeyed and a wrong-keyed producer are
    refused and counted and do not disturb it.  Input without a client list: any producer holding the
    daemon's public key gets in.  Publisher with a client list: the keyed subscriber gets events; an
    unkeyed and a wrong-keyed one get nothing and are counted."""
    listed, open_port = free_port(), free_port()
    config = tmp_path / "curve.toml"
    config.write_text(  # relative key paths: relative to the file
        '[publish]\ncurve_secret_key = "keys/daemon.key_secret"\ncurve_clients = "keys/clients"\n'
        f'[[source]]\nspec = "zmq:tcp://127.0.0.1:{listed}?idle=1"\n'
        'curve_secret_key = "keys/daemon.key_secret"\ncurve_clients = "keys/clients"\n'
        f'[[source]]\nspec = "zmq:tcp://127.0.0.1:{open_port}?idle=1"\n'
        'curve_secret_key = "keys/daemon.key_secret"\n'
    )
    wav = tmp_path / "classical.wav"
    sf.write(wav, clip("classical", SECONDS, seed=1), SR)
    server = ("--curve-server-key", keys / "daemon.key")
    with Daemon(
        "--config",
        config,
        "--model",
        artifact,
        "--print",
        "--publish",
        "tcp://127.0.0.1:*",
        "--metrics",
        "127.0.0.1:0",
    ) as daemon:
        assert any("input socket: CURVE, 2 authorised client key(s)" in line for line in daemon.log)
        assert any("input socket: CURVE, any client holding" in line for line in daemon.log)
        for socket in ("input", "publish"):  # the series exist before the first refusal, for alerts
            assert f'genretag_auth_failures_total{{socket="{socket}"}} 0.0' in daemon.scrape()
        events = daemon.events_address
        keyed_sub = genretag(
            "subscribe",
            events,
            *server,
            "--curve-key",
            keys / "subscriber.key_secret",
            "--json",
            "--type",
            "label",
            "--stream",
            "keyed",
            "--count",
            1,
            "--timeout",
            90,
        )
        unkeyed_sub = genretag("subscribe", events)
        rogue_sub = genretag("subscribe", events, *server, "--curve-key", keys / "rogue.key_secret")
        daemon.wait_for(
            lambda: daemon.metric("genretag_auth_failures_total", socket="publish") >= 2,
            30,
            "the unkeyed and the rogue subscriber to be refused",
        )

        send = ("send", wav, "--rate", 0)
        keyed = genretag(
            *send,
            "--to",
            f"tcp://127.0.0.1:{listed}",
            "--stream",
            "keyed",
            *server,
            "--curve-key",
            keys / "producer.key_secret",
        )
        rogue = genretag(
            *send,
            "--to",
            f"tcp://127.0.0.1:{listed}",
            "--stream",
            "rogue",
            *server,
            "--curve-key",
            keys / "rogue.key_secret",
        )
        anyone = genretag(*send, "--to", f"tcp://127.0.0.1:{open_port}", "--stream", "anyone", *server)
        unkeyed = producer_factory(f"tcp://127.0.0.1:{listed}")
        unkeyed.socket.setsockopt(zmq.SNDTIMEO, 2000)
        try:  # once libzmq has torn down the refused connection, a PUSH has no peer and sends block
            unkeyed.send("unkeyed", clip("electronic", SECONDS, seed=2))
        except zmq.Again:
            pass
        for proc in (keyed, anyone):
            code, _, err = _ended(proc)
            assert code == 0, err
        code, _, err = _ended(rogue)  # told why at once, not left queueing in silence
        assert code == 1 and "connection refused: the daemon refused this client's key" in err, err
        want = expected_windows(SECONDS * SR)
        for stream in ("keyed", "anyone"):
            daemon.wait_for(
                lambda s=stream: (
                    daemon.metric(
                        "genretag_windows_processed_total",  # type: ignore
                        stream=s,
                    )
                    == want
                ),
                60,
                f"every window of {stream}",
            )
        daemon.wait_for(
            lambda: daemon.metric("genretag_auth_failures_total", socket="input") >= 2,
            30,
            "the unkeyed and the rogue producer to be counted",
        )

        code, out, err = _ended(keyed_sub, 60)
        assert code == 0, err
        assert '"stream":"keyed"' in out and '"label":"classical"' in out, out
        for proc, why in (
            (unkeyed_sub, "requires CURVE"),
            (rogue_sub, "the daemon refused this client's key"),
        ):
            code, out, err = _ended(proc)
            assert (code, out) == (1, "") and "connection refused: " in err and why in err, err

        for stream in ("keyed", "anyone"):
            assert daemon.labels(stream) == ["classical"], stream
        assert daemon.stream_events("rogue") == daemon.stream_events("unkeyed") == []
        assert daemon.metric("genretag_decode_errors_total") == 0
        assert daemon.metric("genretag_windows_dropped_total") == 0
        assert any("input socket refused a connection" in line for line in daemon.log)
        assert daemon.stop() == 0


@pytest.mark.slow
def test_public_bind_without_keys_fails_check_config_and_serve(artifact: Path, tmp_path: Path) -> None:
    """A public bind without authentication is refused before anything binds, with what to do about it."""
    config = tmp_path / "public.toml"
    config.write_text(
        f'[model]\npath = "{artifact}"\n[publish]\naddress = "tcp://0.0.0.0:{free_port()}"\n'
        f'[[source]]\nspec = "zmq:tcp://0.0.0.0:{free_port()}"\n'
    )
    for command in (("check-config", config), ("serve", "--config", config)):
        code, out, err = _ended(genretag(*command), 90)
        lines = [line for line in (out + err).splitlines() if "set curve keys" in line]
        assert code == 1 and len(lines) == 2, (command, out, err)
        assert "publish.allow_public = true" in lines[1] and "publish.curve_clients" in lines[1]
        assert "source[0].allow_public = true" in lines[0] and "source[0].curve_secret_key" in lines[0]
        assert "Traceback" not in err and "serving:" not in err
