"""Pure tests of internal notes and macros: the first-response clock, validation, rendering."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ticketing import domain as d
from ticketing.tests.test_domain import T0, opened, run


def note(body: str = "customer sounds upset", author: d.Author = d.Author.AGENT) -> d.AddReply:
    return d.AddReply(author=author, author_id="ag-1", body=body, internal=True)


def test_an_internal_note_never_stops_the_first_response_clock_nor_counts_as_a_reply() -> None:
    state = opened()
    state, events = run(state, note(), T0 + timedelta(seconds=10))
    assert [type(e) for e in events] == [d.ReplyAdded]
    assert events[0].internal and events[0].sla is None  # type: ignore[union-attr]
    assert state.clocks[d.SlaClock.FIRST_RESPONSE].running
    assert state.first_responded_at is None
    assert state.agent_replies == 0 and state.status is d.Status.OPEN
    # The public reply after it is the first response.
    reply = d.AddReply(author=d.Author.AGENT, author_id="ag-1", body="On it")
    state, events = run(state, reply, T0 + timedelta(seconds=20))
    assert events[-1].sla is not None  # type: ignore[union-attr]
    assert state.first_responded_at == T0 + timedelta(seconds=20)
    assert state.agent_replies == 1


def test_a_note_on_a_ticket_waiting_for_the_customer_does_not_resume_it() -> None:
    state = opened()
    state, _ = run(state, d.HoldTicket(d.HoldReason.WAITING_CUSTOMER), T0)
    state, events = run(state, note(), T0 + timedelta(seconds=5))
    assert [type(e) for e in events] == [d.ReplyAdded]
    assert state.status is d.Status.ON_HOLD


def test_only_an_agent_writes_an_internal_note() -> None:
    with pytest.raises(d.InvalidCommand) as raised:
        run(opened(), note(author=d.Author.CUSTOMER), T0)
    assert dict(raised.value.violations) == {"visibility": "only an agent writes an internal note"}


def test_a_reply_records_its_channel_the_tickets_by_default() -> None:
    state = opened(channel=d.Channel.EMAIL)
    reply = d.AddReply(author=d.Author.CUSTOMER, author_id="C-1", body="hi")
    _, events = run(state, reply, T0)
    assert events[0].channel is d.Channel.EMAIL  # type: ignore[union-attr]
    phoned = d.AddReply(d.Author.CUSTOMER, "C-1", "hi", channel=d.Channel.PHONE)
    _, events = run(state, phoned, T0)
    assert events[0].channel is d.Channel.PHONE  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- macros


def put(state: d.Macro, title: str, body: str) -> d.Macro:
    for event in d.decide_macro(state, d.PutMacro(title, body)):
        state = d.evolve_macro(state, event, T0)
    return state


@pytest.mark.parametrize(
    "body",
    [
        "Hello {name}",
        "Hello {0}",
        "Hello {}",
        "Hello {customer_name.__class__}",
        "Hello {customer_name[0]}",
        "Hello {customer_name!r}",
        "Hello {customer_name:>10}",
        "Hello {customer_name",
        "Hello }",
    ],
)
def test_a_macro_naming_anything_but_the_safe_placeholders_is_refused(body: str) -> None:
    with pytest.raises(d.InvalidCommand) as raised:
        d.decide_macro(d.initial_macro("greet"), d.PutMacro("Greeting", body))
    assert [name for name, _ in raised.value.violations] == ["body"]


def test_macro_title_and_body_are_required() -> None:
    with pytest.raises(d.InvalidCommand) as raised:
        d.decide_macro(d.initial_macro("greet"), d.PutMacro(" ", ""))
    assert {name for name, _ in raised.value.violations} == {"title", "body"}


def test_every_changed_put_is_a_new_version_and_an_unchanged_one_appends_nothing() -> None:
    macro = put(d.initial_macro("greet"), "Greeting", "Hi {customer_name}")
    assert (macro.exists, macro.version) == (True, 1)
    assert d.decide_macro(macro, d.PutMacro("Greeting", "Hi {customer_name}")) == []
    macro = put(macro, "Greeting", "Hello {customer_name}")
    assert (macro.version, macro.body) == (2, "Hello {customer_name}")
    events = d.decide_macro(macro, d.DeleteMacro())
    assert events == [d.MacroDeleted(2)]
    gone = d.evolve_macro(macro, events[0], T0)
    assert not gone.exists
    with pytest.raises(d.MacroNotFound):
        d.decide_macro(gone, d.DeleteMacro())
    assert put(gone, "Greeting", "Back").version == 3


def test_render_fills_the_request_values_and_the_tickets_own() -> None:
    body = "Dear {customer_name}, ticket {ticket_id} about {product}: {{sorry}}. {agent_name}"
    macro = put(d.initial_macro("greet"), "Greeting", body)
    values = {"customer_name": "Li {ticket_id}", "agent_name": "Ann"}
    text = d.render(macro, values, ticket_id="T-9", product="X1")
    # A value is inserted as text: a placeholder inside it is not expanded again.
    assert text == "Dear Li {ticket_id}, ticket T-9 about X1: {sorry}. Ann"


def test_render_refuses_missing_unknown_and_ticket_owned_values() -> None:
    macro = put(d.initial_macro("greet"), "Greeting", "Dear {customer_name} ({product})")
    with pytest.raises(d.InvalidCommand) as raised:
        d.render(macro, {"ticket_id": "T-0", "colour": "red"}, ticket_id="T-9", product="")
    assert {name for name, _ in raised.value.violations} == {
        "macro_values[customer_name]",
        "macro_values[ticket_id]",
        "macro_values[colour]",
        "macro_id",
    }
    with pytest.raises(d.MacroNotFound):
        d.render(d.initial_macro("nope"), {}, ticket_id="T-9", product="")
