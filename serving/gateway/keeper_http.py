"""The token keeper's loopback HTTP face for nginx: /readyz, /metrics, and predictions relayed during a handover.

A relayed prediction keeps its shape: a streamed generation (TorchServe answers with chunked transfer, one
chunk per decode step) goes on to nginx chunk by chunk as each arrives, never gathered into one body, so a
client streaming across a token renewal still sees its tokens as they are generated.
"""
from __future__ import annotations

import hmac
import http.client
import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable, Iterator

from serving.torchserve.client import AUTH_FAILED, Endpoints

FORWARD_HEADERS = ("Content-Type", "X-Request-ID")  # never X-Keeper-Secret or the client's X-API-Key
BAD_GATEWAY = b'{"code": 502, "error": "upstream unavailable"}\n'
VIA = "1.1 shipyard-keeper"  # RFC 9110's Via: the answer passed through the keeper (a handover was on)


class Upstream:
    """TorchServe's inference port, reached with the keeper's current token (one kept-alive connection per thread)."""

    def __init__(self, serve_dir: Path, token: Callable[[], str], timeout: float) -> None:
        self.serve_dir, self.token, self.timeout = serve_dir, token, timeout
        self.local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            port = Endpoints.load(self.serve_dir).inference
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout)
        return conn

    def drop(self) -> None:
        """Close this thread's connection (after an error, or a body left unread)."""
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
        self.local.conn = None

    def send(self, method: str, path: str, headers: dict, body: bytes) -> tuple[http.client.HTTPResponse, bytes | None]:
        """The response with its headers read; its body too (as bytes) when it is small or had to be inspected."""
        for attempt in range(2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers={**headers, "Authorization": f"Bearer {self.token()}"})
                resp = conn.getresponse()
                if resp.status not in (400, 401):
                    return resp, None
                data = resp.read()
            except (OSError, http.client.HTTPException):
                self.drop()
                if attempt:
                    raise
                continue
            if AUTH_FAILED in data.decode(errors="replace") and attempt == 0:
                continue  # the token changed between reading and sending: once more with the new one
            return resp, data
        raise http.client.HTTPException("the inference token was refused twice")


def _pieces(resp: http.client.HTTPResponse) -> Iterator[bytes]:
    """The body as it arrives: read1 returns what one chunk (or one socket read) holds, without waiting for more."""
    while True:
        piece = resp.read1(65536)
        if not piece:
            return
        yield piece


class Handler(BaseHTTPRequestHandler):
    """nginx → keeper: /readyz, /metrics, and predictions during a handover."""

    protocol_version = "HTTP/1.1"
    server: "Server"

    def log_message(self, *args: Any) -> None:  # noqa: D102 - per-request lines belong in nginx's access log
        return

    def _answer(self, status: int, headers: dict, body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802, D102
        keeper = self.server.keeper
        if self.path == "/readyz":
            body = (json.dumps(keeper.ready) + "\n").encode()
            self._answer(200 if keeper.ready["ready"] else 503, {"Content-Type": "application/json"}, body)
        elif self.path == "/metrics":
            self._answer(200, {"Content-Type": "text/plain; version=0.0.4"}, keeper.metrics().encode())
        else:
            self._answer(404, {"Content-Type": "application/json"}, b'{"code": 404, "error": "unknown path"}\n')

    def do_POST(self) -> None:  # noqa: N802, D102
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not hmac.compare_digest(self.headers.get("X-Keeper-Secret", ""), self.server.keeper.secret):
            # only nginx (which authenticated the client) may use the keeper's token
            self._answer(403, {"Content-Type": "application/json"}, b'{"code": 403, "error": "forbidden"}\n')
            return
        headers = {k: self.headers[k] for k in FORWARD_HEADERS if self.headers.get(k)}
        upstream = self.server.upstream
        try:
            resp, data = upstream.send("POST", self.path, headers, body)
        except (OSError, http.client.HTTPException):
            self._answer(502, {"Content-Type": "application/json"}, BAD_GATEWAY)
            return
        kept = {**{k: v for k, v in resp.getheaders() if k.lower() == "content-type"}, "Via": VIA}
        if data is not None or resp.length is not None:  # a whole body: pass it on with its length
            try:
                self._answer(resp.status, kept, data if data is not None else resp.read())
            except (OSError, http.client.HTTPException):
                upstream.drop()
                raise
            return
        self._relay_chunked(resp, kept)

    def _relay_chunked(self, resp: http.client.HTTPResponse, headers: dict) -> None:
        """A chunked answer (a stream) → nginx, each piece written as soon as it is read."""
        self.send_response(resp.status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for piece in _pieces(resp):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        except (OSError, http.client.HTTPException):
            # cut mid-stream (TorchServe or nginx went away): no final chunk, so nginx sees a truncated answer,
            # never a complete-looking one; the upstream connection is in an unknown state
            self.server.upstream.drop()
            self.close_connection = True


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Threaded loopback HTTP server (nginx keeps connections open) holding the keeper and its upstream."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, keeper: Any, upstream: Upstream) -> None:
        self.keeper, self.upstream = keeper, upstream
        super().__init__(("127.0.0.1", port), Handler)
