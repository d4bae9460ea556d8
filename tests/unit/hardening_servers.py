"""Small HTTP servers on 127.0.0.1 for tests/unit/test_hardening.py: each plays a careless
or hostile peer (a page behind credentials, a drip feed, an oversized body, an impostor
answering /health). Every server is bounded: it serves from a daemon thread and stops
when the `with` block ends."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]]  # set per server: each request's path and headers

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def http_server(handle: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Serve GETs with `handle(request_handler)`; yields (base URL, seen requests)."""
    seen: list[dict[str, str]] = []

    class Handler(_Quiet):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            handle(self)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def send_body(handler: BaseHTTPRequestHandler, body: bytes, content_type: str = "text/html",
              length: bool = True) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    if length:
        handler.send_header("Content-Length", str(len(body)))
    else:
        handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(body)


def page(html: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
    return lambda handler: send_body(handler, html)


def drip(interval: float, limit_seconds: float) -> Callable[[BaseHTTPRequestHandler], None]:
    """A body of one byte every `interval` s, for at most `limit_seconds` (never a whole page)."""

    def handle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Connection", "close")
        handler.end_headers()
        stop = time.monotonic() + limit_seconds
        with contextlib.suppress(OSError):
            while time.monotonic() < stop:
                handler.wfile.write(b"x")
                handler.wfile.flush()
                time.sleep(interval)

    return handle


def endless(piece: bytes, limit_bytes: int) -> Callable[[BaseHTTPRequestHandler], None]:
    """A body without Content-Length that goes on (up to `limit_bytes`, then the server gives up)."""

    def handle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Connection", "close")
        handler.end_headers()
        sent = 0
        with contextlib.suppress(OSError):
            while sent < limit_bytes:
                handler.wfile.write(piece)
                sent += len(piece)

    return handle


def impostor_health(pid: int) -> Callable[[BaseHTTPRequestHandler], None]:
    """Answers /health as if it were ktools' teacher, naming someone else's pid."""
    body = json.dumps({"service": "ktools-local-teacher", "status": "ok", "pid": pid}).encode()
    return lambda handler: send_body(handler, body, "application/json")


@contextlib.contextmanager
def raw_server(reply: bytes) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that reads a request head, sends `reply` and keeps the
    connection open for up to 10 s (for a client that should stop reading on its own)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                with contextlib.suppress(OSError):
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(reply)
                    deadline = time.monotonic() + 10
                    while not stop.is_set() and time.monotonic() < deadline and conn.recv(65536):
                        pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(15)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
