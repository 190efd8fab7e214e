"""The ``mic:`` source, device choice and ``genretag devices``.

The end-to-end tests capture through the real PortAudio and ALSA libraries
from ALSA devices defined in a test configuration (``ALSA_CONFIG_PATH``): a
``file`` plugin that plays a raw tone file as its capture data, behind a
``plug`` that converts it to what PortAudio asks for.  No sound card or
kernel module is needed.  Those devices are not paced by a clock: PortAudio
reads them as fast as it can, so the tests keep only the first chunks and
run for well under a second each.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.recording_sink import RecordingSink

from genretag.cli.main import cli
from genretag.daemon.sources import devices as devices_module
from genretag.daemon.sources.base import Chunk
from genretag.daemon.sources.devices import AudioDeviceError, InputDevice, portaudio, rescan, resolve_device
from genretag.daemon.sources.mic import MicSource

TONE_HZ = 1000.0
FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "backoff_jitter": 0.0}

ALSA_DEVICES = """
pcm.genretag_tone_raw {{ type file; slave.pcm "null"; file "/dev/null"; infile "{tone}"; format "raw" }}
pcm.genretag_tone {{ type plug; slave {{ pcm "genretag_tone_raw"; format S16_LE; rate 48000; channels 2 }} }}
"""
LATE_DEVICE = 'pcm.genretag_late { type plug; slave { pcm "genretag_tone_raw"; format S16_LE } }\n'


@pytest.fixture
def alsa_config(tmp_path: Path) -> Iterator[Path]:
    """PortAudio re-initialised on test ALSA devices; restored afterwards.  Yields the config file."""
    t = np.arange(2 * 48000) / 48000
    tone = (0.5 * 32767 * np.sin(2 * np.pi * TONE_HZ * t)).astype("<i2")
    (tmp_path / "tone.raw").write_bytes(np.repeat(tone, 2).tobytes())  # S16_LE, 2 channels interleaved
    config = tmp_path / "asound.conf"
    config.write_text(ALSA_DEVICES.format(tone=tmp_path / "tone.raw"))
    sd = portaudio()
    old = os.environ.get("ALSA_CONFIG_PATH")
    os.environ["ALSA_CONFIG_PATH"] = f"/usr/share/alsa/alsa.conf:{config}"
    try:
        assert rescan(sd)
        yield config
    finally:
        if old is None:
            del os.environ["ALSA_CONFIG_PATH"]
        else:
            os.environ["ALSA_CONFIG_PATH"] = old
        rescan(sd)


@pytest.fixture
def started() -> Iterator[list[MicSource]]:
    sources: list[MicSource] = []
    yield sources
    for src in sources:
        src.stop(5.0)


def _start(
    started: list[MicSource], device: str | int | None, **options: float
) -> tuple[MicSource, RecordingSink]:
    src = MicSource("mic", device, **{**FAST, **options})  # type: ignore[arg-type]
    sink = RecordingSink(keep_chunks=20)
    started.append(src)
    src.start(sink)
    return src, sink


def _dominant_hz(samples: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * sr / len(samples))


def test_captures_the_device_through_portaudio(alsa_config: Path, started: list[MicSource]) -> None:
    src, sink = _start(started, "genretag_tone")  # also the prefix of genretag_tone_raw: exact name wins
    assert sink.wait_for(lambda s: len(s.chunks) >= 20, 10), (sink.states, sink.errors)
    t0 = time.monotonic()
    src.stop(5.0)
    assert time.monotonic() - t0 < 1.0
    assert sink.state_names() == ["up"] and not sink.errors
    first = sink.chunks[0]
    rate = first.sample_rate  # the device's default rate: ALSA's plug resamples the 48 kHz file to it
    assert first.stream == "mic" and first.samples.dtype == np.float32
    assert first.samples.shape == (round(rate * 0.1), 2)
    audio = np.concatenate([c.samples for c in sink.chunks[:10]])[:, 0]
    assert abs(_dominant_hz(audio, rate) - TONE_HZ) < 3
    assert 0.45 < np.abs(audio).max() < 0.55
    assert src._stream is None


def test_default_device_mono(alsa_config: Path, started: list[MicSource]) -> None:
    src, sink = _start(started, None, channels=1, sample_rate=48000, block_seconds=0.05)
    assert sink.wait_for(lambda s: len(s.chunks) >= 3, 10), (sink.states, sink.errors)
    assert sink.chunks[0].samples.shape == (2400,) and sink.chunks[0].sample_rate == 48000


class _FaultySink(RecordingSink):
    """Runs ``fault`` once, inside PortAudio's callback thread, on the next chunk after it is set."""

    def __init__(self) -> None:
        super().__init__(keep_chunks=20)
        self.fault: Callable[[], None] | None = None

    def audio(self, chunk: Chunk) -> None:
        super().audio(chunk)
        fault, self.fault = self.fault, None
        if fault is not None:
            fault()


def _abort_stream() -> None:
    raise portaudio().CallbackAbort  # ends the stream from its own thread, as a device error does


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (_abort_stream, "the input stream stopped (device lost?)"),
        (lambda: time.sleep(1.0), "stalled: no audio from the device for 0.3 s"),
    ],
)
def test_recovers_when_the_stream_fails(
    fault: Callable[[], None], reason: str, alsa_config: Path, started: list[MicSource]
) -> None:
    src = MicSource("mic", "genretag_tone", stall_seconds=0.3, **FAST)  # type: ignore[arg-type]
    started.append(src)
    sink = _FaultySink()
    src.start(sink)
    assert sink.wait_for(lambda s: s.state_names() == ["up"], 10), (sink.states, sink.errors)
    sink.fault = fault
    assert sink.wait_for(lambda s: s.state_names() == ["up", "down", "up"], 10), (sink.states, sink.errors)
    assert sink.states[1][2:] == ("device_error", reason)
    assert [kind for _, kind, _ in sink.errors] == ["device"]


def test_device_plugged_in_later(
    alsa_config: Path, started: list[MicSource], caplog: pytest.LogCaptureFixture
) -> None:
    """Missing at start: down with device_missing at once, the inputs that exist logged once, retried."""
    caplog.set_level(logging.INFO, logger="genretag.daemon.sources.mic")
    src, sink = _start(started, "genretag_late")
    assert sink.wait_for(lambda s: len(s.errors) >= 2, 10), (sink.states, sink.errors)
    assert [kind for _, kind, _ in sink.errors[:2]] == ["device_missing"] * 2
    listings = [r.getMessage() for r in caplog.records if "Input devices PortAudio lists" in r.getMessage()]
    assert len(listings) == 1 and "input device 'genretag_late' not found" in listings[0]
    assert any(line.startswith("  ") and ": genretag_tone (" in line for line in listings[0].splitlines())
    assert sink.state_names() == ["down"] and sink.states[0][2] == "device_missing"
    assert "no input device matches 'genretag_late'" in sink.states[0][3]
    with alsa_config.open("a") as f:  # "plug it in": the next retry rescans PortAudio's device list
        f.write(LATE_DEVICE)
    assert sink.wait_for(lambda s: s.state_names() == ["down", "up"], 10), (sink.states, sink.errors)


def test_overflow_is_reported_and_block_copied() -> None:
    src = MicSource("mic", None)
    sink = RecordingSink()
    src._sink, src._rate = sink, 48000
    block = np.ones((480, 1), np.float32)
    src._callback(block, 480, None, SimpleNamespace(input_overflow=True))
    block[:] = 0  # PortAudio reuses its buffer
    assert sink.state_names() == ["up"] and [k for _, k, _ in sink.errors] == ["overflow"]
    assert sink.chunks[0].samples.shape == (480,) and sink.chunks[0].samples.min() == 1.0


DEVICES = [
    InputDevice(0, "HDA Intel PCH: ALC892 Analog (hw:0,0)", 2, 44100.0, "ALSA"),
    InputDevice(3, "USB Audio CODEC: - (hw:1,0)", 2, 48000.0, "ALSA"),
    InputDevice(4, "usb audio codec", 1, 48000.0, "ALSA"),
    InputDevice(7, "pulse", 32, 44100.0, "ALSA"),
]


@pytest.mark.parametrize(
    ("wanted", "index"),
    [
        (None, 7),
        ("", 7),
        (3, 3),
        ("3", 3),
        ("hw:1,0", 3),
        ("USB AUDIO CODEC", 4),
        ("alc892", 0),
    ],
)
def test_resolve_device(wanted: str | int | None, index: int) -> None:
    assert resolve_device(wanted, DEVICES, default=7).index == index


@pytest.mark.parametrize(
    ("wanted", "default", "message"),
    [
        (None, None, "no default input device"),
        (5, 7, "no input device with index 5"),
        ("usb", 7, "matches several input devices"),
        ("webcam", 7, "no input device matches 'webcam' (inputs: 0: HDA"),
    ],
)
def test_resolve_device_errors(wanted: str | int | None, default: int | None, message: str) -> None:
    with pytest.raises(AudioDeviceError, match=message.replace("(", r"\(")):
        resolve_device(wanted, DEVICES, default)


def test_devices_command_lists_inputs(alsa_config: Path) -> None:
    result = CliRunner().invoke(cli, ["devices"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["INDEX", "CH", "RATE", "HOST", "API", "NAME"]
    assert any(line.endswith("ALSA      genretag_tone") for line in lines)
    assert sum(line.startswith("*") for line in lines) == 1


@pytest.mark.parametrize("failure", ["no devices", "no portaudio"])
def test_devices_command_without_audio(failure: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if failure == "no devices":
        monkeypatch.setattr(devices_module, "input_devices", lambda sd: ([], None))
        expected = "no audio input devices found"
    else:

        def missing() -> None:
            raise AudioDeviceError("cannot load PortAudio; install it, e.g. apt-get install libportaudio2")

        monkeypatch.setattr(devices_module, "portaudio", missing)
        expected = "apt-get install libportaudio2"
    result = CliRunner().invoke(cli, ["devices"])
    assert result.exit_code == 1 and expected in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
