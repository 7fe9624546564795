"""CustomerProfileService through gRPC on a real NATS server, with SQLite then PostgreSQL read
models and key store."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from careops.customer.v1 import customer_pb2 as pb
from careops.customer.v1 import customer_pb2_grpc
from careops.customer.v1 import types_pb2 as t
from careops.events.v1.envelope_pb2 import EventBatch
from careops.incident.v1 import events_pb2 as incident_events
from careops.incident.v1 import types_pb2 as incident_types
from careops.ticketing.v1 import events_pb2 as ticket_events
from careops.ticketing.v1 import types_pb2 as ticket_types
from careops_eventstore import StreamSpec
from careops_eventstore.jetstream import JetStreamEventStore
from careops_eventstore.nats_embedded import EmbeddedNats
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.orm import Session

from customer import domain as d
from customer import readmodels
from customer.application import CODEC, STREAM
from customer.keystore import customer_keys
from customer.main import CustomerService
from customer.reactions import SegmentSchedule
from customer.readmodels import customers
from tests.support import NotReached, appended_by, command_ids, eventually

# The module's service runs on SQLite, then on PostgreSQL (conftest.py).
pytestmark = pytest.mark.both_databases

Stub = customer_pb2_grpc.CustomerProfileServiceStub


def unique_contacts() -> tuple[str, str]:
    token = uuid.uuid4().hex[:10]
    return f"Person.{token}@Example.org", f"+44 7700 {int(token[:6], 16) % 1_000_000:06d}"


async def register(stub: Stub, email: str, phone: str, name: str = "Lin Wei") -> t.Customer:
    reply = await stub.RegisterCustomer(
        pb.RegisterCustomerRequest(
            profile=t.Profile(
                name=name, email=email, phone=phone, locale="zh-CN", notes="prefers calls"
            ),
            consent=t.Consent(marketing=True),
        )
    )
    return reply.customer


def violations(error: grpc.aio.AioRpcError) -> set[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    fields: set[str] = set()
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        detail.Unpack(bad_request)
        fields.update(violation.field for violation in bad_request.field_violations)
    return fields


def files_containing(root: Path, *needles: bytes) -> list[str]:
    """Returns the files under `root` whose bytes contain any needle."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {needle!r}" for needle in needles if needle in data]
    return hits


def rows_containing(engine: Engine, *needles: bytes) -> list[str]:
    """Returns the table rows (any column, text or bytea) that contain any needle."""
    hits = []
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    data = value if isinstance(value, bytes | memoryview) else str(value).encode()
                    hits += [f"{table}: {needle!r}" for needle in needles if needle in bytes(data)]
    return hits


@pytest.fixture(scope="module")
def stored(
    service: CustomerService, data_dir: Path, service_database_url: str
) -> Callable[..., list[str]]:
    """Scans where the service keeps its read models and keys for needles: the files under its
    data directory, and on PostgreSQL every row of its database."""

    def scan(*needles: bytes) -> list[str]:
        found = files_containing(data_dir, *needles)
        if service_database_url:
            found += rows_containing(service.engine, *needles)
        return found

    return scan


async def test_register_tag_update_find_and_list(stub: Stub) -> None:
    email, phone = unique_contacts()
    customer = await register(stub, email, phone)
    assert customer.customer_id.startswith("C-")
    assert customer.profile.email == email.lower()
    assert customer.profile.phone.startswith("+447700")
    assert customer.consent.marketing and customer.personal_data_available

    tagged = await stub.TagCustomer(
        pb.TagCustomerRequest(customer_id=customer.customer_id, add=["VIP", "technical"])
    )
    assert list(tagged.customer.tags) == ["technical", "vip"]
    _, new_phone = unique_contacts()
    updated = await stub.UpdateProfile(
        pb.UpdateProfileRequest(customer_id=customer.customer_id, phone=new_phone)
    )
    assert updated.customer.profile.name == "Lin Wei"
    assert updated.customer.profile.notes == "prefers calls"

    found = await stub.FindCustomer(
        pb.FindCustomerRequest(phone=new_phone, min_sequence=updated.sequence)
    )
    assert found.customer.customer_id == customer.customer_id
    assert found.customer.profile.email == email.lower()
    with pytest.raises(grpc.aio.AioRpcError) as old:
        await stub.FindCustomer(pb.FindCustomerRequest(phone=phone))
    assert old.value.code() is grpc.StatusCode.NOT_FOUND
    assert phone not in (old.value.details() or "")

    listed = await stub.ListCustomers(
        pb.ListCustomersRequest(tag="vip", min_sequence=updated.sequence)
    )
    assert customer.customer_id in [c.customer_id for c in listed.customers]
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await stub.RegisterCustomer(
            pb.RegisterCustomerRequest(profile=t.Profile(name="Other", email=email.upper()))
        )
    assert taken.value.code() is grpc.StatusCode.ALREADY_EXISTS


async def test_a_retried_registration_returns_the_same_customer(stub: Stub) -> None:
    email, phone = unique_contacts()
    request = pb.RegisterCustomerRequest(profile=t.Profile(name="Retry", email=email))
    key = [("idempotency-key", uuid.uuid4().hex)]
    first = await stub.RegisterCustomer(request, metadata=key)
    second = await stub.RegisterCustomer(request, metadata=key)
    assert (first.customer.customer_id, first.sequence) == (
        second.customer.customer_id,
        second.sequence,
    )


async def test_bad_input_gets_a_clear_status_and_appends_nothing(
    stub: Stub, log_store: JetStreamEventStore
) -> None:
    email, phone = unique_contacts()
    customer = await register(stub, email, phone)
    cid = customer.customer_id
    erased = await register(stub, *unique_contacts())
    await stub.EraseCustomer(
        pb.EraseCustomerRequest(
            customer_id=erased.customer_id, reason=t.ERASURE_REASON_CUSTOMER_REQUEST
        )
    )
    cases = [
        (
            stub.RegisterCustomer,
            pb.RegisterCustomerRequest(profile=t.Profile(name="X", email="not-an-email")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "profile.email",
        ),
        (
            stub.RegisterCustomer,
            pb.RegisterCustomerRequest(profile=t.Profile(name="", phone="12")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "profile.phone",
        ),
        (
            stub.RecordPurchase,
            pb.RecordPurchaseRequest(customer_id=cid, order_id="O-1", amount="-10", currency="EUR"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "amount",
        ),
        (
            stub.RecordPurchase,
            pb.RecordPurchaseRequest(customer_id=cid, order_id="O-1", amount="10", currency="ABC"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "currency",
        ),
        (
            stub.RecordPurchase,
            pb.RecordPurchaseRequest(
                customer_id=cid,
                order_id="O-1",
                amount="10",
                currency="EUR",
                purchased_at=Timestamp(seconds=10**13),  # beyond the year 9999
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "purchased_at",
        ),
        (
            stub.UpdateProfile,
            pb.UpdateProfileRequest(customer_id=cid, email="bad@"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "email",
        ),
        (
            stub.EraseCustomer,
            pb.EraseCustomerRequest(customer_id=cid),
            grpc.StatusCode.INVALID_ARGUMENT,
            "reason",
        ),
        (
            stub.EraseCustomer,
            pb.EraseCustomerRequest(
                customer_id=erased.customer_id, reason=t.ERASURE_REASON_CUSTOMER_REQUEST
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            None,
        ),
        (
            stub.TagCustomer,
            pb.TagCustomerRequest(customer_id=erased.customer_id, add=["vip"]),
            grpc.StatusCode.FAILED_PRECONDITION,
            None,
        ),
        (
            stub.GetCustomer360,
            pb.GetCustomer360Request(customer_id="C-does-not-exist"),
            grpc.StatusCode.NOT_FOUND,
            None,
        ),
        (
            stub.RecordPurchase,
            pb.RecordPurchaseRequest(
                customer_id="bad id", order_id="O", amount="1", currency="EUR"
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "customer_id",
        ),
    ]
    service = pb.DESCRIPTOR.services_by_name["CustomerProfileService"]
    for method, request, code, field in cases:
        idempotency_key = uuid.uuid4().hex
        before = {STREAM.name: await log_store.last_sequence(STREAM.name)}
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await method(request, metadata=(("idempotency-key", idempotency_key),))
        assert caught.value.code() is code, (request, caught.value.details())
        assert caught.value.details()
        if field:
            assert field in violations(caught.value), caught.value.details()
        # Other messages may land meanwhile (segments recomputed): none is this call's.
        assert await appended_by(log_store, before, command_ids(service, idempotency_key)) == []

    # An idempotency-key already spent on another purchase answers INVALID_ARGUMENT, not a
    # purchase it did not record (and not INTERNAL).
    key = (("idempotency-key", f"reused-{cid}"),)
    await stub.RecordPurchase(
        pb.RecordPurchaseRequest(customer_id=cid, order_id="K-1", amount="1", currency="EUR"),
        metadata=key,
    )
    before = {STREAM.name: await log_store.last_sequence(STREAM.name)}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RecordPurchase(
            pb.RecordPurchaseRequest(customer_id=cid, order_id="K-2", amount="1", currency="EUR"),
            metadata=key,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency-key" in violations(caught.value)
    assert await appended_by(log_store, before, command_ids(service, key[0][1])) == []


async def test_purchases_feed_rfm_and_the_360(stub: Stub) -> None:
    customer = await register(stub, *unique_contacts())
    cid = customer.customer_id
    last = None
    for index, amount in enumerate(("120.00", "80.50", "999.99")):
        last = await stub.RecordPurchase(
            pb.RecordPurchaseRequest(
                customer_id=cid, order_id=f"ORD-{index}", amount=amount, currency="CNY"
            )
        )
    assert last is not None
    assert last.purchase.amount_minor == 99999 and last.purchase.amount == "999.99"
    view = (
        await stub.GetCustomer360(
            pb.GetCustomer360Request(customer_id=cid, min_sequence=last.sequence)
        )
    ).view
    assert view.customer.purchase_count == 3
    assert view.monetary_minor == 12000 + 8050 + 99999
    assert [p.order_id for p in view.recent_purchases][:1] == ["ORD-2"]
    kinds = [entry.kind for entry in view.timeline]
    assert kinds.count("purchase") == 3 and "registered" in kinds
    assert view.customer.profile.name == "Lin Wei"


async def test_export_is_the_whole_readable_record(
    stub: Stub, service: CustomerService, log_store: JetStreamEventStore
) -> None:
    email, phone = unique_contacts()
    customer = await register(stub, email, phone)
    bought = await stub.RecordPurchase(
        pb.RecordPurchaseRequest(
            customer_id=customer.customer_id, order_id="EXP-1", amount="5", currency="USD"
        )
    )
    # The tier ranks the customer against the module's other customers and is appended by the
    # segmenter after the purchase: once the purchase is in the read models, settle it, then
    # export at a sequence that includes it.
    await stub.GetCustomer360(
        pb.GetCustomer360Request(customer_id=customer.customer_id, min_sequence=bought.sequence)
    )
    assert service.segmenter is not None
    await service.segmenter.recompute([customer.customer_id])
    settled = await log_store.last_sequence(STREAM.name)
    export = await stub.ExportCustomerData(
        pb.ExportCustomerDataRequest(customer_id=customer.customer_id, min_sequence=settled)
    )
    view = await stub.GetCustomer360(
        pb.GetCustomer360Request(customer_id=customer.customer_id, min_sequence=settled)
    )
    document = json.loads(export.document_json)
    assert document["customer"]["profile"]["email"] == email.lower()
    assert document["customer"]["profile"]["notes"] == "prefers calls"
    assert document["purchases"][0]["amount"] == "5.00"
    assert document["erased"] is False
    assert document["customer"]["consent"] == {"marketing": True, "profiling": False}
    assert view.view.customer.tier != t.CUSTOMER_TIER_UNSPECIFIED
    assert document["customer"]["tier"] == t.CustomerTier.Name(view.view.customer.tier)


async def test_erasure_shreds_the_personal_data_everywhere(
    stub: Stub,
    service: CustomerService,
    log_store: JetStreamEventStore,
    module_nats: EmbeddedNats,
    stored: Callable[..., list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    email, phone = unique_contacts()
    customer = await register(stub, email, phone, name="Zhang Erasable")
    cid = customer.customer_id
    await stub.TagCustomer(pb.TagCustomerRequest(customer_id=cid, add=["sensitive"]))
    bought = await stub.RecordPurchase(
        pb.RecordPurchaseRequest(customer_id=cid, order_id="E-1", amount="42.00", currency="EUR")
    )
    await stub.GetCustomer360(
        pb.GetCustomer360Request(customer_id=cid, min_sequence=bought.sequence)
    )
    normalized_phone = customer.profile.phone
    needles = [
        email.encode(),
        email.lower().encode(),
        normalized_phone.encode(),
        b"Zhang Erasable",
    ]
    # Plaintext never reaches the log or the read models, not even before erasure.
    assert files_containing(Path(module_nats.data_dir), *needles) == []
    assert stored(*needles) == []
    with service.keys_engine.connect() as connection:
        wrapped = connection.execute(
            select(customer_keys.c.wrapped_key).where(customer_keys.c.customer_id == cid)
        ).scalar_one()
    assert wrapped
    # Positive controls: the scan does see what is there (the key, the contact's keyed hash).
    assert service.app is not None
    digest = service.app.hash_contact("email", email).encode()
    assert stored(wrapped)
    assert stored(digest)

    erased = await stub.EraseCustomer(
        pb.EraseCustomerRequest(customer_id=cid, reason=t.ERASURE_REASON_CUSTOMER_REQUEST)
    )
    view = (
        await stub.GetCustomer360(
            pb.GetCustomer360Request(customer_id=cid, min_sequence=erased.sequence)
        )
    ).view
    assert view.customer.forgotten and not view.customer.personal_data_available
    assert view.customer.profile == t.Profile()
    assert list(view.customer.tags) == []
    assert view.customer.purchase_count == 1 and view.monetary_minor == 0  # EUR, not CNY
    assert [p.order_id for p in view.recent_purchases] == ["E-1"]  # non-personal facts survive
    for request in (pb.FindCustomerRequest(email=email), pb.FindCustomerRequest(phone=phone)):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.FindCustomer(request)
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    document = json.loads(
        (await stub.ExportCustomerData(pb.ExportCustomerDataRequest(customer_id=cid))).document_json
    )
    assert document["erased"] is True
    profile = document["customer"].get("profile", {})
    assert not any(profile.get(k) for k in ("name", "email", "phone"))

    # The key is gone, durably, and its bytes are nowhere in the store.
    state = service.app.keys.state(cid) if service.app else None
    assert state is not None and not state.live and state.destroyed_at is not None
    assert stored(wrapped) == []
    assert rows_containing(service.engine, digest) == []  # no row keeps the contact's hash
    # Every sealed record of this customer on the raw log resists every key that is left.
    sealed = []
    for message in await log_store.read_subject(
        stream=STREAM.name, subject=f"careops.customer.customer.{cid}"
    ):
        for decoded in CODEC.decode_batch(message.batch):
            personal = getattr(decoded.event, "personal", None)
            if isinstance(personal, d.Sealed):
                sealed.append(personal)
    assert len(sealed) == 1
    assert service.app is not None
    remaining = service.app.keys.live_keys()
    assert cid not in remaining and remaining
    for key in remaining.values():
        for record in sealed:
            with pytest.raises(InvalidTag):
                AESGCM(key).decrypt(
                    record.nonce, record.ciphertext, f"careops-customer:personal:{cid}".encode()
                )
    # A rebuild of the read model cannot bring anything back.
    await service.runners["customers"].rebuild()
    assert await service.runners["customers"].wait_for(erased.sequence, 10)
    again = (await stub.GetCustomer360(pb.GetCustomer360Request(customer_id=cid))).view
    assert again.customer.forgotten and again.customer.profile == t.Profile()
    assert files_containing(Path(module_nats.data_dir), *needles) == []
    assert stored(*needles) == []
    assert "customer erased" in caplog.text  # the logs are captured ...
    logged = caplog.text.encode()
    assert not any(needle in logged for needle in needles)  # ... and hold no personal data


async def test_an_interrupted_erasure_is_completed_at_start(
    stub: Stub, service: CustomerService
) -> None:
    email, phone = unique_contacts()
    reply = await stub.RegisterCustomer(
        pb.RegisterCustomerRequest(profile=t.Profile(name="Interrupted", email=email))
    )
    customer = reply.customer
    assert service.app is not None
    # The process died after destroying the key, before appending CustomerForgotten.
    service.app.keys.destroy(customer.customer_id, service.app.clock(), "customer_request")
    view = (
        await stub.GetCustomer360(
            pb.GetCustomer360Request(customer_id=customer.customer_id, min_sequence=reply.sequence)
        )
    ).view
    assert not view.customer.personal_data_available  # already unreadable
    assert not view.customer.forgotten
    completed = await service.app.reconcile_erasures()
    assert completed == 1
    state, _ = await service.app.get(customer.customer_id)
    assert state.forgotten
    assert await service.app.reconcile_erasures() == 0


async def test_list_customers_pages_and_filters(stub: Stub) -> None:
    tag = f"page-{uuid.uuid4().hex[:8]}"
    ids = []
    last = 0
    for _ in range(5):
        customer = await register(stub, *unique_contacts())
        tagged = await stub.TagCustomer(
            pb.TagCustomerRequest(customer_id=customer.customer_id, add=[tag])
        )
        ids.append(customer.customer_id)
        last = tagged.sequence
    seen: list[str] = []
    token = ""
    for _ in range(3):
        page = await stub.ListCustomers(
            pb.ListCustomersRequest(tag=tag, page_size=2, page_token=token, min_sequence=last)
        )
        seen += [c.customer_id for c in page.customers]
        token = page.next_page_token
    assert seen == ids[::-1] and token == ""
    regular = await stub.ListCustomers(
        pb.ListCustomersRequest(tag=tag, tier=t.CUSTOMER_TIER_REGULAR, page_size=10)
    )
    assert len(regular.customers) == 5
    assert all(c.profile.name == "Lin Wei" for c in regular.customers)
    none = await stub.ListCustomers(
        pb.ListCustomersRequest(tag=tag, tier=t.CUSTOMER_TIER_HIGH_VALUE, churn_risk_only=True)
    )
    assert list(none.customers) == []
    for request, field in (
        (pb.ListCustomersRequest(page_size=501), "page_size"),
        (pb.ListCustomersRequest(page_token="!!"), "page_token"),
        (pb.ListCustomersRequest(tag="Not A Tag"), "tag"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListCustomers(request)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field in violations(caught.value)


async def test_a_retried_erasure_returns_the_original_result(
    stub: Stub, log_store: JetStreamEventStore
) -> None:
    customer = await register(stub, *unique_contacts())
    request = pb.EraseCustomerRequest(
        customer_id=customer.customer_id, reason=t.ERASURE_REASON_CONSENT_WITHDRAWN
    )
    key = [("idempotency-key", uuid.uuid4().hex)]
    first = await stub.EraseCustomer(request, metadata=key)
    head = await log_store.last_sequence(STREAM.name)
    again = await stub.EraseCustomer(request, metadata=key)
    assert (again.sequence, again.customer_id) == (first.sequence, first.customer_id)
    assert await log_store.last_sequence(STREAM.name) == head
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await stub.EraseCustomer(request)
    assert twice.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "already erased" in (twice.value.details() or "")


async def test_recency_decays_with_time_alone(stub: Stub, service: CustomerService) -> None:
    customer = await register(stub, *unique_contacts())
    cid = customer.customer_id
    await stub.RecordPurchase(
        pb.RecordPurchaseRequest(customer_id=cid, order_id="D-1", amount="50", currency="CNY")
    )
    assert service.app is not None and service.segmenter is not None
    app, real_clock = service.app, service.app.clock
    later = real_clock() + timedelta(weeks=17)

    async def churn_flag() -> bool:
        async def flagged() -> bool:
            found = await stub.ListCustomers(
                pb.ListCustomersRequest(churn_risk_only=True, page_size=500)
            )
            return cid in [c.customer_id for c in found.customers]

        return await eventually(flagged, what="flagged as a churn risk")

    # No event arrives for 17 weeks: only the periodic recomputation can notice.
    app.clock = lambda: later
    schedule = SegmentSchedule(service.segmenter, interval_seconds=0.05, initial_delay_seconds=0)
    schedule.start()
    try:
        assert await churn_flag()
    finally:
        await schedule.stop()
        app.clock = real_clock
    view = (await stub.GetCustomer360(pb.GetCustomer360Request(customer_id=cid))).view
    assert view.customer.churn_risk and view.customer.tier == t.CUSTOMER_TIER_LOW_FREQUENCY
    assert "churn risk" in view.timeline[0].summary
    await service.segmenter.recompute(None)  # back in the present: not a churn risk any more
    assert not await still_flagged(stub, cid)


async def still_flagged(stub: Stub, customer_id: str) -> bool:
    """Returns True if the customer is still flagged after waiting for the read model."""

    async def unflagged() -> bool:
        view = (await stub.GetCustomer360(pb.GetCustomer360Request(customer_id=customer_id))).view
        return not view.customer.churn_risk

    try:
        await eventually(unflagged, what="no longer a churn risk")
    except NotReached:
        return True
    return False


async def test_incidents_that_name_the_customer_join_the_timeline(
    stub: Stub, log_store: JetStreamEventStore
) -> None:
    customer = await register(stub, *unique_contacts())
    cid = customer.customer_id
    await log_store.ensure_stream(StreamSpec("CAREOPS_INCIDENT", ("careops.incident.>",)))
    declared = incident_events.IncidentDeclared(
        incident_id="I-surge-1",
        type="complaint_surge",
        title="Zhang Wei and 40 others cannot pay",  # free text, may name people
        level=incident_types.INCIDENT_LEVEL_B,
        customer_ids=[cid, "C-other"],
    )
    drill = incident_events.IncidentDeclared(
        incident_id="I-drill", type="server_crash", title="Drill", drill=True, customer_ids=[cid]
    )
    for incident_id, event in (("I-surge-1", declared), ("I-drill", drill)):
        await append_foreign_event(log_store, "incident", incident_id, event)

    entries = await eventually(
        lambda: incident_entries(stub, cid), what="the incident on the timeline"
    )
    assert [e.kind for e in entries] == ["incident_declared"]
    # The drill is left out; the title (free text) is not copied, the type is.
    assert entries[0].summary == "affected by level B incident I-surge-1 (complaint surge)"


@pytest.mark.parametrize("ticket_first", [True, False], ids=["ticket-first", "incident-first"])
async def test_incidents_linked_by_ticket_alone_join_the_owners_timeline(
    stub: Stub, log_store: JetStreamEventStore, ticket_first: bool
) -> None:
    """DeclareIncident / LinkTickets with ticket ids and no customer ids still reach the 360 of
    the tickets' customer, whichever stream customer-profile reads first."""
    cid = (await register(stub, *unique_contacts())).customer_id
    other = (await register(stub, *unique_contacts())).customer_id
    await log_store.ensure_stream(StreamSpec("CAREOPS_INCIDENT", ("careops.incident.>",)))
    await log_store.ensure_stream(StreamSpec("CAREOPS_TICKETING", ("careops.ticketing.>",)))
    suffix = uuid.uuid4().hex[:8]
    first, second, others = f"T-a-{suffix}", f"T-b-{suffix}", f"T-c-{suffix}"
    declared_id, linked_id = f"I-decl-{suffix}", f"I-link-{suffix}"
    opened = [
        (ticket_id, ticket_events.TicketOpened(ticket_id=ticket_id, customer_id=owner))
        for ticket_id, owner in ((first, cid), (second, cid), (others, other))
    ]
    incident_side = [
        (
            declared_id,
            incident_events.IncidentDeclared(
                incident_id=declared_id,
                type="payment_outage",
                level=incident_types.INCIDENT_LEVEL_B,
                ticket_ids=[first, second],  # two tickets of one customer: one entry
            ),
        ),
        (linked_id, incident_events.TicketsLinked(ticket_ids=[second])),
    ]

    async def publish_tickets() -> None:
        for ticket_id, event in opened:
            await append_foreign_event(log_store, "ticket", ticket_id, event)

    async def publish_incidents() -> None:
        for incident_id, event in incident_side:
            await append_foreign_event(log_store, "incident", incident_id, event)

    order = [publish_tickets, publish_incidents]
    for publish in order if ticket_first else reversed(order):
        await publish()

    async def both() -> list[t.TimelineEntry] | None:
        entries = await incident_entries(stub, cid)
        return entries if entries and len(entries) >= 2 else None

    entries = await eventually(both, what="both incidents on the owner's timeline")
    assert sorted((e.kind, e.summary) for e in entries) == [
        ("incident_declared", f"affected by level B incident {declared_id} (payment outage)"),
        ("incident_linked", f"ticket linked to incident {linked_id}"),
    ]
    assert {e.ticket_id for e in entries if e.kind == "incident_linked"} == {second}
    # The other customer's ticket was linked to neither incident.
    assert await incident_entries(stub, other) is None


async def test_the_timeline_shows_the_emotion_of_each_customer_message(
    stub: Stub, log_store: JetStreamEventStore
) -> None:
    """Emotion over time in the 360 (DOMAIN §4): the opening and each customer reply carry the
    emotion ticketing recorded on the event; agents' replies carry none."""
    cid = (await register(stub, *unique_contacts())).customer_id
    await log_store.ensure_stream(StreamSpec("CAREOPS_TICKETING", ("careops.ticketing.>",)))
    ticket_id = f"T-emo-{uuid.uuid4().hex[:8]}"
    customer, agent = ticket_types.AUTHOR_CUSTOMER, ticket_types.AUTHOR_AGENT
    batch = EventBatch()
    for event in (
        ticket_events.TicketOpened(
            ticket_id=ticket_id, customer_id=cid, emotion=ticket_types.EMOTION_ANGRY
        ),
        ticket_events.ReplyAdded(author=agent, author_id="A-1"),
        ticket_events.ReplyAdded(author=customer, emotion=ticket_types.EMOTION_SATISFIED),
    ):
        envelope = batch.events.add(
            event_id=uuid.uuid4().hex,
            type=event.DESCRIPTOR.full_name,
            aggregate_id=ticket_id,
            aggregate_type="ticket",
        )
        envelope.occurred_at.GetCurrentTime()
        envelope.payload.Pack(event)
    await log_store.append(
        stream="CAREOPS_TICKETING",
        subject=f"careops.ticketing.ticket.{ticket_id}",
        batch=batch,
        expected_sequence=0,
        message_id=uuid.uuid4().hex,
    )

    async def three() -> list[t.TimelineEntry] | None:
        view = (await stub.GetCustomer360(pb.GetCustomer360Request(customer_id=cid))).view
        entries = [e for e in view.timeline if e.ticket_id == ticket_id]
        return entries if len(entries) == 3 else None

    entries = await eventually(three, what="the ticket's three entries")
    assert sorted((e.kind, e.emotion) for e in entries) == [
        ("agent_replied", ""),
        ("customer_replied", "satisfied"),
        ("ticket_opened", "angry"),
    ]


async def test_the_segment_reactions_ack_what_they_do_not_react_to_unread(
    stub: Stub, log_store: JetStreamEventStore
) -> None:
    """customer-segments reacts to purchases and customer-contacts to new tickets (their
    `event_types`): a registration and a ticket's reply are acked unread, counted as passed,
    and a purchase and a new ticket are handled."""

    def counted(reaction: str, outcome: str) -> float:
        labels = {"reaction": reaction, "outcome": outcome}
        return REGISTRY.get_sample_value("careops_reaction_messages_total", labels) or 0.0

    outcomes = [
        (reaction, outcome)
        for reaction in ("customer-segments", "customer-contacts")
        for outcome in ("passed", "handled")
    ]
    before = {key: counted(*key) for key in outcomes}
    cid = (await register(stub, *unique_contacts())).customer_id
    await stub.RecordPurchase(
        pb.RecordPurchaseRequest(customer_id=cid, order_id="P-1", amount="20", currency="CNY")
    )
    await log_store.ensure_stream(StreamSpec("CAREOPS_TICKETING", ("careops.ticketing.>",)))
    ticket_id = f"T-pass-{uuid.uuid4().hex[:8]}"
    opened = ticket_events.TicketOpened(ticket_id=ticket_id, customer_id=cid)
    await append_foreign_event(log_store, "ticket", ticket_id, opened)
    reply = ticket_events.ReplyAdded(author=ticket_types.AUTHOR_AGENT, author_id="A-1")
    await append_foreign_event(log_store, "ticket", f"{ticket_id}-2", reply)

    def each_counted() -> dict[tuple[str, str], float] | None:
        grown = {key: counted(*key) - before[key] for key in outcomes}
        return grown if all(grown.values()) else None

    # Counters only grow: each outcome of each reaction counted at least one batch more.
    await eventually(each_counted, what="each reaction passing one batch, handling one")


async def incident_entries(stub: Stub, customer_id: str) -> list[t.TimelineEntry] | None:
    """Returns the incident entries of the customer's 360 timeline, or None if there are none."""
    view = (await stub.GetCustomer360(pb.GetCustomer360Request(customer_id=customer_id))).view
    return [e for e in view.timeline if e.source == "incident"] or None


async def append_foreign_event(
    log_store: JetStreamEventStore, aggregate_type: str, aggregate_id: str, event: Message
) -> None:
    """Appends `event` as another context (incident or ticketing) would, on its stream."""
    context = "incident" if aggregate_type == "incident" else "ticketing"
    batch = EventBatch()
    envelope = batch.events.add(
        event_id=uuid.uuid4().hex,
        type=event.DESCRIPTOR.full_name,
        aggregate_id=aggregate_id,
        aggregate_type=aggregate_type,
    )
    envelope.occurred_at.GetCurrentTime()
    envelope.payload.Pack(event)
    await log_store.append(
        stream=f"CAREOPS_{context.upper()}",
        subject=f"careops.{context}.{aggregate_type}.{aggregate_id}",
        batch=batch,
        expected_sequence=0,
        message_id=uuid.uuid4().hex,
    )


async def test_metrics_count_customers_by_tier_erasures_and_exports(
    stub: Stub, service: CustomerService
) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    customer = await register(stub, *unique_contacts())
    erasures = sample("careops_customer_erasures_total", reason="legal_order")
    exports = sample("careops_customer_export_requests_total")
    await stub.ExportCustomerData(
        pb.ExportCustomerDataRequest(
            customer_id=customer.customer_id, min_sequence=customer.version
        )
    )
    erased = await stub.EraseCustomer(
        pb.EraseCustomerRequest(
            customer_id=customer.customer_id, reason=t.ERASURE_REASON_LEGAL_ORDER
        )
    )
    assert sample("careops_customer_erasures_total", reason="legal_order") == erasures + 1
    assert sample("careops_customer_export_requests_total") == exports + 1
    await stub.GetCustomer360(
        pb.GetCustomer360Request(customer_id=customer.customer_id, min_sequence=erased.sequence)
    )
    [family] = service.collector.collect()
    by_tier = {s.labels["tier"]: s.value for s in family.samples}
    assert set(by_tier) == {tier.value for tier in d.Tier}
    with Session(service.engine) as session:
        live = session.execute(
            select(func.count()).select_from(customers).where(customers.c.forgotten.is_(False))
        ).scalar_one()
    assert sum(by_tier.values()) == live  # erased customers are not counted


async def test_windows_bound_frequency_and_monetary_not_recency(
    stub: Stub, service: CustomerService
) -> None:
    customer = await register(stub, *unique_contacts())
    cid = customer.customer_id
    old = datetime.now(UTC) - timedelta(days=400)
    await stub.RecordPurchase(
        pb.RecordPurchaseRequest(
            customer_id=cid,
            order_id="W-old",
            amount="70",
            currency="CNY",
            purchased_at=Timestamp(seconds=int(old.timestamp())),
        )
    )
    bought = await stub.RecordPurchase(
        pb.RecordPurchaseRequest(customer_id=cid, order_id="W-new", amount="5", currency="EUR")
    )
    await stub.GetCustomer360(
        pb.GetCustomer360Request(customer_id=cid, min_sequence=bought.sequence)
    )
    now = datetime.now(UTC)
    with Session(service.engine) as session:
        [wide] = readmodels.activities(
            session=session,
            frequency_since=now - timedelta(days=500),
            monetary_since=now - timedelta(days=500),
            currency="CNY",
            customer_ids=[cid],
        )
        [narrow] = readmodels.activities(
            session=session,
            frequency_since=now - timedelta(days=30),
            monetary_since=now - timedelta(days=30),
            currency="CNY",
            customer_ids=[cid],
        )
    assert (wide.frequency, wide.monetary) == (2, 7000)
    assert (narrow.frequency, narrow.monetary) == (1, 0)  # the EUR order counts, the old not
    assert narrow.last_purchase_at == wide.last_purchase_at and wide.last_purchase_at is not None
    assert wide.last_purchase_at > now - timedelta(minutes=1)
