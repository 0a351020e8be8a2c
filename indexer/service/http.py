"""The service's HTTP endpoint: /metrics (Prometheus text format) and /healthz (JSON; 503 when unhealthy)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"


class HealthServer:
    def __init__(self, host: str, port: int, service: Any) -> None:
        handler = type("Handler", (_Handler,), {"service": service})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    service: Any = None

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_METRICS, self.service.metrics.render().encode())
        elif path in ("/healthz", "/health"):
            h = self.service.health()
            body = json.dumps({"healthy": h.healthy, "role": h.role, "reasons": h.reasons, **h.detail}).encode()
            self._send(200 if h.healthy else 503, "application/json", body)
        else:
            self._send(404, "text/plain", b"not found: try /metrics or /healthz\n")

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - keep request logs out of stderr
        pass
