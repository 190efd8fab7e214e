"""``genretag serve`` with ``limits.max_streams`` allowed past 10,000: for benchmarks only.

The configuration accepts at most 10,000 streams per daemon, so a daemon_e2e level above that
(the 1.5x overload of a GPU daemon whose capacity is 10,000 streams) used to run with 10,000 and
had the rest refused (``stream_refused``: the GPU runs at 11,000-12,000 streams before issue 18's
overload work).  ``daemon_e2e --lift-stream-limit`` starts the daemon through this module, which
relaxes only that one rule of the configuration's checks and then runs the CLI unchanged::

    python -m benchmarks.serve_lifted serve --config bench.toml
"""

from __future__ import annotations

from genretag.daemon import config


def lift_stream_limit() -> None:
    """Let ``limits.max_streams`` be any positive count (the daemon itself has no other bound)."""
    config._RULES["limits.max_streams"] = (lambda v: v >= 1, "must be at least 1")


def main() -> None:
    lift_stream_limit()
    from genretag.cli.main import cli

    cli()


if __name__ == "__main__":
    main()
