"""``mic:`` source: a microphone or line input through PortAudio (python-sounddevice).

PortAudio calls :meth:`MicSource._callback` on its own real-time thread with
each block; the callback copies the block into a :class:`~.base.Chunk` and
hands it to the sink, nothing more: it never waits, so a slow daemon cannot
make the sound card lose audio (the daemon drops and counts on its side).
Overflows that PortAudio reports anyway are passed on as ``overflow`` errors.

A supervisor thread opens the stream and watches it.  When the device fails
(a USB card unplugged: PortAudio stops the stream, or the callbacks simply
stop coming), the stream goes ``down`` and the supervisor retries with
exponential backoff, re-resolving the device by name each time and
rescanning PortAudio's device list where it safely can, until the card is
back.  ``stop()`` closes the stream and reports nothing: the daemon knows.

A device that is not there at start (a typo, a card not plugged in) is
retried the same way, but reported at once: the stream goes ``down`` with
reason ``device_missing`` (a failing device says ``device_error``), the
error is counted as ``source_errors_total{kind="device_missing"}``, and the
log names, once, every input device PortAudio does list, so the operator
can fix the name without another tool.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

import numpy as np

from genretag.daemon.options import Problem, check_built, option
from genretag.daemon.protocol import DEFAULT_LIMITS, ErrorKind, Limits
from genretag.daemon.sources.backoff import Backoff, BackoffOptions
from genretag.daemon.sources.base import BuildEnv, Chunk, SourceSink, SourceWorker, deliver
from genretag.daemon.sources.devices import (
    AudioDeviceError,
    DeviceMissing,
    describe,
    input_devices,
    portaudio,
    rescan,
    resolve_device,
    stream_slot,
)

log = logging.getLogger(__name__)

_TICK = 0.25  # seconds between the supervisor's checks of the stream and the stop flag


def mic_stream_name(device: str) -> str:
    """The stream id of a ``mic:DEVICE`` source without a configured name: ``mic-DEVICE``, or ``mic``."""
    return f"mic-{device}" if device else "mic"


@dataclass(frozen=True)
class MicConfig(BackoffOptions):
    """The options of a ``mic:`` source (``[[source]]`` keys); see :class:`MicSource`."""

    sample_rate: int | None = option(None, lambda v: 1000 <= v <= 384000, "must be 1000..384000 Hz")
    channels: int | None = option(None, lambda v: 1 <= v <= 64, "must be 1..64")
    block_seconds: float = option(0.1, lambda v: 0.005 <= v <= 1.0, "must be 0.005..1 seconds")
    stall_seconds: float = option(5.0, lambda v: 0 < v <= 3600, "must be > 0 and at most 3600 seconds")
    backoff_max: float = option(30.0, lambda v: 0 < v <= 86400, "must be > 0 and at most 86400 seconds")

    def problems(self) -> list[Problem]:
        if self.stall_seconds <= self.block_seconds:
            return [("stall_seconds", f"must exceed block_seconds ({self.block_seconds:g})")]
        return super().problems()


class MicSource:
    """Captures one input device into one stream.

    Parameters
    ----------
    name : stream id.
    device : index, part of the device name, or None for the default input (see
        :func:`~.devices.resolve_device`; ``genretag devices`` lists them).
    sample_rate : capture rate in Hz; default: the device's own default rate, so
        that no resampling happens before the daemon's own.
    channels : captured channels; default: up to 2 of the device's (the daemon down-mixes).
    block_seconds : audio per callback (and per chunk).
    stall_seconds : no callback for this long counts as a device failure.
    backoff_initial, backoff_factor, backoff_max, backoff_jitter, stable_seconds :
        retry delays after a failure, see :class:`~.backoff.Backoff`.
    limits : each block is checked against them (:func:`~.base.deliver`).
    """

    def __init__(
        self,
        name: str,
        device: str | int | None = None,
        *,
        sample_rate: int | None = None,
        channels: int | None = None,
        block_seconds: float = 0.1,
        stall_seconds: float = 5.0,
        backoff_initial: float = 1.0,
        backoff_factor: float = 2.0,
        backoff_max: float = 30.0,
        backoff_jitter: float = 0.1,
        stable_seconds: float = 30.0,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        check_built(
            MicConfig(
                sample_rate=sample_rate,
                channels=channels,
                block_seconds=block_seconds,
                stall_seconds=stall_seconds,
                backoff_initial=backoff_initial,
                backoff_factor=backoff_factor,
                backoff_max=backoff_max,
                backoff_jitter=backoff_jitter,
                stable_seconds=stable_seconds,
            ),
            f"mic source {name!r}",
        )
        self.name = name
        self.device = device
        self.sample_rate = sample_rate
        self.channels = channels
        self.block_seconds = block_seconds
        self.stall_seconds = stall_seconds
        self.limits = limits
        self._backoff = Backoff(backoff_initial, backoff_factor, backoff_max, backoff_jitter, stable_seconds)
        self._worker = SourceWorker()
        self._stopping = self._worker.stopping
        self._sink: SourceSink | None = None
        self._stream: Any = None  # the open sounddevice.InputStream, for tests and diagnostics
        self._rate = 0
        self._last_block = 0.0
        self._in_callback = False  # PortAudio's thread is running our Python code (see _watch)
        self._up = False

    @classmethod
    def from_config(cls, name: str, target: str, config: MicConfig, env: BuildEnv) -> MicSource:
        """The source of a ``mic:DEVICE`` spec (:mod:`~genretag.daemon.sources.registry`): a device index,
        part of its name, or empty for the default input."""
        device: str | int | None = int(target) if target.isdigit() else (target or None)
        return cls(name, device, **asdict(config), limits=env.limits)

    def start(self, sink: SourceSink) -> None:
        """Start capturing in the background; device problems are reported through ``sink``."""
        if self._worker.started:
            raise RuntimeError(f"mic source {self.name!r} already started")
        self._sink = sink
        self._worker.start(self._run, f"mic-{self.name}")

    def stop(self, timeout: float = 5.0) -> None:
        """Close the stream and join the supervisor (at most ``timeout`` seconds)."""
        if not self._worker.stop(timeout):
            log.warning("mic source %r did not stop within %.1f s", self.name, timeout)

    def _run(self) -> None:
        assert self._sink is not None
        reported_down = listed = False
        try:
            sd = portaudio()
        except AudioDeviceError as err:
            self._sink.state(self.name, "down", "device_error", str(err))
            self._sink.error(self.name, ErrorKind.DEVICE, str(err))
            log.error("mic source %r: %s", self.name, err)
            return
        while not self._stopping.is_set():
            up_seconds, why, reason = self._capture(sd)
            if self._stopping.is_set():
                break
            if why == "device_missing" and not listed:
                listed = True
                self._log_devices(sd)
            if self._up or not reported_down:
                self._sink.state(self.name, "down", why, reason)
                reported_down = True
            self._up = False
            delay = self._backoff.next_delay(up_seconds)
            log.warning("mic source %r down: %s; retrying in %.1f s", self.name, reason, delay)
            kind = ErrorKind.DEVICE_MISSING if why == "device_missing" else ErrorKind.DEVICE
            self._sink.error(self.name, kind, f"{reason}; retrying in {delay:.1f} s")
            if self._stopping.wait(delay):
                break
            try:
                rescan(sd)
            except AudioDeviceError as err:
                log.warning("mic source %r: %s", self.name, err)

    def _log_devices(self, sd: ModuleType) -> None:
        """Say once, plainly, that the device is missing and which inputs exist."""
        try:
            devices, default = input_devices(sd)
        except AudioDeviceError as err:
            log.error("mic source %r: input device %r not found, and %s", self.name, self.device, err)
            return
        wanted = "the default input" if self.device in (None, "") else f"input device {self.device!r}"
        log.error(
            "mic source %r: %s not found; retrying with backoff until it appears. Input devices "
            "PortAudio lists (default: %s; `genretag devices` shows them too):\n%s",
            self.name,
            wanted,
            "none" if default is None else default,
            describe(devices),
        )

    def _capture(self, sd: ModuleType) -> tuple[float, str, str]:
        """Open the device and watch it until it fails or the source stops.

        Returns (seconds up, why as an event reason word, why in words).
        """
        with stream_slot():
            finished = threading.Event()
            try:
                devices, default = input_devices(sd)
                device = resolve_device(self.device, devices, default)
                self._rate = self.sample_rate or int(device.default_rate)
                channels = self.channels or min(2, device.channels)
                stream = sd.InputStream(
                    device=device.index,
                    samplerate=self._rate,
                    channels=channels,
                    dtype="float32",
                    blocksize=max(1, round(self._rate * self.block_seconds)),
                    latency="high",
                    callback=self._callback,
                    finished_callback=finished.set,
                )
            except DeviceMissing as err:
                return 0.0, "device_missing", f"cannot open input device: {err}"
            except (AudioDeviceError, sd.PortAudioError, ValueError) as err:
                return 0.0, "device_error", f"cannot open input device: {err}"
            self._last_block = time.monotonic()
            self._stream = stream
            try:
                stream.start()
                return self._watch(stream, finished)
            except sd.PortAudioError as err:
                return 0.0, "device_error", f"cannot start input device: {err}"
            finally:
                self._stream = None
                # stop, not abort: PortAudio's ALSA abort cancels (pthread_cancel) its callback thread,
                # which corrupts the interpreter if that thread is inside Python at that moment.
                stream.stop(ignore_errors=True)  # the device may already be gone: nothing to report
                stream.close(ignore_errors=True)

    def _watch(self, stream: Any, finished: threading.Event) -> tuple[float, str, str]:
        """Wait for the stream to fail; return how long audio flowed and why it ended (word, words)."""
        opened = time.monotonic()
        while not self._stopping.is_set():
            if finished.wait(_TICK):
                reason = "the input stream stopped (device lost?)"
            elif time.monotonic() - self._last_block > self.stall_seconds:
                reason = f"stalled: no audio from the device for {self.stall_seconds:g} s"
                if not self._in_callback:
                    # The callback thread hangs in the driver, where a stop would wait for it
                    # forever; cancelling it there is safe (it is not running Python).
                    stream.abort(ignore_errors=True)
            else:
                continue
            return (time.monotonic() - opened if self._up else 0.0), "device_error", reason
        return 0.0, "stopped", "stopped"

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio's thread: copy the block out (PortAudio reuses the buffer) and hand it on."""
        self._in_callback = True
        now = time.monotonic()
        self._last_block = now
        sink = self._sink
        assert sink is not None
        try:
            if not self._up:
                self._up = True
                log.info("mic source %r up at %d Hz", self.name, self._rate)
                sink.state(self.name, "up")
            if status.input_overflow:
                sink.error(self.name, ErrorKind.OVERFLOW, "input overflow: the device dropped audio")
            samples = indata[:, 0].copy() if indata.shape[1] == 1 else indata.copy()
            deliver(sink, Chunk(self.name, samples, self._rate, now), self.limits)
        finally:
            self._in_callback = False
