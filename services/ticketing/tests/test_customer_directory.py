"""Ticketing's projection of customer-profile events: tiers for the SLA, links by contact.

The customer events are appended to CAREOPS_CUSTOMER as customer-profile writes them (its
protos, one envelope per event); no customer-profile code runs here.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from careops.customer.v1 import events_pb2 as customer_events
from careops.customer.v1 import types_pb2 as customer_types
from careops.events.v1.envelope_pb2 import EventBatch
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore import StreamSpec
from careops_eventstore.codec import to_timestamp
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.nats_embedded import EmbeddedNats
from careops_platform.contacts import CONTACT_HASH_KEY_FILE, contact_digest, load_secret
from google.protobuf.message import Message
from sqlalchemy import Engine, create_engine, insert, update
from sqlalchemy import event as sql_event

from tests.support import open_request
from ticketing import readmodels
from ticketing.main import TicketingService
from ticketing.tests.test_grpc_api import Stub

# The module's service runs on SQLite, then on PostgreSQL (conftest.py).
pytestmark = pytest.mark.both_databases

CUSTOMER_STREAM = StreamSpec("CAREOPS_CUSTOMER", ("careops.customer.>",))


@pytest.fixture(scope="module")
async def customer_log(module_nats: EmbeddedNats) -> AsyncIterator[JetStreamEventStore]:
    nc = await connect(module_nats.url, name="customer-profile-stand-in")
    store = JetStreamEventStore(nc)
    await store.ensure_stream(CUSTOMER_STREAM)
    yield store
    await nc.close()


async def append(store: JetStreamEventStore, customer_id: str, *events: Message) -> int:
    subject = f"careops.customer.customer.{customer_id}"
    batch = EventBatch()
    for event in events:
        envelope = batch.events.add(
            event_id=uuid.uuid4().hex,
            type=event.DESCRIPTOR.full_name,
            aggregate_id=customer_id,
            aggregate_type="customer",
            command_id=uuid.uuid4().hex,
        )
        envelope.occurred_at.CopyFrom(to_timestamp(datetime.now(UTC)))
        envelope.payload.Pack(event)
    existing = await store.read_subject(stream=CUSTOMER_STREAM.name, subject=subject)
    result = await store.append(
        stream=CUSTOMER_STREAM.name,
        subject=subject,
        batch=batch,
        expected_sequence=existing[-1].sequence if existing else 0,
        message_id=uuid.uuid4().hex,
    )
    return result.sequence


def first_response_seconds(ticket: Any) -> float:
    [clock] = [c for c in ticket.sla if c.clock == t.SLA_CLOCK_FIRST_RESPONSE]
    return float(clock.target.ToTimedelta().total_seconds())


async def test_tickets_link_by_contact_and_take_the_customer_tier(
    stub: Stub, service: TicketingService, customer_log: JetStreamEventStore
) -> None:
    hash_key = load_secret("", service.settings.data_dir, CONTACT_HASH_KEY_FILE, "unused")
    customer_id = f"C-{uuid.uuid4().hex[:12]}"
    email = f"ann.{uuid.uuid4().hex[:6]}@example.com"
    runner = service.runners["customer_directory"]

    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.OpenTicket(open_request(customer_id="", contact_email=email))
    assert unknown.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "no known customer" in (unknown.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await stub.OpenTicket(open_request(customer_id="", contact_phone="12"))
    assert malformed.value.code() is grpc.StatusCode.INVALID_ARGUMENT

    registered = await append(
        customer_log,
        customer_id,
        customer_events.CustomerRegistered(
            customer_id=customer_id,
            email_hash=contact_digest(hash_key, "email", email),
            personal=customer_types.Sealed(key_version=1, nonce=b"n" * 12, ciphertext=b"x"),
        ),
    )
    assert await runner.wait_for(registered, 10)
    regular = (await stub.OpenTicket(open_request(customer_id="", contact_email=email))).ticket
    assert (regular.customer_id, regular.tier) == (customer_id, t.CUSTOMER_TIER_REGULAR)

    promoted = await append(
        customer_log,
        customer_id,
        customer_events.SegmentAssigned(tier=customer_types.CUSTOMER_TIER_HIGH_VALUE),
    )
    assert await runner.wait_for(promoted, 10)
    # By contact or by id, and whatever tier the request claims: the computed tier applies.
    for request in (
        open_request(customer_id="", contact_email=email.upper()),
        open_request(customer_id=customer_id, tier=t.CUSTOMER_TIER_LOW_FREQUENCY),
    ):
        ticket = (await stub.OpenTicket(request)).ticket
        assert (ticket.customer_id, ticket.tier) == (customer_id, t.CUSTOMER_TIER_HIGH_VALUE)
        assert first_response_seconds(ticket) < first_response_seconds(regular)

    forgotten = await append(
        customer_log,
        customer_id,
        customer_events.CustomerForgotten(reason=customer_types.ERASURE_REASON_CUSTOMER_REQUEST),
    )
    assert await runner.wait_for(forgotten, 10)
    with pytest.raises(grpc.aio.AioRpcError) as erased:
        await stub.OpenTicket(open_request(customer_id="", contact_email=email))
    assert erased.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    walk_in = (
        await stub.OpenTicket(open_request(customer_id=customer_id, tier=t.CUSTOMER_TIER_POTENTIAL))
    ).ticket
    assert walk_in.tier == t.CUSTOMER_TIER_POTENTIAL  # unknown again: the request's tier


async def test_open_ticket_reads_the_directory_once_until_the_customer_changes(
    stub: Stub, service: TicketingService, customer_log: JetStreamEventStore
) -> None:
    customer_id = f"C-{uuid.uuid4().hex[:12]}"
    runner = service.runners["customer_directory"]
    reads: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "customer_directory" in statement:
            reads.append(statement)

    sql_event.listen(service.engine, "before_cursor_execute", record)
    try:
        for _ in range(5):  # a walk-in: not in the directory, the request's tier
            ticket = (await stub.OpenTicket(open_request(customer_id=customer_id))).ticket
            assert ticket.tier == t.CUSTOMER_TIER_REGULAR
        assert len(reads) == 1

        promoted = await append(
            customer_log,
            customer_id,
            customer_events.CustomerRegistered(
                customer_id=customer_id,
                personal=customer_types.Sealed(key_version=1, nonce=b"n" * 12, ciphertext=b"x"),
            ),
            customer_events.SegmentAssigned(tier=customer_types.CUSTOMER_TIER_HIGH_VALUE),
        )
        assert await runner.wait_for(promoted, 10)
        for _ in range(3):  # the next ticket sees the change; the ones after it are cached
            ticket = (await stub.OpenTicket(open_request(customer_id=customer_id))).ticket
            assert ticket.tier == t.CUSTOMER_TIER_HIGH_VALUE
        assert len(reads) == 2
    finally:
        sql_event.remove(service.engine, "before_cursor_execute", record)


class HeldRead(readmodels.KnownCustomers):
    """Holds its first SQL read's answer until released (a worker thread still running)."""

    def __init__(self, engine: Engine, position: Callable[[], int]) -> None:
        super().__init__(engine, position)
        self.first_read_done = threading.Event()
        self.release = threading.Event()

    def _read(self, key: tuple[str, str, str]) -> readmodels.KnownCustomer | None:
        found = super()._read(key)
        if not self.first_read_done.is_set():
            self.first_read_done.set()
            self.release.wait(10)
        return found


async def test_a_read_that_raced_the_projection_is_not_cached(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'directory.db'}")
    readmodels.metadata.create_all(engine)
    position = 1
    known = HeldRead(engine, lambda: position)
    table = readmodels.customer_directory
    with engine.begin() as connection:
        connection.execute(insert(table).values(customer_id="C-1", tier="regular", version=1))

    early = asyncio.create_task(known.find(customer_id="C-1"))
    assert await asyncio.to_thread(known.first_read_done.wait, 10)
    with engine.begin() as connection:  # the projection applies a tier change meanwhile
        connection.execute(update(table).values(tier="high_value", version=2))
    position = 2
    assert await known.find(customer_id="C-1") == readmodels.KnownCustomer("C-1", "high_value")
    known.release.set()
    assert await early == readmodels.KnownCustomer("C-1", "regular")  # it began before

    # The early, older answer did not replace the newer one in the cache.
    assert await known.find(customer_id="C-1") == readmodels.KnownCustomer("C-1", "high_value")
    engine.dispose()
