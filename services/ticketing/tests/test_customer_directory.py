"""Ticketing's projection of customer-profile events: tiers for the SLA, links by contact.

The customer events are appended to CAREOPS_CUSTOMER as customer-profile writes them (its
protos, one envelope per event); no customer-profile code runs here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
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

from ticketing.main import TicketingService
from ticketing.tests.test_grpc_api import Stub, open_request

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
