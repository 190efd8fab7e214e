"""``genretag send``: stream audio files or raw PCM into a daemon's ZeroMQ source.

This is the reference producer of the PCM format in
:mod:`genretag.daemon.protocol`; numpy and pyzmq are imported inside the
functions so ``genretag --help`` stays instant.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from genretag.cli.curve_options import connect_client, curve_options

if TYPE_CHECKING:
    import numpy as np
    import zmq

FALLBACK_SR = 44100
SEND_HWM = 50  # messages queued on the way to the daemon: a few seconds of audio
FINAL_LINGER_MS = 2000  # time the last queued messages get to leave at a normal end


class _Interrupts:
    """Ctrl-C (SIGINT) as KeyboardInterrupt, held back while a message is handed to libzmq.

    Installed explicitly, so Ctrl-C works even when ``send`` was started with
    SIGINT ignored (``nohup``, some CI runners, a shell's background job): Python
    leaves an inherited SIG_IGN in place.  And held back around a send because
    pyzmq checks for signals *after* libzmq has taken a message: an interrupt
    raised there would lose the message from the count of what was sent.
    """

    def __init__(self) -> None:
        self.holding = False
        self.pending = False
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.holding:
            self.pending = True
            return
        raise KeyboardInterrupt

    def hold(self) -> None:
        self.holding = True

    def release(self) -> None:
        """Stop holding; raise the interrupt that came meanwhile."""
        self.holding = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


class _Sender:
    """Numbers, sends and paces the messages of one stream.

    With ``rate > 0`` the messages follow an absolute schedule, the first
    message's time + audio sent / rate, as a live source would deliver them;
    sleep jitter and decoding time never accumulate into drift.  With
    ``rate == 0`` the only brake is waiting for room once ``SEND_HWM``
    messages wait for the daemon.

    :attr:`messages` and :attr:`seconds` count exactly what libzmq accepted:
    the wait for room can be interrupted, the hand-over itself (non-blocking)
    cannot.
    """

    def __init__(
        self, socket: zmq.Socket[bytes], stream_id: str, rate: float, interrupts: _Interrupts
    ) -> None:
        self.socket, self.stream_id, self.rate = socket, stream_id, rate
        self.interrupts = interrupts
        self.start: float | None = None
        self.seconds = 0.0
        self.messages = 0

    def send(self, chunk: np.ndarray, sr: int) -> None:
        import zmq

        from genretag.daemon.protocol import encode_frame

        if self.start is None:
            self.start = time.monotonic()
        parts = encode_frame(self.stream_id, chunk, sr, self.messages)
        while True:
            self.socket.poll(None, zmq.POLLOUT)  # interruptible: nothing is sent yet
            self.interrupts.hold()
            try:
                self.socket.send_multipart(parts, flags=zmq.NOBLOCK)
            except zmq.Again:  # room went away between poll and send: wait again
                continue
            else:
                self.messages += 1
                self.seconds += len(chunk) / sr
                break
            finally:
                self.interrupts.release()
        if self.rate > 0:
            delay = self.start + self.seconds / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def _file_chunks(path: Path, sr: int | None, chunk_ms: int) -> tuple[int, Iterator[np.ndarray]]:
    """Decode ``path`` to mono int16 at ``sr``, or at its own rate when libsndfile can tell it.

    Its own rate avoids a resampling step the daemon would undo anyway; a rate
    outside the format's range is brought to the nearest allowed one.
    """
    import soundfile as sf

    from genretag.daemon.protocol import DEFAULT_LIMITS
    from genretag.pipeline.audio import decode, float_to_int16

    if sr is None:
        try:
            native = int(sf.info(str(path)).samplerate)
            sr = min(max(native, DEFAULT_LIMITS.min_sr), DEFAULT_LIMITS.max_sr)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
            sr = FALLBACK_SR  # only ffmpeg reads it: any rate works, pick CD quality
    pcm = float_to_int16(decode(path, sr))
    step = max(1, sr * chunk_ms // 1000)
    return sr, (pcm[i : i + step] for i in range(0, len(pcm), step))


def _stdin_chunks(sr: int, channels: int, dtype: str, chunk_ms: int) -> Iterator[np.ndarray]:
    """Raw interleaved PCM from stdin in chunk-sized reads; a partial final frame is dropped."""
    import numpy as np

    from genretag.daemon.protocol import DTYPES

    frame_bytes = channels * DTYPES[dtype].itemsize
    read_bytes = max(1, sr * chunk_ms // 1000) * frame_bytes
    while data := sys.stdin.buffer.read(read_bytes):
        whole = len(data) - len(data) % frame_bytes
        if whole < len(data):
            click.echo(f"warning: stdin ended inside a frame; dropped {len(data) - whole} bytes", err=True)
        if whole:
            yield np.frombuffer(data[:whole], dtype=DTYPES[dtype]).reshape(-1, channels)


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--to",
    "addresses",
    required=True,
    multiple=True,
    metavar="tcp://HOST:PORT",
    help="The daemon's ZeroMQ source address (a zmq: source of genretag serve).  For a fleet of N "
    "daemons give N, in shard order (daemon 0 first): the stream goes to its own daemon "
    "(`genretag fleet plan` shows which).",
)
@click.option(
    "--stream", "stream_id", required=True, help="Stream id: 1-128 printable characters, no spaces."
)
@click.option(
    "--rate",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Pace: 1 real time, 2 twice as fast, 0 as fast as the daemon takes it.",
)
@click.option(
    "--chunk-ms",
    default=100,
    show_default=True,
    type=click.IntRange(10, 1000),
    help="Audio per message in milliseconds (a message may hold at most 1 MiB).",
)
@click.option("--loop", is_flag=True, help="Start over after the last file, until interrupted.")
@click.option(
    "--sr",
    type=click.IntRange(8000, 192000),
    help=f"Send files at this rate (default: the file's own rate, or {FALLBACK_SR} where only "
    "ffmpeg reads it).",
)
@click.option(
    "--stdin-sr",
    default=44100,
    show_default=True,
    type=click.IntRange(8000, 192000),
    help="Sample rate of raw PCM on stdin (PATH '-').",
)
@click.option(
    "--stdin-channels",
    default=2,
    show_default=True,
    type=click.IntRange(1, 8),
    help="Interleaved channels of raw PCM on stdin.",
)
@click.option(
    "--stdin-dtype",
    default="int16",
    show_default=True,
    type=click.Choice(["int16", "float32"]),
    help="Little-endian sample format of raw PCM on stdin (ffmpeg -f s16le / f32le).",
)
@curve_options
def send(
    paths: tuple[str, ...],
    addresses: tuple[str, ...],
    stream_id: str,
    rate: float,
    chunk_ms: int,
    loop: bool,
    sr: int | None,
    stdin_sr: int,
    stdin_channels: int,
    stdin_dtype: str,
    curve_server_key: Path | None,
    curve_key: Path | None,
) -> None:
    """Send audio FILES (or '-' for raw PCM on stdin) to a daemon as one stream.

    Files of any format libsndfile or ffmpeg reads are down-mixed to mono and
    sent as int16 at their own sample rate (or --sr).  Raw PCM on stdin is
    sent as it comes, for example:

    \b
        ffmpeg -i x.mp3 -f s16le -ac 2 -ar 44100 - |
            genretag send - --to tcp://127.0.0.1:5555 --stream x

    With several --to (a fleet, see `genretag fleet plan`), the stream goes to
    the daemon whose shard it is: the i-th --to is daemon i.

    Sequence numbers run on across files and loops.  A file that cannot be
    read gets an error line on stderr, the others are still sent, and the
    exit code is 1 at the end.  A summary line goes to stderr; Ctrl-C stops
    at once (exit 130).  A daemon whose source has curve keys needs
    --curve-server-key (and --curve-key when it lists its clients); a refused
    producer's messages never arrive, and the daemon counts the refusal.
    """
    interrupts = _Interrupts()  # first, so that Ctrl-C works (as KeyboardInterrupt) from here on
    import zmq

    from genretag.daemon.fleet import shard_of
    from genretag.daemon.protocol import FrameError, check_stream_id
    from genretag.pipeline.audio import AudioDecodeError

    try:
        check_stream_id(stream_id)
    except FrameError as err:
        raise click.BadParameter(str(err), param_hint="--stream") from None
    address = addresses[shard_of(stream_id, len(addresses))]
    if loop and "-" in paths:
        raise click.UsageError("--loop cannot replay stdin ('-')")

    def chunks_of(path: str) -> tuple[int, Iterator[np.ndarray]]:
        if path == "-":
            return stdin_sr, _stdin_chunks(stdin_sr, stdin_channels, stdin_dtype, chunk_ms)
        return _file_chunks(Path(path), sr, chunk_ms)

    context = zmq.Context()
    socket, handshake = connect_client(
        context,
        zmq.PUSH,
        address,
        curve_server_key,
        curve_key,
        "--to",
        lambda s: s.setsockopt(zmq.SNDHWM, SEND_HWM),
    )
    sender, interrupted = _Sender(socket, stream_id, rate, interrupts), False
    failed: dict[str, str] = {}  # path -> why; a path failing again in --loop counts once
    try:
        handshake.wait()  # a refused producer stops here with the reason instead of queueing in silence
        handshake.close()
        while True:
            before = sender.messages
            for path in paths:
                try:
                    chunk_sr, chunks = chunks_of(path)
                    for chunk in chunks:
                        sender.send(chunk, chunk_sr)
                except (AudioDecodeError, FrameError) as err:  # FrameError: NaN on stdin, --chunk-ms too long
                    failed[path] = str(err) if isinstance(err, AudioDecodeError) else f"{path}: {err}"
                    click.echo(f"error: {failed[path]}", err=True)
            if not loop or sender.messages == before:  # looping over nothing readable would spin
                break
    except KeyboardInterrupt:
        interrupted = True
    except click.ClickException:
        context.destroy(linger=0)
        raise
    context.destroy(linger=0 if interrupted else FINAL_LINGER_MS)
    click.echo(
        f"sent {sender.seconds:.1f} s of audio in {sender.messages} messages to {address} as stream "
        f"{stream_id!r}" + (f"; {len(failed)} input(s) failed" if failed else ""),
        err=True,
    )
    if interrupted:
        sys.exit(130)
    if failed:
        sys.exit(1)
