"""8 concurrent writers on one aggregate through two replicas: every command is either applied
once or ABORTED, and the aggregate's state equals the fold of its log."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.nats_embedded import EmbeddedNats
from ticketing.application import STREAM, SUBJECT_PREFIX, TicketingApp
from ticketing.main import TicketingService
from ticketing.tests.conftest import running_service

from tests.faults.platform import command_id
from tests.support import channel_to, fault_scale, read_log

WRITERS = 8
REPLY = "/careops.ticketing.v1.TicketingService/AddReply"


async def write(
    stub: ticketing_pb2_grpc.TicketingServiceStub, ticket_id: str, writer: int, count: int
) -> dict[str, grpc.StatusCode]:
    """Sends `count` replies; returns each idempotency-key's outcome (OK or the error code)."""
    outcomes: dict[str, grpc.StatusCode] = {}
    for n in range(count):
        key = f"writer-{writer}-{n}"
        try:
            await stub.AddReply(
                pb.AddReplyRequest(
                    ticket_id=ticket_id,
                    author=t.AUTHOR_AGENT if n % 2 else t.AUTHOR_CUSTOMER,
                    body=f"reply {writer}.{n}",
                ),
                metadata=(("idempotency-key", key),),
                timeout=30,
            )
            outcomes[key] = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            outcomes[key] = exc.code()
    return outcomes


async def test_eight_concurrent_writers_on_one_ticket(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    count = 6 * fault_scale()
    async with AsyncExitStack() as stack:
        replicas: list[TicketingService] = [
            await stack.enter_async_context(running_service(tmp_path / f"r{i}", nats_server.url))
            for i in range(2)
        ]
        stubs = []
        for replica in replicas:
            assert replica.server is not None
            channel = channel_to(replica)
            stack.push_async_callback(channel.close)
            stubs.append(ticketing_pb2_grpc.TicketingServiceStub(channel))
        opened = await stubs[0].OpenTicket(
            pb.OpenTicketRequest(
                customer_id="C-writers",
                channel=t.CHANNEL_CHAT,
                type=t.TICKET_TYPE_CONSULTATION,
                priority=t.PRIORITY_NORMAL,
                subject="Many hands",
            )
        )
        ticket_id = opened.ticket.ticket_id
        results = await asyncio.gather(
            *(write(stubs[w % 2], ticket_id, w, count) for w in range(WRITERS))
        )
        outcomes = {key: code for result in results for key, code in result.items()}
        assert set(outcomes.values()) <= {grpc.StatusCode.OK, grpc.StatusCode.ABORTED}, outcomes

        subject = f"{SUBJECT_PREFIX}.{ticket_id}"
        log = await read_log(nats_server.url, STREAM.name, subject)
        ids = [m.batch.events[0].command_id for m in log]
        for key, code in outcomes.items():
            expected = 1 if code == grpc.StatusCode.OK else 0
            assert ids.count(command_id(REPLY, key)) == expected, (key, code)
        applied = sum(code == grpc.StatusCode.OK for code in outcomes.values())
        assert len(log) == 1 + applied  # the opening, then one message per applied reply

        # Every replica's state is the fold of the log, and so is a fresh fold elsewhere.
        nc = await connect(nats_server.url, name="fold")
        stack.push_async_callback(nc.close)
        assert replicas[0].app is not None
        fresh = TicketingApp(
            store=JetStreamEventStore(nc), policy=replicas[0].app.policy, texts=replicas[0].texts
        )
        folded, version = await fresh.get(ticket_id)
        assert version == log[-1].sequence
        for replica in replicas:
            assert replica.app is not None
            assert await replica.app.get(ticket_id) == (folded, version)
        assert folded.agent_replies + folded.customer_replies == applied
