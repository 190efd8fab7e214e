"""Audio input devices through PortAudio (python-sounddevice): listing, choosing, rescanning.

Kept apart from :mod:`.mic` so that ``genretag devices`` and the ``mic:``
source resolve a device the same way.  ``sounddevice`` is imported only when
a device is actually needed: importing it loads the PortAudio library, which
a daemon with no ``mic:`` source must not require.

While PortAudio initialises (on that import and on every :func:`rescan`),
sounddevice points file descriptor 2 at ``/dev/null`` to hide ALSA's probing
noise, for the whole process: a log line another thread wrote meanwhile was
lost (now and then the daemon's "serving:" line).  :func:`_logging_held`
makes such threads wait those few milliseconds instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any


class AudioDeviceError(RuntimeError):
    """PortAudio is missing or failing, or the requested input device does not exist."""


class DeviceMissing(AudioDeviceError):
    """The requested input device (or a default input) is not among PortAudio's devices.

    Kept apart from a failing device so that the ``mic:`` source can report the
    stream down with reason ``device_missing`` and list what does exist.
    """


@dataclass(frozen=True, slots=True)
class InputDevice:
    """One capture device as PortAudio lists it (``index`` is only stable until the next rescan)."""

    index: int
    name: str
    channels: int
    default_rate: float
    hostapi: str


@contextmanager
def _logging_held() -> Iterator[None]:
    """Hold the root logger's handlers (see the module docstring): other threads' log lines wait."""
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.acquire()
    try:
        yield
    finally:
        for handler in reversed(handlers):
            handler.release()


def portaudio() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio library into a clear error."""
    try:
        with _logging_held():
            import sounddevice
    except OSError as err:  # the Python package is there but libportaudio is not
        raise AudioDeviceError(
            f"cannot load PortAudio ({err}); install it, e.g. apt-get install libportaudio2"
        ) from None
    return sounddevice


def input_devices(sd: ModuleType) -> tuple[list[InputDevice], int | None]:
    """Capture devices and the index of the default input (None when PortAudio has none)."""
    try:
        hostapis = [api["name"] for api in sd.query_hostapis()]
        infos: Sequence[Mapping[str, Any]] = sd.query_devices()
        default = int(sd.default.device[0])
    except sd.PortAudioError as err:
        raise AudioDeviceError(f"PortAudio cannot list devices: {err}") from None
    devices = [
        InputDevice(
            i,
            str(d["name"]),
            int(d["max_input_channels"]),
            float(d["default_samplerate"]),
            hostapis[d["hostapi"]],
        )
        for i, d in enumerate(infos)
        if d["max_input_channels"] > 0
    ]
    return devices, default if any(d.index == default for d in devices) else None


def resolve_device(
    wanted: str | int | None, devices: Sequence[InputDevice], default: int | None
) -> InputDevice:
    """The input device meant by a ``mic:`` target.

    ``None`` or ``""`` is the default input; an int or a string of digits is an
    index; any other string is a case-insensitive part of the name, which must
    pick exactly one device unless one name equals it.  Names survive a
    re-plug where indices may not, so configurations should prefer them.
    """
    if wanted is None or wanted == "":
        if default is None:
            raise DeviceMissing(f"no default input device ({_available(devices)})")
        wanted = default
    if isinstance(wanted, int) or wanted.isdigit():
        index = int(wanted)
        for device in devices:
            if device.index == index:
                return device
        raise DeviceMissing(f"no input device with index {index} ({_available(devices)})")
    needle = wanted.lower()
    exact = [d for d in devices if d.name.lower() == needle]
    matches = exact or [d for d in devices if needle in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DeviceMissing(f"no input device matches {wanted!r} ({_available(devices)})")
    raise AudioDeviceError(
        f"{wanted!r} matches several input devices ({_available(matches)}); give more of the name or an index"
    )


def describe(devices: Sequence[InputDevice]) -> str:
    """The devices, one per line, as an operator needs them to pick one (index, name, channels, rate, API)."""
    if not devices:
        return "  (none: PortAudio lists no input devices)"
    return "\n".join(
        f"  {d.index}: {d.name} ({d.channels} ch, {d.default_rate:g} Hz, {d.hostapi})" for d in devices
    )


def _available(devices: Sequence[InputDevice]) -> str:
    if not devices:
        return "PortAudio lists no input devices"
    return "inputs: " + ", ".join(f"{d.index}: {d.name}" for d in devices)


_lock = threading.Lock()
_open_streams = 0


@contextmanager
def stream_slot() -> Iterator[None]:
    """Hold while a PortAudio stream is open, so that :func:`rescan` cannot close it underneath."""
    global _open_streams
    with _lock:
        _open_streams += 1
    try:
        yield
    finally:
        with _lock:
            _open_streams -= 1


def rescan(sd: ModuleType) -> bool:
    """Re-initialise PortAudio so that a re-plugged device shows up; returns whether it did.

    PortAudio enumerates devices once, at initialisation, and terminating it
    closes every open stream of the process; so this only happens while no
    stream is open.  Until then a device comes back only if it returns under
    the same system name (ALSA ``hw:N,M``), which is the usual case.
    """
    with _lock:
        if _open_streams:
            return False
        try:
            with _logging_held():
                sd._terminate()
                sd._initialize()
        except sd.PortAudioError as err:
            raise AudioDeviceError(f"PortAudio cannot re-initialise: {err}") from None
        return True
