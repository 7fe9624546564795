"""Two replicas on one NATS and one PostgreSQL read-model database."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, timedelta
from pathlib import Path

from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats
from ticketing.application import STREAM, SUBJECT_PREFIX
from ticketing.projections import SlaTimerProjection
from ticketing.tests.conftest import running_service
from ticketing.tests.test_sla_timers import short_policy

from tests.support import (
    FakeClock,
    channel_to,
    event_types,
    eventually,
    fire_due_timers,
    ticket_rows,
)


async def test_replicas_share_read_models_and_fire_each_timer_once(
    tmp_path: Path, nats_server: EmbeddedNats, postgres_url: str
) -> None:
    policy = str(short_policy(tmp_path))
    clock = FakeClock()
    async with contextlib.AsyncExitStack() as stack:
        replicas = [
            await stack.enter_async_context(
                running_service(
                    tmp_path / f"r{index}",
                    nats_server.url,
                    clock=clock,
                    database_url=postgres_url,
                    sla_policy_file=policy,
                )
            )
            for index in range(2)
        ]
        stubs = []
        for replica in replicas:
            assert replica.server is not None
            channel = await stack.enter_async_context(channel_to(replica))
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
        # Both replicas scan the same timers table and fire the same breaches, at once.
        due = max(r.ticket.sla[0].due_at.ToDatetime(UTC) for r in opened)
        clock.set(due + timedelta(seconds=1))
        for _pass in range(2):  # the second pass, after the first's breaches: nothing more
            await asyncio.gather(
                *(fire_due_timers(replica, SlaTimerProjection.name) for replica in replicas)
            )
        store = replicas[0].store
        assert store is not None
        for response in opened:
            subject = f"{SUBJECT_PREFIX}.{response.ticket.ticket_id}"

            async def breached(subject: str = subject) -> list[str] | None:
                assert store is not None
                types = event_types(await store.read_subject(stream=STREAM.name, subject=subject))
                return types if "careops.ticketing.v1.SlaBreached" in types else None

            types = await eventually(breached)
            assert types.count("careops.ticketing.v1.SlaBreached") == 1, types
            assert types.count("careops.ticketing.v1.SlaWarningRaised") == 1, types
        last = await store.last_sequence(STREAM.name)
        for replica in replicas:
            assert await replica.wait_for("tickets", last, 10)
        rows = [r for r in ticket_rows(replicas[0].engine) if r["customer_id"] == "C-replica"]
        assert len(rows) == 6
        assert all(row["sla_breached"] for row in rows)
        assert max(int(row["version"]) for row in rows) <= last
