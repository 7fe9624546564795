"""The incident paging benchmark's receivers and load generator, each in a child process, so
the measured process runs only the incident service (and the raw baseline's client).

Both children are driven over a multiprocessing pipe. Times are `time.monotonic()`, which on
Linux is CLOCK_MONOTONIC, one clock for every process of the machine: a declaration stamped in
the load process and its page stamped in the receivers' process are comparable.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

# The children import these themselves (spawned processes start from scratch).
SPAWN = multiprocessing.get_context("spawn")
REPLY_SECONDS = 120


@dataclass
class Child:
    """A child process and our end of its pipe: `ask` sends a request and waits for the reply."""

    process: Any
    conn: Connection

    def ask(self, *request: Any) -> Any:
        self.conn.send(request)
        if not self.conn.poll(REPLY_SECONDS):
            raise TimeoutError(f"no reply to {request[0]!r} from pid {self.process.pid}")
        reply = self.conn.recv()
        if isinstance(reply, BaseException):
            raise reply
        return reply


@contextmanager
def child(target: Any, *args: Any) -> Iterator[Child]:
    """Runs `target(conn, *args)` in a spawned process; stops it afterwards."""
    ours, theirs = SPAWN.Pipe()
    process = SPAWN.Process(target=target, args=(theirs, *args), daemon=True)
    process.start()
    peer = Child(process, ours)
    try:
        yield peer
    finally:
        if process.is_alive():
            ours.send(("stop",))
            process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)


def receivers_main(conn: Connection, keep_alive: bool) -> None:
    """The HTTP and SMTP receivers of tests/receivers.py (HTTP/1.1 keep-alive or HTTP/1.0 one
    connection per post). First reply: (http port, smtp port).
    ("arrivals", path, ids, timeout): waits until a post to `path` arrived for every incident
    of `ids` (or the timeout), replies {incident_id: arrival time of its first post}."""
    from tests.receivers import http_receiver, smtp_receiver

    with http_receiver(keep_alive=keep_alive) as http, smtp_receiver() as mail:
        conn.send((http.port, mail.port))
        while True:
            request = conn.recv()
            if request[0] == "stop":
                return
            _, path, ids, timeout = request
            wanted = set(ids)
            deadline = time.monotonic() + timeout
            arrived: dict[str, float] = {}
            seen = 0  # posts already looked at: each is parsed once, not on every poll
            while True:
                posts = http.posts(path)
                for post in posts[seen:]:
                    incident_id = post.json().get("incident_id")
                    if incident_id in wanted and incident_id not in arrived:
                        arrived[incident_id] = post.at
                seen = len(posts)
                if len(arrived) == len(wanted) or time.monotonic() > deadline:
                    break
                # The arrival times are stamped by the receiving threads; polling only collects
                # them, so it can be slow and leave the cores to what is measured.
                time.sleep(0.05)
            conn.send(arrived)


def load_main(conn: Connection, address: str, data_dir: str) -> None:
    """The load generator: ("declare", n) declares n severe incidents at once, replies
    {incident_id: (time the call began, time its reply came)}."""
    asyncio.run(_load(conn, address, data_dir))


async def _load(conn: Connection, address: str, data_dir: str) -> None:
    from careops.incident.v1 import incident_pb2 as pb
    from careops.incident.v1 import incident_pb2_grpc
    from careops.incident.v1 import types_pb2 as t

    from tests.support import service_channel

    severe = t.RiskFactors(
        users_affected=100_000, core_system=1.0, elapsed_minutes=60, exposure=0.5
    )
    async with service_channel(address, data_dir) as channel:
        stub = incident_pb2_grpc.IncidentServiceStub(channel)
        await channel.channel_ready()
        conn.send("ready")
        while True:
            request = await asyncio.to_thread(conn.recv)
            if request[0] == "stop":
                return
            started: dict[str, tuple[float, float]] = {}

            async def one(started: dict[str, tuple[float, float]] = started) -> None:
                begun = time.monotonic()
                response = await stub.DeclareIncident(
                    pb.DeclareIncidentRequest(
                        type="server_crash", title=f"bench {uuid.uuid4().hex[:6]}", factors=severe
                    ),
                    metadata=(("idempotency-key", uuid.uuid4().hex),),
                )
                started[response.incident.incident_id] = (begun, time.monotonic())

            try:
                await asyncio.gather(*(one() for _ in range(request[1])))
            except Exception as exc:  # the parent re-raises it
                conn.send(RuntimeError(f"declare failed: {exc!r}"))
                continue
            conn.send(started)
