"""Pure tests of public statements: versions, who published, refusals, repeats."""

from __future__ import annotations

from datetime import timedelta

import pytest

from incident import domain as d
from incident.templates import NoticeTemplatesError, load_templates, parse_notice_templates
from incident.tests.test_domain import T0, declare, run

STATEMENT = d.PublishStatement(
    headline="部分用户无法登录",
    text="我们已发现部分用户无法登录，正在紧急处理。",
    published_by="comms-lead",
    headline_en="Some customers cannot sign in",
    text_en="We are aware that some customers cannot sign in and are working on it.",
)


def test_statements_are_versioned_with_who_published_them() -> None:
    state, _ = declare()
    state, events = run(state, STATEMENT, T0 + timedelta(minutes=5))
    assert events == [
        d.StatementPublished(
            1,
            STATEMENT.headline,
            STATEMENT.text,
            "comms-lead",
            STATEMENT.headline_en,
            STATEMENT.text_en,
        )
    ]
    second = d.PublishStatement("登录已恢复", "登录功能已恢复正常。", "cc-2")
    state, events = run(state, second, T0 + timedelta(minutes=30))
    assert [(s.version, s.published_by, s.at) for s in state.statements] == [
        (1, "comms-lead", T0 + timedelta(minutes=5)),
        (2, "cc-2", T0 + timedelta(minutes=30)),
    ]
    assert state.timeline[-1].kind == "statement"


def test_repeating_the_latest_statement_word_for_word_adds_nothing() -> None:
    state, _ = declare()
    state, _ = run(state, STATEMENT, T0)
    again = d.PublishStatement(
        f" {STATEMENT.headline} ",
        STATEMENT.text,
        "someone-else",
        STATEMENT.headline_en,
        STATEMENT.text_en,
    )
    assert d.decide(state, again, d.Context(T0, d.RiskModel(), d.Matrix(), {})) == []


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (d.PublishStatement("", "text", "x"), "headline"),
        (d.PublishStatement("h", "  ", "x"), "text"),
        (d.PublishStatement("h" * 201, "text", "x"), "headline"),
        (d.PublishStatement("h", "t", "x", headline_en="e" * 201), "headline_en"),
        (d.PublishStatement("h", "t", "x", text_en="e" * 20_001), "text_en"),
    ],
)
def test_a_bad_statement_names_the_field(command: d.PublishStatement, field: str) -> None:
    state, _ = declare()
    with pytest.raises(d.InvalidCommand) as refused:
        run(state, command, T0)
    assert [name for name, _ in refused.value.violations] == [field]


def test_no_statement_for_a_closed_or_unknown_incident() -> None:
    with pytest.raises(d.NotFound):
        run(d.initial("I-9"), STATEMENT, T0)
    state, _ = declare()
    state, _ = run(state, d.ResolveIncident("fixed"), T0)
    state, events = run(state, STATEMENT, T0)  # resolved: the closing word is still public
    assert len(events) == 1
    review = d.PostIncidentReview("root cause", ("action",))
    state, _ = run(state, d.CloseIncident(review), T0)
    with pytest.raises(d.IllegalTransition):
        run(state, d.PublishStatement("again", "again", "x"), T0)


# ----------------------------------------------------------------------------- telling customers

TEMPLATES = load_templates(None).templates


def notify(template_id: str = "first_notice", *segments: str) -> d.NotifyCustomers:
    return d.NotifyCustomers(template_id, TEMPLATES.get(template_id), "comms-lead", segments)


def linked() -> d.Incident:
    state, _ = declare(ticket_ids=("T-1",), customer_ids=("C-1",))
    return state


def test_the_packaged_templates_are_valid_and_bilingual() -> None:
    assert {"first_notice", "resolved_notice", "service_disruption"} <= set(TEMPLATES)
    assert d.validate_templates(TEMPLATES) == []
    bad = {"x": d.CustomerTemplate("x", "{who}", "", "s", "b")}
    assert [path for path, _ in d.validate_templates(bad)] == [
        "templates.x.subject",
        "templates.x.body",
    ]


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ("version: v1\ntemplates: {}\n", "templates"),
        ("templates: {a: {subject: s, body: b, subject_en: s, body_en: b}}\n", "version"),
        (
            "version: v1\ntemplates: {a: {subject: '{who}', body: b, subject_en: s, body_en: b}}\n",
            "templates.a.subject",
        ),
        ("version: v1\ntemplates: {a: {subject: s, body: b}}\n", "templates.a.subject_en"),
        ("- a list\n", ""),
    ],
)
def test_a_bad_templates_document_names_the_key(document: str, key: str) -> None:
    with pytest.raises(NoticeTemplatesError) as refused:
        parse_notice_templates(document)
    assert str(refused.value).startswith(key), refused.value


def test_notifying_records_whom_which_template_and_the_statement_quoted() -> None:
    state, _ = run(linked(), STATEMENT, T0)
    state, events = run(state, notify("first_notice", "high_value"), T0 + timedelta(minutes=1))
    (decided,) = events
    assert isinstance(decided, d.CustomersNotificationDecided)
    assert decided.notification_id == "I-1-c0"
    assert (decided.template_id, decided.statement_version, decided.decided_by) == (
        "first_notice",
        1,
        "comms-lead",
    )
    assert (decided.customer_ids, decided.ticket_ids, decided.segments) == (
        ("C-1",),
        ("T-1",),
        ("high_value",),
    )
    assert STATEMENT.headline in decided.subject and STATEMENT.text in decided.body
    assert STATEMENT.headline_en in decided.subject_en and "I-1" in decided.body_en
    assert "Core DB down" not in decided.body + decided.body_en  # the internal title is not sent
    state, again = run(state, notify("resolved_notice"), T0 + timedelta(minutes=2))
    assert again[0].notification_id == "I-1-c1"  # type: ignore[union-attr]


def test_notifying_refuses_what_it_cannot_send() -> None:
    with pytest.raises(d.InvalidCommand) as unknown:
        run(linked(), notify("nope"), T0)
    assert [name for name, _ in unknown.value.violations] == ["template_id"]
    with pytest.raises(d.InvalidCommand) as segment:
        run(linked(), notify("service_disruption", "VIP!"), T0)
    assert [name for name, _ in segment.value.violations] == ["segments[0]"]
    with pytest.raises(d.IllegalTransition, match="publish one first"):
        run(linked(), notify("first_notice"), T0)  # quotes a statement none published
    state, events = run(linked(), notify("service_disruption"), T0)  # quotes none: fine
    assert events[0].statement_version == 0  # type: ignore[union-attr]
    lonely, _ = declare()
    with pytest.raises(d.IllegalTransition, match="no linked customers"):
        run(lonely, notify("service_disruption"), T0)
    assert run(lonely, notify("service_disruption", "regular"), T0)[1]
    drill, _ = declare(drill=True, customer_ids=("C-1",))
    with pytest.raises(d.IllegalTransition, match="drill"):
        run(drill, notify("service_disruption"), T0)
