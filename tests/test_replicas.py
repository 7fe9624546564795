"""Two replicas on one NATS and one PostgreSQL read-model database."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import grpc
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.model import EVENT_TYPE_HEADER
from careops_eventstore.nats_embedded import EmbeddedNats
from ticketing.application import STREAM, SUBJECT_PREFIX
from ticketing.tests.conftest import running_service
from ticketing.tests.test_sla_timers import FIRST_RESPONSE_SECONDS, short_policy

from tests.support import ticket_rows


async def test_replicas_share_read_models_and_fire_each_timer_once(
    tmp_path: Path, nats_server: EmbeddedNats, postgres_url: str
) -> None:
    policy = str(short_policy(tmp_path))
    async with contextlib.AsyncExitStack() as stack:
        replicas = [
            await stack.enter_async_context(
                running_service(
                    tmp_path / f"r{index}",
                    nats_server.url,
                    database_url=postgres_url,
                    sla_policy_file=policy,
                )
            )
            for index in range(2)
        ]
        stubs = []
        for replica in replicas:
            assert replica.server is not None
            channel = await stack.enter_async_context(
                grpc.aio.insecure_channel(f"127.0.0.1:{replica.server.port}")
            )
            stubs.append(ticketing_pb2_grpc.TicketingServiceStub(channel))
        opened = []
        for index in range(6):
            response = await stubs[index % 2].OpenTicket(
                pb.OpenTicketRequest(
                    customer_id="C-replica",
                    channel=t.CHANNEL_SOCIAL,
                    type=t.TICKET_TYPE_COMPLAINT,
                    priority=t.PRIORITY_NORMAL,
                    subject=f"replica {index}",
                )
            )
            opened.append(response)
        # Both replicas scan the same timers table and fire the same breaches.
        await asyncio.sleep(FIRST_RESPONSE_SECONDS + 2.5)
        store = replicas[0].store
        assert store is not None
        for response in opened:
            messages = await store.read_subject(
                stream=STREAM.name, subject=f"{SUBJECT_PREFIX}.{response.ticket.ticket_id}"
            )
            types = [m.headers[EVENT_TYPE_HEADER] for m in messages]
            assert types.count("careops.ticketing.v1.SlaBreached") == 1, types
            assert types.count("careops.ticketing.v1.SlaWarningRaised") == 1, types
        last = await store.last_sequence(STREAM.name)
        for replica in replicas:
            assert await replica.wait_for("tickets", last, 10)
        rows = [r for r in ticket_rows(replicas[0].engine) if r["customer_id"] == "C-replica"]
        assert len(rows) == 6
        assert all(row["sla_breached"] for row in rows)
        assert max(int(row["version"]) for row in rows) <= last
