"""Quality's application layer through its composition root, on the in-memory store (no NATS)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from careops_eventstore.memory import InMemoryEventStore
from careops_eventstore.timers import DueTimer

from quality import domain
from quality.application import CODEC, STREAM, QualityApp
from quality.main import QualityService, QualitySettings
from tests.in_memory import logged, types_of
from tests.support import FakeClock

TICKET = domain.TicketFacts(
    ticket_id="t-1",
    customer_id="c-1",
    agent_id="a-1",
    channel="email",
    ticket_type="fault",
    priority="high",
    resolved=True,
)


async def bootstrapped(tmp_path: Path, clock: FakeClock) -> tuple[QualityApp, InMemoryEventStore]:
    """Returns the application the service would run, over a fresh in-memory store."""
    settings = QualitySettings(data_dir=str(tmp_path), follow_up_hours=2)
    store = InMemoryEventStore()
    return await QualityService(settings, clock=clock).bootstrap(store), store


async def test_a_survey_carries_the_ticket_facts_the_kpis_group_by(tmp_path: Path) -> None:
    clock = FakeClock()
    app, store = await bootstrapped(tmp_path, clock)
    result = await app.submit_survey(
        TICKET, "t-1", csat=5, nps=9, comment="Great help", command_id="s-1", actor="c-1"
    )
    [item] = await logged(store, STREAM.name, CODEC)
    assert item.sequence == result.sequence
    assert item.envelope.aggregate_type == "survey" and item.envelope.actor == "c-1"
    event = item.event
    assert isinstance(event, domain.SurveySubmitted)
    assert (event.agent_id, event.channel, event.ticket_type, event.priority) == (
        "a-1",
        "email",
        "fault",
        "high",
    )
    assert (event.csat, event.nps, event.has_nps) == (5, 9, True)
    assert event.submitted_at == clock.now and not event.follow_up_required


async def test_negative_feedback_is_followed_up_and_overdue_once(tmp_path: Path) -> None:
    clock = FakeClock()
    app, store = await bootstrapped(tmp_path, clock)
    submitted = await app.submit_survey(
        TICKET,
        "t-1",
        csat=1,
        nps=None,
        comment="Terrible, nobody answered",
        command_id="s-1",
        actor="c-1",
    )
    assert submitted.state.submitted is not None
    assert submitted.state.submitted.follow_up_due_at == clock.now + timedelta(hours=2)
    clock.advance(timedelta(hours=3))
    timer = DueTimer("follow-1", "t-1", "follow_up", clock.now, {})
    await app.fire_timer(timer)
    await app.fire_timer(timer)
    record = domain.RecordFollowUp(agent_id="a-2", note="Called back", solved=True)
    await app.execute("t-1", record, command_id="f-1", actor="a-2")
    assert types_of(await logged(store, STREAM.name, CODEC)) == [
        "careops.quality.v1.SurveySubmitted",
        "careops.quality.v1.FollowUpOverdue",
        "careops.quality.v1.FollowUpRecorded",
    ]


async def test_a_survey_of_an_unresolved_ticket_appends_nothing(tmp_path: Path) -> None:
    app, store = await bootstrapped(tmp_path, FakeClock())
    seeded = await store.last_sequence(STREAM.name)  # the policies seeded at start
    open_ticket = domain.TicketFacts(**{**TICKET.__dict__, "resolved": False})
    with pytest.raises(domain.IllegalTransition):
        await app.submit_survey(
            open_ticket, "t-1", csat=3, nps=None, comment="", command_id="s-1", actor="c-1"
        )
    assert await store.last_sequence(STREAM.name) == seeded
