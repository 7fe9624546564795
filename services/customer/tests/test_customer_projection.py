"""The customers projection writes through careops_eventstore.rows (one executemany per kind of
row): every kind of customer event, applied in one batch, in pages, and one at a time, gives the
same rows, on real SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from careops_eventstore.batches import apply_batch, reset
from careops_eventstore.codec import EnvelopeContext
from careops_eventstore.model import RecordedBatch
from careops_platform.db import migrate
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from customer import domain as d
from customer import readmodels
from customer.application import CODEC
from customer.projections import CustomerProjection
from customer.readmodels import activity
from tests.support import apply_one_at_a_time, tables_content

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
STREAM = "CAREOPS_CUSTOMER"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _sealed(tag: bytes) -> d.Sealed:
    return d.Sealed(1, tag * 12, tag * 40)


def _registered(customer_id: str, email_hash: str) -> d.CustomerRegistered:
    return d.CustomerRegistered(
        customer_id, _sealed(b"r"), email_hash, "", "zh-CN", d.Consent(marketing=True)
    )


def _bought(order_id: str, minor: int, at: datetime) -> d.PurchaseRecorded:
    return d.PurchaseRecorded(order_id, minor, "CNY", at)


def customer_log() -> list[RecordedBatch]:
    """Every kind of customer event, for three customers interleaved: registrations, a profile
    change, tags added and removed (twice in one event), purchases out of time order, segments,
    a notice, an erasure, and a message of two events."""
    segment = d.SegmentAssigned(d.Tier.HIGH_VALUE, 5, 4, 4, False, "rfm-1", T0)
    events: list[tuple[str, list[Any]]] = [
        ("C-1", [_registered("C-1", "h1")]),
        ("C-2", [_registered("C-2", "h2")]),
        ("C-1", [_bought("O-1", 9900, T0 + timedelta(days=2))]),
        ("C-1", [_bought("O-2", 500, T0)]),  # earlier than the last purchase: it stays
        ("C-2", [d.CustomerTagged(added=("vip", "sensitive"))]),
        ("C-1", [segment]),
        ("C-2", [d.CustomerTagged(added=("technical",), removed=("vip", "vip"))]),
        (
            "C-2",
            [
                d.ProfileUpdated(_sealed(b"p"), "h2b", "ph2", "en", None, ("email", "phone")),
                _bought("O-3", 100, T0 + timedelta(days=1)),
            ],
        ),
        ("C-3", [_registered("C-3", "")]),
        ("C-2", [d.CustomerTagged(removed=("sensitive",))]),
        ("C-1", [d.CustomerNotified("I-1", "N-1", "tpl", 1, "email", "en", True)]),
        ("C-3", [d.CustomerNotified("I-1", "N-2", "tpl", 1, "email", "en", False, "refused")]),
        ("C-2", [d.CustomerForgotten(d.ErasureReason.CUSTOMER_REQUEST)]),
        ("C-1", [_bought("O-4", 1200, T0 + timedelta(days=3))]),
        ("C-1", [d.SegmentAssigned(d.Tier.POTENTIAL, 3, 3, 3, True, "rfm-1", T0)]),
    ]
    log = []
    for sequence, (customer_id, payloads) in enumerate(events, start=1):
        at = T0 + timedelta(minutes=sequence)
        context = EnvelopeContext(customer_id, "customer", uuid.uuid4().hex, at)
        subject = f"careops.customer.customer.{customer_id}"
        log.append(RecordedBatch(STREAM, subject, sequence, CODEC.encode(payloads, context)))
    return log


def content(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """tables_content, the timeline's rows in the order of their ids but without them (a
    PostgreSQL sequence goes on counting after a reset)."""
    found = tables_content(engine, CustomerProjection())
    found[activity.name] = [row[1:] for row in sorted(found[activity.name])]
    return found


def statements(engine: Engine) -> list[int]:
    """Counts the statements sent to the database from now on."""
    sent: list[int] = []

    def count(*_args: Any) -> None:
        sent.append(1)

    event.listen(engine, "before_cursor_execute", count)
    return sent


def test_one_batch_and_pages_write_what_one_event_at_a_time_writes(
    read_model_engine: Engine,
) -> None:
    engine = read_model_engine
    migrate(engine, MIGRATIONS)
    log = customer_log()
    projection = CustomerProjection()
    sent = statements(engine)
    apply_one_at_a_time(engine, projection, CODEC, log)
    one_by_one = len(sent)
    expected = content(engine)
    reset(engine, projection)

    sent.clear()
    outcome = apply_batch(engine, projection, CODEC, STREAM, log, [m.sequence for m in log])
    assert outcome.parked == [] and outcome.applied == 16
    assert content(engine) == expected
    assert len(sent) < one_by_one  # one executemany per kind of row
    reset(engine, projection)

    for start in range(0, len(log), 4):
        page = log[start : start + 4]
        apply_batch(engine, projection, CODEC, STREAM, page, [m.sequence for m in page])
    assert content(engine) == expected


def test_the_rows_say_what_the_events_said(read_model_engine: Engine) -> None:
    engine = read_model_engine
    migrate(engine, MIGRATIONS)
    log = customer_log()
    apply_batch(engine, CustomerProjection(), CODEC, STREAM, log, [m.sequence for m in log])
    with Session(engine) as session:
        first = readmodels.get(session=session, customer_id="C-1")
        erased = readmodels.get(session=session, customer_id="C-2")
        third = readmodels.get(session=session, customer_id="C-3")
        bought = readmodels.all_purchases(session=session, customer_id="C-1")
        timeline = readmodels.timeline(session=session, customer_id="C-1", limit=50)
    assert first is not None and erased is not None and third is not None
    assert first.purchase_count == 3 and first.last_purchase_at == T0 + timedelta(days=3)
    assert first.segment == d.Segment(d.Tier.POTENTIAL, 3, 3, 3, True)
    assert first.sealed == _sealed(b"r") and first.version == 15
    assert [p.order_id for p in bought] == ["O-2", "O-1", "O-4"]
    assert [entry.kind for entry in timeline][:2] == ["segment", "purchase"]
    assert erased.forgotten and erased.sealed is None and erased.tags == ()
    assert erased.purchase_count == 1 and erased.locale == ""
    assert third.tags == () and third.version == 12 and third.purchase_count == 0


def test_a_contact_s_owner_is_the_customer_find_by_contact_finds(read_model_engine: Engine) -> None:
    engine = read_model_engine
    migrate(engine, MIGRATIONS)
    log = customer_log()
    log.append(
        RecordedBatch(  # a newer customer with C-1's e-mail: the newest live one owns it
            STREAM,
            "careops.customer.customer.C-4",
            16,
            CODEC.encode([_registered("C-4", "h1")], EnvelopeContext("C-4", "customer", "x", T0)),
        )
    )
    apply_batch(engine, CustomerProjection(), CODEC, STREAM, log, [m.sequence for m in log])
    cases = [("email", "h1"), ("email", "h2"), ("email", "h2b"), ("phone", "ph2"), ("phone", "")]
    with Session(engine) as session, engine.connect() as connection:
        for kind, digest in cases:
            found = readmodels.find_by_contact(session=session, kind=kind, digest=digest)
            owner = readmodels.contact_owner(connection=connection, kind=kind, digest=digest)
            assert owner == (found.customer_id if found is not None else None)
        assert readmodels.contact_owner(connection=connection, kind="email", digest="h1") == "C-4"
        assert readmodels.contact_owner(connection=connection, kind="phone", digest="ph2") is None


def test_one_customer_s_segmentation_inputs_are_the_ones_of_everyone_s_read(
    read_model_engine: Engine,
) -> None:
    """readmodels.activities for one customer (prebuilt statements), for several and for
    everyone gives each customer the same inputs (the windows and the currency apply)."""
    engine = read_model_engine
    migrate(engine, MIGRATIONS)
    log = customer_log()
    apply_batch(engine, CustomerProjection(), CODEC, STREAM, log, [m.sequence for m in log])
    windows: dict[str, Any] = {
        "frequency_since": T0 + timedelta(days=1),
        "monetary_since": T0,
        "currency": "CNY",
    }
    with Session(engine) as session:
        everyone = {a.customer_id: a for a in readmodels.activities(session=session, **windows)}
        assert sorted(everyone) == ["C-1", "C-3"]  # C-2 was erased
        assert (everyone["C-1"].frequency, everyone["C-1"].monetary) == (2, 11600)
        for ids in (["C-1"], ["C-3"], ["C-1", "C-3"], ["C-2"]):
            found = readmodels.activities(session=session, customer_ids=ids, **windows)
            assert {a.customer_id: a for a in found} == {
                i: everyone[i] for i in ids if i in everyone
            }


def test_one_customer_s_recorded_segment_is_the_one_of_a_read_of_several(
    read_model_engine: Engine,
) -> None:
    engine = read_model_engine
    migrate(engine, MIGRATIONS)
    log = customer_log()
    apply_batch(engine, CustomerProjection(), CODEC, STREAM, log, [m.sequence for m in log])
    with Session(engine) as session:
        several = readmodels.recorded_segments(session=session, customer_ids=["C-1", "C-3", "C-9"])
        assert several["C-1"] == (15, d.Segment(d.Tier.POTENTIAL, 3, 3, 3, True))
        assert sorted(several) == ["C-1", "C-3"]
        for customer_id in ("C-1", "C-3"):
            one = readmodels.recorded_segments(session=session, customer_ids=[customer_id])
            assert one == {customer_id: several[customer_id]}
        assert readmodels.recorded_segments(session=session, customer_ids=["C-9"]) == {}
