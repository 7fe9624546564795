"""The conversation and macro projections on real SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from careops_eventstore.codec import EnvelopeContext
from careops_eventstore.model import RecordedBatch
from careops_eventstore.projection import apply_batch
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ticketing import domain as d
from ticketing import readmodels
from ticketing.application import CODEC, STREAM
from ticketing.projections import ConversationProjection, MacroListProjection
from ticketing.tests.test_projections import engine as engine  # noqa: F401 (the fixture)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OPENED = d.TicketOpened(
    "T-a",
    "C-1",
    d.Channel.EMAIL,
    d.TicketType.FAULT,
    d.Priority.HIGH,
    "Broken",
    "E42",
    d.CustomerTier.REGULAR,
)


def batch(sequence: int, aggregate: str, kind: str, events: list[object]) -> RecordedBatch:
    context = EnvelopeContext(aggregate, kind, uuid.uuid4().hex, NOW, actor="ag-9")
    return RecordedBatch(STREAM.name, f"s.{aggregate}", sequence, CODEC.encode(events, context))


def page(engine: Engine, after: int = 0, internal: bool = True) -> list[readmodels.MessageRow]:
    with Session(engine) as session:
        return readmodels.conversation_page(
            session=session, ticket_id="T-a", page_size=50, after_entry=after, internal=internal
        )


def test_each_text_is_one_entry_in_log_order_two_in_one_batch_included(engine: Engine) -> None:
    log = [
        batch(1, "T-a", "ticket", [OPENED]),
        batch(2, "T-a", "ticket", [d.ReplyAdded(d.Author.CUSTOMER, "C-1", "hello")]),
        batch(3, "T-a", "ticket", [d.TicketAssigned("ag-9")]),  # no text: no entry
        batch(
            4,
            "T-a",
            "ticket",
            [
                d.ReplyAdded(d.Author.AGENT, "ag-9", "fuser?", internal=True),
                d.TicketHeld(d.HoldReason.WAITING_INTERNAL, "asked the lab"),
            ],
        ),
        batch(5, "T-a", "ticket", [d.TicketResolved("replaced", first_contact=False)]),
        batch(6, "T-a", "macro", [d.MacroPut("Same id", "a macro's text", 1)]),  # not the ticket's
    ]
    apply_batch(
        engine, ConversationProjection(), CODEC, STREAM.name, log, [b.sequence for b in log]
    )
    rows = page(engine)
    assert [(r.sequence, r.kind, r.body, r.internal) for r in rows] == [
        (1, "opened", "E42", False),
        (2, "reply", "hello", False),
        (4, "note", "fuser?", True),
        (4, "hold", "asked the lab", True),
        (5, "resolution", "replaced", False),
    ]
    assert rows[0].subject == "Broken" and rows[0].author_id == "C-1"
    # Replies without a channel of their own and actions take the ticket's; actions name the actor.
    assert {r.channel for r in rows} == {"email"}
    assert (rows[3].author, rows[3].author_id) == ("", "ag-9")
    assert [r.kind for r in page(engine, internal=False)] == ["opened", "reply", "resolution"]
    assert [r.kind for r in page(engine, after=rows[2].entry)] == ["hold", "resolution"]
    with Session(engine) as session:
        customers = session.execute(readmodels.conversation.select()).all()
    assert {row.customer_id for row in customers} == {"C-1"}  # what a shredder selects by


def test_macros_keep_their_last_version_and_a_deleted_one_goes(engine: Engine) -> None:
    log = [
        batch(1, "hi", "macro", [d.MacroPut("Hi", "Hi {customer_name}", 1)]),
        batch(2, "bye", "macro", [d.MacroPut("Bye", "Bye", 1)]),
        batch(3, "hi", "macro", [d.MacroPut("Hi", "Hello {customer_name}", 2)]),
        batch(4, "bye", "macro", [d.MacroDeleted(1)]),
        batch(5, "hi", "ticket", [d.ReplyAdded(d.Author.CUSTOMER, "C-1", "a ticket's text")]),
    ]
    apply_batch(engine, MacroListProjection(), CODEC, STREAM.name, log, [b.sequence for b in log])
    with Session(engine) as session:
        macros = readmodels.list_macros(session=session)
    assert [(m.macro_id, m.version, m.body) for m in macros] == [("hi", 2, "Hello {customer_name}")]
