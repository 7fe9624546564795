"""Compensation across contexts (issue 12 item 3): grants made through ticketing's API appear in
quality's KPIs (per ticket, per kind, per agent, by currency) and in its Prometheus scrape; a
request still pending or rejected is not counted."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from careops.quality.v1 import quality_pb2 as qpb
from careops.ticketing.v1 import ticketing_pb2 as tpb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as tt
from careops_platform.identity import Principal
from quality.main import QualityService
from ticketing.main import TicketingService

from tests.quality_scenario import stub_of, ticketing_and_quality
from tests.support import channel_to
from tests.test_quality_kpis import scrape

# Quality's read models are on SQLite, then on PostgreSQL (conftest.py).
pytestmark = pytest.mark.both_databases

WANG = Principal("agent-wang", frozenset({"agent"}), "tests")
LEAD = Principal("lead-1", frozenset({"supervisor"}), "tests")


@pytest.fixture(scope="module")
async def services(
    tmp_path_factory: pytest.TempPathFactory, service_database_url: str
) -> AsyncIterator[tuple[TicketingService, QualityService]]:
    directory = tmp_path_factory.mktemp("platform")
    async with ticketing_and_quality(directory, quality_database_url=service_database_url) as both:
        yield both


async def call(service: TicketingService, who: Principal | None, method: str, request: Any) -> Any:
    async with channel_to(service, who) if who else channel_to(service) as channel:
        stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
        return await getattr(stub, method)(
            request, metadata=(("idempotency-key", uuid.uuid4().hex),)
        )


async def fault_ticket(service: TicketingService) -> str:
    opened = await call(
        service,
        None,
        "OpenTicket",
        tpb.OpenTicketRequest(
            customer_id="C-kpi",
            channel=tt.CHANNEL_PHONE,
            type=tt.TICKET_TYPE_FAULT,
            priority=tt.PRIORITY_NORMAL,
            subject="Broken",
        ),
    )
    ticket_id: str = opened.ticket.ticket_id
    await call(
        service,
        None,
        "AssignTicket",
        tpb.AssignTicketRequest(ticket_id=ticket_id, agent_id=WANG.subject),
    )
    return ticket_id


def grant(
    ticket_id: str, amount: str, kind: tt.CompensationKind.ValueType, currency: str = "CNY"
) -> Any:
    return tpb.GrantCompensationRequest(
        ticket_id=ticket_id, kind=kind, amount=amount, currency=currency, reason="sorry"
    )


def totals(rows: Any) -> dict[tuple[str, str], tuple[str, int, int, str]]:
    return {(r.key, r.currency): (r.amount, r.count, r.tickets, r.per_ticket) for r in rows}


async def test_grants_are_kpis_per_ticket_kind_and_agent_and_metrics(
    services: tuple[TicketingService, QualityService],
) -> None:
    ticketing, quality = services
    first, second = await fault_ticket(ticketing), await fault_ticket(ticketing)
    await call(
        ticketing, WANG, "GrantCompensation", grant(first, "100.50", tt.COMPENSATION_KIND_REFUND)
    )
    await call(
        ticketing, WANG, "GrantCompensation", grant(second, "300", tt.COMPENSATION_KIND_GIFT)
    )
    pending = await call(
        ticketing, WANG, "GrantCompensation", grant(second, "2500", tt.COMPENSATION_KIND_REFUND)
    )
    rejected = await call(
        ticketing, WANG, "GrantCompensation", grant(first, "9000", tt.COMPENSATION_KIND_DISCOUNT)
    )
    await call(
        ticketing,
        LEAD,
        "RejectCompensation",
        tpb.RejectCompensationRequest(
            ticket_id=first, compensation_id=rejected.compensation.compensation_id, reason="no"
        ),
    )
    await call(
        ticketing, LEAD, "GrantCompensation", grant(first, "10", tt.COMPENSATION_KIND_GIFT, "USD")
    )
    still_pending = await call(ticketing, None, "GetTicket", tpb.GetTicketRequest(ticket_id=second))
    assert pending.compensation.status == tt.COMPENSATION_STATUS_PENDING
    last = await ticketing.store.last_sequence("CAREOPS_TICKETING")  # type: ignore[union-attr]

    async with stub_of(quality) as stub:
        response = await stub.GetKpis(qpb.GetKpisRequest(ticketing_min_sequence=last))
    kpis = response.compensation
    assert totals(kpis.totals) == {
        ("", "CNY"): ("400.50", 2, 2, "200.25"),
        ("", "USD"): ("10.00", 1, 1, "10.00"),
    }
    assert totals(kpis.by_kind) == {
        ("gift", "CNY"): ("300.00", 1, 1, "300.00"),
        ("gift", "USD"): ("10.00", 1, 1, "10.00"),
        ("refund", "CNY"): ("100.50", 1, 1, "100.50"),
    }
    assert totals(kpis.by_agent) == {
        ("agent-wang", "CNY"): ("400.50", 2, 2, "200.25"),
        ("lead-1", "USD"): ("10.00", 1, 1, "10.00"),
    }
    assert totals(kpis.by_ticket_type) == {
        ("fault", "CNY"): ("400.50", 2, 2, "200.25"),
        ("fault", "USD"): ("10.00", 1, 1, "10.00"),
    }

    # Approving the pending request counts it, for the agent who asked.
    approved = await call(
        ticketing,
        LEAD,
        "ApproveCompensation",
        tpb.ApproveCompensationRequest(
            ticket_id=second, compensation_id=pending.compensation.compensation_id
        ),
    )
    assert [c.status for c in still_pending.ticket.compensations] == [
        tt.COMPENSATION_STATUS_GRANTED,
        tt.COMPENSATION_STATUS_PENDING,
    ]
    async with stub_of(quality) as stub:
        response = await stub.GetKpis(qpb.GetKpisRequest(ticketing_min_sequence=approved.sequence))
    assert totals(response.compensation.by_agent)[("agent-wang", "CNY")] == (
        "2900.50",
        3,
        2,
        "1450.25",
    )

    samples = scrape(quality)
    count = "careops_quality_compensations_total"
    amount = "careops_quality_compensation_amount_total"
    assert samples[(count, (("currency", "CNY"), ("kind", "refund")))] == 2
    assert samples[(amount, (("currency", "CNY"), ("kind", "refund")))] == 2600.5
    assert samples[(count, (("currency", "CNY"), ("kind", "discount")))] == 0  # rejected
    assert samples[(amount, (("currency", "USD"), ("kind", "gift")))] == 10
