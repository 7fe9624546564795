"""Emotion across contexts (issue 12 item 4): the emotion ticketing records on each customer
message reaches quality's KPIs (per channel and emotion, per day) and its Prometheus scrape;
agents' replies are not counted."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from careops.quality.v1 import quality_pb2 as qpb
from careops.quality.v1 import types_pb2 as qt
from careops.ticketing.v1 import ticketing_pb2 as tpb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as tt
from google.protobuf.timestamp_pb2 import Timestamp
from quality.main import QualityService
from ticketing.main import TicketingService

from tests.quality_scenario import stub_of, ticketing_and_quality
from tests.support import channel_to
from tests.test_quality_kpis import scrape

# Quality's read models are on SQLite, then on PostgreSQL (conftest.py).
pytestmark = pytest.mark.both_databases


@pytest.fixture(scope="module")
async def services(
    tmp_path_factory: pytest.TempPathFactory, service_database_url: str
) -> AsyncIterator[tuple[TicketingService, QualityService]]:
    directory = tmp_path_factory.mktemp("platform")
    async with ticketing_and_quality(directory, quality_database_url=service_database_url) as both:
        yield both


async def call(service: TicketingService, method: str, request: Any) -> Any:
    async with channel_to(service) as channel:
        stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
        return await getattr(stub, method)(
            request, metadata=(("idempotency-key", uuid.uuid4().hex),)
        )


async def open_ticket(service: TicketingService, channel: Any, subject: str) -> Any:
    return await call(
        service,
        "OpenTicket",
        tpb.OpenTicketRequest(
            customer_id="C-emotion",
            channel=channel,
            type=tt.TICKET_TYPE_FAULT,
            priority=tt.PRIORITY_NORMAL,
            subject=subject,
        ),
    )


async def reply(service: TicketingService, ticket_id: str, author: Any, body: str) -> Any:
    return await call(
        service,
        "AddReply",
        tpb.AddReplyRequest(ticket_id=ticket_id, author=author, body=body),
    )


def stamp(at: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(at)
    return value


async def test_emotion_counts_per_channel_in_kpis_and_the_scrape(
    services: tuple[TicketingService, QualityService],
) -> None:
    ticketing, quality = services
    angry = await open_ticket(ticketing, tt.CHANNEL_PHONE, "你们太过分了，我要投诉！")
    calm = await open_ticket(ticketing, tt.CHANNEL_CHAT, "My order number is 12345")
    ticket_id = calm.ticket.ticket_id
    await reply(ticketing, ticket_id, tt.AUTHOR_AGENT, "Thanks, we are checking, great question")
    last = await reply(ticketing, ticket_id, tt.AUTHOR_CUSTOMER, "Thank you, excellent support")
    assert angry.ticket.priority == tt.PRIORITY_HIGH

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    period = qpb.Period(
        start=stamp(today - timedelta(days=1)), end=stamp(today + timedelta(days=1))
    )
    async with stub_of(quality) as stub:
        response = await stub.GetKpis(
            qpb.GetKpisRequest(period=period, by_day=True, ticketing_min_sequence=last.sequence)
        )
    whole = {(e.channel, e.emotion): e.count for e in response.emotions if not e.HasField("day")}
    assert whole == {
        ("phone", qt.EMOTION_ANGRY): 1,
        ("chat", qt.EMOTION_NEUTRAL): 1,
        ("chat", qt.EMOTION_SATISFIED): 1,  # the agent's "thanks, great" is not counted
    }
    by_day = [
        (e.day.ToDatetime(UTC), e.channel, e.count) for e in response.emotions if e.HasField("day")
    ]
    assert sorted(by_day) == sorted([(today, "chat", 1), (today, "chat", 1), (today, "phone", 1)])

    samples = scrape(quality)
    name = "careops_quality_customer_emotions_total"
    assert samples[(name, (("channel", "phone"), ("emotion", "angry")))] == 1
    assert samples[(name, (("channel", "chat"), ("emotion", "satisfied")))] == 1
    assert samples[(name, (("channel", "email"), ("emotion", "anxious")))] == 0  # preinitialised
