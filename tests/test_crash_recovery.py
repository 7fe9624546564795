"""kill -9 mid-stream, restart: the read model equals a fresh rebuild from the log."""

from __future__ import annotations

import base64
import threading
import uuid
from functools import partial
from pathlib import Path

import grpc
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from careops_eventstore.projection import apply_batch
from careops_platform.db import make_engine, migrate
from ticketing.application import CODEC, STREAM
from ticketing.keystore import text_sealer
from ticketing.projections import TicketListProjection

from tests.support import (
    ServiceProcess,
    eventually,
    shared_key_store,
    shared_key_store_env,
    ticket_rows,
    wait_serving,
)

MIGRATIONS = Path(__file__).parents[1] / "services" / "ticketing" / "migrations"


def drive(service: ServiceProcess, stop: threading.Event, opened: list[str]) -> None:
    """Opens tickets and replies to them until stopped; tolerates the service dying."""
    with service.channel() as channel:
        stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
        while not stop.is_set():
            try:
                response = stub.OpenTicket(
                    pb.OpenTicketRequest(
                        customer_id="C-crash",
                        channel=t.CHANNEL_APP,
                        type=t.TICKET_TYPE_FAULT,
                        priority=t.PRIORITY_NORMAL,
                        subject=f"crash {uuid.uuid4().hex[:6]}",
                    ),
                    timeout=2,
                )
                opened.append(response.ticket.ticket_id)
                stub.AddReply(
                    pb.AddReplyRequest(
                        ticket_id=response.ticket.ticket_id, author=t.AUTHOR_AGENT, body="hi"
                    ),
                    timeout=2,
                )
            except grpc.RpcError:
                stop.wait(0.05)  # client backoff while the service is down, not synchronisation


async def rebuild_from_log(nats_url: str, path: Path) -> list[dict[str, object]]:
    """Replays the whole stream into an empty database (opening the texts with the service's
    key store); returns its ticket rows."""
    keys = shared_key_store(nats_url, "ticketing")
    texts = text_sealer(make_engine(keys["keystore_url"]), base64.b64decode(keys["master_key"]))
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine, MIGRATIONS)
    nc = await connect(nats_url, name="rebuild")
    store = JetStreamEventStore(nc)
    after = 0
    while True:
        page = await store.read_stream(stream=STREAM.name, after_sequence=after, limit=500)
        if not page:
            break
        apply_batch(
            engine,
            TicketListProjection(texts),
            CODEC,
            STREAM.name,
            page,
            [m.sequence for m in page],
        )
        after = page[-1].sequence
    last = await store.last_sequence(STREAM.name)
    await nc.close()
    assert after == last
    return ticket_rows(engine)


async def wait_caught_up(nats_url: str, data_dir: Path) -> None:
    nc = await connect(nats_url, name="probe")
    last = await JetStreamEventStore(nc).last_sequence(STREAM.name)
    await nc.close()
    engine = make_engine(f"sqlite:///{data_dir / 'ticketing.db'}")

    def caught_up() -> bool:
        rows = ticket_rows(engine)
        return bool(rows) and max(int(str(r["version"])) for r in rows) >= last

    await eventually(caught_up, what="projection caught up")


def differences(
    recovered: list[dict[str, object]], rebuilt: list[dict[str, object]]
) -> list[tuple[object, str, object, object]]:
    """(ticket, column, recovered, rebuilt) of every cell that differs, rows matched by ticket."""
    by_ticket = {row["ticket_id"]: row for row in rebuilt}
    return [
        (row["ticket_id"], column, value, by_ticket.get(row["ticket_id"], {}).get(column))
        for row in recovered
        for column, value in row.items()
        if by_ticket.get(row["ticket_id"], {}).get(column) != value
    ]


def _at_least(items: list[str], count: int) -> bool:
    return len(items) >= count


async def test_kill_9_mid_stream_then_restart_matches_a_fresh_rebuild(tmp_path: Path) -> None:
    nats = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port()).start()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # The router off: after the restart it would go on assigning waiting tickets, appending
    # past the sequence the read model is compared at.
    env = {**shared_key_store_env(nats.url, "ticketing"), "CAREOPS_AUTO_ROUTE": "false"}
    service = ServiceProcess(data_dir=data_dir, nats_url=nats.url, extra_env=env)
    try:
        for _round in range(3):
            service.start()
            stop = threading.Event()
            opened: list[str] = []
            writers = [
                threading.Thread(target=drive, args=(service, stop, opened)) for _ in range(4)
            ]
            for writer in writers:
                writer.start()
            await eventually(partial(_at_least, opened, 8), what="tickets opened under load")
            service.kill()  # mid-stream: writers are still sending
            stop.set()
            for writer in writers:
                writer.join()
            assert opened, "the load generator never got a ticket through"
        service.start()
        assert wait_serving(service.address, 10)
        await wait_caught_up(nats.url, data_dir)
        recovered = ticket_rows(make_engine(f"sqlite:///{data_dir / 'ticketing.db'}"))
        rebuilt = await rebuild_from_log(nats.url, tmp_path / "rebuilt.db")
        assert len(recovered) == len(rebuilt) > 0
        assert differences(recovered, rebuilt) == []
        assert service.terminate() == 0
    finally:
        service.kill()
        nats.stop()
