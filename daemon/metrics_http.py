"""The ``/metrics`` HTTP endpoint: the standard library's WSGI server, one thread per scrape.

prometheus-client's own server renders a registry and nothing else; the
daemon's exposition is a registry plus families it writes itself
(:mod:`genretag.daemon.stream_series`), so it serves a render function.
Any path answers with the metrics, as prometheus-client's server does, except
``/ready``: 200 once the daemon serves, 503 while it starts or stops (for a
Kubernetes readiness probe or a load balancer, which read status codes, not
``genretag_ready``).  ``Accept-Encoding: gzip`` gets a compressed body (a
scrape at 10,000 streams is about 10 MB of text).
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

GZIP_LEVEL = 1  # ~5x smaller already; higher levels cost several times the CPU for a few percent


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the stdlib's name)
        """Scrapes every few seconds are not news (a render that raises is still printed, by wsgiref)."""


class MetricsServer:
    """Serves ``render()`` on ``host:port`` (port 0: any free one) from a thread until :meth:`close`."""

    def __init__(
        self,
        host: str,
        port: int,
        render: Callable[[], bytes],
        content_type: str,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self._render = render
        self._ready = ready
        self._content_type = content_type
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("_MetricsServer", (_Server,), {"address_family": family})
        self._server: WSGIServer = make_server(host, port, self._app, server_class, _QuietHandler)
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="genretag-metrics", daemon=True
        )
        self._thread.start()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/ready":
            ready = self._ready()
            body = b"ready\n" if ready else b"not ready\n"
            start_response(
                "200 OK" if ready else "503 Service Unavailable",
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
            )
            return [body]
        body = self._render()
        headers = [("Content-Type", self._content_type)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)
