"""What the sockets of the ingest processes share: bounds, the arrival stamp, cheap multipart I/O.

The high-water marks are in messages, at both ends of each socket; see
:mod:`~genretag.daemon.ingest.pool` for why they are this small.
"""

from __future__ import annotations

import multiprocessing
import os
import struct
from typing import Any

import zmq

POLL_MS = 100  # how often a receiving loop looks at its stop flag, idle streams and its parent
ARRIVAL = struct.Struct("<d")  # the router's time.monotonic() at a message's arrival, its last part
MAX_WINDOWS_PER_MESSAGE = 64  # a worker sends its results once this many windows wait
AUDIO_HWM = 100  # producers' messages (at most limits.max_frame_bytes each) on the relay and in each inbox
RESULTS_HWM = 2  # results messages (up to MAX_WINDOWS_PER_MESSAGE windows, 12 MB for the bundled models)

_NOBLOCK, _SNDMORE = int(zmq.NOBLOCK), int(zmq.SNDMORE)


def recv_frames(socket: zmq.Socket[Any]) -> list[zmq.Frame]:
    """One multipart message as ``zmq.Frame`` parts, without blocking (``zmq.Again`` if none is waiting).

    ``recv_multipart`` does the same with a socket option read and flag-enum
    arithmetic per part, about three times the cost (``benchmarks/RESULTS.md``),
    which a receiver thread of 10,000 messages a second feels.
    """
    frame = socket.recv(_NOBLOCK, copy=False)
    parts = [frame]
    while frame.more:
        frame = socket.recv(0, copy=False)
        parts.append(frame)
    return parts


def send_frames(socket: zmq.Socket[Any], parts: list[Any]) -> None:
    """``send_multipart(parts, copy=False)`` at :func:`recv_frames`' price."""
    for part in parts[:-1]:
        socket.send(part, _SNDMORE, copy=False)
    socket.send(parts[-1], 0, copy=False)


def daemon_pid() -> int:
    """The pid of the daemon that started this process, to notice when it is gone (``os.getppid()`` changes).

    Not ``os.getppid()`` read at the start: a daemon killed while this process was still importing has
    already left it to init, and waiting for that pid to change would wait for ever.
    """
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid is not None else os.getppid()
