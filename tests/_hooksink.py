"""A local webhook receiver for the notification tests: http.server on a thread.

It records every POST (headers and JSON body) and answers with the statuses
queued in :attr:`HookSink.answers` first, then 200.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Hit:
    """One POST the receiver got."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class HookSink:
    url: str
    hits: list[Hit] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Hit]:
        """The hits once there are ``count`` (bounded polling; fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.hits) >= count:
                    return list(self.hits)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} webhook calls, got {len(self.hits)}")


@contextmanager
def hook_sink() -> Iterator[HookSink]:
    """Serve a :class:`HookSink` on 127.0.0.1 (a free port) for the ``with`` block."""
    sink: HookSink

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(size) or b"null")
            with sink.lock:
                sink.hits.append(Hit(self.path, dict(self.headers.items()), body))
                status = sink.answers.pop(0) if sink.answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink = HookSink(f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
