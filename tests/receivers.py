"""Real local receivers for notification tests: an HTTP server and an SMTP server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from careops_eventstore.nats_embedded import free_port

from tests.support import eventually_sync


class _ListeningServer(ThreadingHTTPServer):
    """A receiver that takes a burst of connections as real endpoints do: socketserver's
    default listen backlog of 5 drops the SYNs of a burst, which the kernel retries after a
    second, so every page of a burst past the fifth new connection looked a second late."""

    request_queue_size = 1024


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


DOWN = "/down/"


@dataclass
class HttpReceiver:
    """Records every POST; `fail_first[path] = n` answers 500 to the first n posts to a path;
    paths under /down/ always answer 503 (a channel that is down); `hold(path)` leaves posts to
    a path unanswered until released (a channel that hangs)."""

    port: int
    received: list[Received] = field(default_factory=list)
    fail_first: dict[str, int] = field(default_factory=dict)
    held: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def hold(self, path: str) -> Iterator[None]:
        """Posts to `path` get no answer until the block ends."""
        release = threading.Event()
        self.held[path] = release
        try:
            yield
        finally:
            release.set()
            del self.held[path]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def posts(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 10) -> list[Received]:
        def enough() -> list[Received] | None:
            posts = self.posts(path)
            return posts if len(posts) >= count else None

        return eventually_sync(
            enough,
            timeout=timeout,
            interval=0.01,
            what=f"{count} posts to {path}",
        )


@contextmanager
def http_receiver(*, keep_alive: bool = False) -> Iterator[HttpReceiver]:
    """With `keep_alive`, answers HTTP/1.1 and keeps connections open between posts, as real
    webhook, Slack and PagerDuty endpoints do (default: HTTP/1.0, one connection per post)."""
    receiver = HttpReceiver(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                receiver.received.append(
                    Received(
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        time.monotonic(),
                    )
                )
                failures = receiver.fail_first.get(self.path, 0)
                if failures:
                    receiver.fail_first[self.path] = failures - 1
                release = receiver.held.get(self.path)
            if release is not None:
                release.wait(60)
            down = self.path.startswith(DOWN)
            self.send_response(503 if down else 500 if failures else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            return

    server = _ListeningServer(("127.0.0.1", receiver.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class MailReceiver:
    """Records every mail; `replies` are answered to the next DATA commands instead of 250
    (e.g. "451 try later", "550 no such mailbox"), one each, and the mail is then not kept."""

    port: int
    messages: list[tuple[str, list[str], bytes, float]] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    refused: int = 0
    peers: list[Any] = field(default_factory=list)  # the client address of each DATA

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.peers.append(session.peer)
        if self.replies:
            self.refused += 1
            return self.replies.pop(0)
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.content, time.monotonic())
        )
        return "250 OK"

    def wait_for(
        self, count: int = 1, timeout: float = 10
    ) -> list[tuple[str, list[str], bytes, float]]:
        eventually_sync(
            lambda: len(self.messages) >= count,
            timeout=timeout,
            interval=0.01,
            what=f"{count} mails",
        )
        return self.messages


@contextmanager
def smtp_receiver() -> Iterator[MailReceiver]:
    receiver = MailReceiver(port=free_port())
    controller = Controller(receiver, hostname="127.0.0.1", port=receiver.port)
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()
