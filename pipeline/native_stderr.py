"""Notes that native libraries write straight to the process's stderr, dropped at the calls that make them.

Two libraries genretag loads print lines a user cannot act on, on the C
``stderr`` (file descriptor 2), where neither Python's logging nor
``warnings`` can reach them:

* libmpg123, linked into libsndfile, prints ``[src/libmpg123/layer3.c:...]
  error: part2_3_length (1216) too large for available bit count (1152)``
  while it decodes MP3s that play perfectly (a frame borrowing from a bit
  reservoir it has not seen): "error:" is the prefix genretag gives its real
  failures, and libsndfile offers no way to pass libmpg123 its ``QUIET`` flag.
* TensorFlow logs oneDNN and CPU-feature INFO lines while its shared libraries
  load, before ``TF_CPP_MIN_LOG_LEVEL`` takes effect.

:func:`dropping` points descriptor 2 at a temporary file for the duration of
such a call, then writes back every line that does not match the given
pattern: a real error, or a log line another thread wrote meanwhile, still
reaches stderr, only a little later.  The calls wrapped are short (one MP3
block, the TensorFlow import) and one at a time (a lock), because descriptor 2
belongs to the whole process.  The price: should the process die inside such
a call, what it printed there is lost.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# libmpg123's messages: "[src/libmpg123/FILE:FUNC():LINE] error: ..." and its plain resync notes
MPG123_NOTE = re.compile(
    rb"^(?:\[src/libmpg123/[^]]*\] |Note: (?:Illegal Audio-MPEG-Header|Trying to resync|"
    rb"Skipped \d+ bytes in input)|Warning: Encountered more data after announced end)"
)
_lock = threading.RLock()


@contextmanager
def dropping(noise: re.Pattern[bytes]) -> Iterator[None]:
    """Run the ``with`` body with stderr lines matching ``noise`` dropped (see the module docstring)."""
    with _lock, tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = b"".join(
                line for line in captured.read().splitlines(keepends=True) if not noise.match(line)
            )
            while kept:
                kept = kept[os.write(2, kept) :]
