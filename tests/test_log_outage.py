"""With NATS stopped commands fail fast with UNAVAILABLE; when NATS returns the service recovers."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from grpc_health.v1 import health_pb2, health_pb2_grpc
from ticketing.tests.conftest import running_service

from tests.support import channel_to, eventually

OPEN = pb.OpenTicketRequest(
    customer_id="C-outage",
    channel=t.CHANNEL_PHONE,
    type=t.TICKET_TYPE_FAULT,
    priority=t.PRIORITY_URGENT,
    subject="Line is dead",
)


async def health_status(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    return int(reply.status)


async def _is(channel: grpc.aio.Channel, status: int) -> bool:
    return await health_status(channel) == status


def key(value: str) -> tuple[tuple[str, str], ...]:
    return (("idempotency-key", value),)


async def test_commands_fail_fast_while_nats_is_down_and_recover_after(tmp_path: Path) -> None:
    nats = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port()).start()
    try:
        async with running_service(tmp_path / "data", nats.url) as service:
            assert service.server is not None
            async with channel_to(service) as channel:
                stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
                before = await stub.OpenTicket(OPEN)
                nats.stop()
                # Health follows the log: once it says NOT_SERVING the client has noticed.
                await eventually(
                    lambda: _is(channel, health_pb2.HealthCheckResponse.NOT_SERVING),
                    what="NOT_SERVING while NATS is down",
                )
                # Fails fast: UNAVAILABLE from the service, not the client's deadline expiring.
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.OpenTicket(OPEN, timeout=5, metadata=key("during-outage"))
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value
                assert "NATS" in (caught.value.details() or "")

                nats.start()
                # The client resends with one idempotency-key until acknowledged, so a retry
                # whose reply was lost cannot append twice.
                retry = key("after-outage")
                after = await eventually(
                    lambda: stub.OpenTicket(OPEN, timeout=5, metadata=retry),
                    what="service recovered after NATS came back",
                )
                # Nothing half-written: the failed command left no event behind.
                assert after.sequence == before.sequence + 1
                assert await health_status(channel) == health_pb2.HealthCheckResponse.SERVING
                got = await stub.GetTicket(pb.GetTicketRequest(ticket_id=before.ticket.ticket_id))
                assert got.ticket.subject == "Line is dead"
                listed = await stub.ListTickets(
                    pb.ListTicketsRequest(customer_id="C-outage", min_sequence=after.sequence)
                )
                assert len(listed.tickets) == 2
    finally:
        nats.stop()
