"""Pure tests of public statements: versions, who published, refusals, repeats."""

from __future__ import annotations

from datetime import timedelta

import pytest

from incident import domain as d
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
