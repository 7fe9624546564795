"""Quality's WhatIf replays each ticket under the SLA policy version recorded on its events
(ticketing's `sla` revisions, read from its stream), on real NATS with an injected clock: the
actual figures are what happened across three versions (one applied to an open ticket); a
draft identical to the policy in force returns exactly the actual figures of the tickets it
decided; a stricter draft differs per channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import careops_sla
import pytest
import yaml
from careops.quality.v1 import quality_pb2 as qpb
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from google.protobuf.timestamp_pb2 import Timestamp
from ticketing import domain as tk
from ticketing.application import TicketingApp

from tests.quality_scenario import Clock, quality_service, stub_of

# Monday 2 March 2026, 10:00 in Shanghai: the office calendar (email) is open.
START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
DEFAULT = careops_sla.policy_text(None)


def document(version: str, *, chat: str = "30m", email: str = "4h") -> str:
    data = yaml.safe_load(DEFAULT)
    data["version"] = version
    data["channels"]["chat"]["first_response"] = chat
    data["channels"]["email"]["first_response"] = email
    return yaml.safe_dump(data)


V2 = document("chat-10m", chat="10m")
V3 = document("email-30m", chat="10m", email="30m")


class Script:
    def __init__(self, app: TicketingApp, clock: Clock) -> None:
        self.app, self.clock, self.last = app, clock, 0

    async def at(self, minutes: float, ticket_id: str, command: tk.Command) -> None:
        self.clock.now = START + timedelta(minutes=minutes)
        result = await self.app.execute(
            ticket_id, command, command_id=f"{ticket_id}-{minutes}-{type(command).__name__}"
        )
        self.last = max(self.last, result.sequence)

    async def open(self, minutes: float, ticket_id: str, channel: tk.Channel) -> None:
        command = tk.OpenTicket(
            ticket_id, "C-1", channel, tk.TicketType.CONSULTATION, tk.Priority.NORMAL, "help"
        )
        await self.at(minutes, ticket_id, command)

    async def reply(self, minutes: float, ticket_id: str) -> None:
        await self.at(minutes, ticket_id, tk.AddReply(tk.Author.AGENT, "agent-li", "hello"))

    async def put(self, minutes: float, text: str, *, apply_to_open: bool = False) -> int:
        self.clock.now = START + timedelta(minutes=minutes)
        outcome = await self.app.put_sla_policy(
            text, author="lead", command_id=f"put-{minutes}", apply_to_open=apply_to_open
        )
        self.last = max(self.last, outcome.sequence)
        return outcome.version.revision


@pytest.fixture
async def history(tmp_path: Path) -> AsyncIterator[tuple[str, int, Clock]]:
    """Tickets decided under three SLA versions; yields the NATS url, the last sequence and
    the clock (at the end of the script)."""
    nats = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port())
    nats.start()
    nc = await connect(nats.url, name="what-if-versions")
    try:
        clock = Clock(START)
        app = TicketingApp(
            store=JetStreamEventStore(nc), policy=careops_sla.default_policy(), clock=clock
        )
        await app.provision()
        await app.seed_sla_policy(DEFAULT)
        s = Script(app, clock)
        # Under default-2026.1 (chat 30 min, email 4 h).
        await s.open(0, "T-chat-1", tk.Channel.CHAT)
        await s.open(0, "T-mail-1", tk.Channel.EMAIL)
        await s.open(0, "T-mail-2", tk.Channel.EMAIL)
        await s.put(5, V2)  # chat 10 min, for tickets opened from now on
        await s.open(5, "T-chat-2", tk.Channel.CHAT)
        revision = await s.put(10, V3, apply_to_open=True)  # email 30 min, also T-mail-2
        # What ticketing's SlaPolicyApplier does for each open ticket.
        applied = await app.apply_sla_policy("T-mail-2", revision, command_id="apply-mail-2")
        s.last = max(s.last, applied.sequence)
        await s.reply(20, "T-chat-1")  # 20 min of 30: on time (its version)
        await s.reply(25, "T-chat-2")  # 20 min of 10: breached
        await s.reply(60, "T-mail-1")  # 1 h of 4 h: on time
        await s.reply(50, "T-mail-2")  # 50 min of 30 (moved to email-30m): breached
        # Under email-30m (the version in force) only.
        await s.open(100, "T-chat-3", tk.Channel.CHAT)
        await s.open(100, "T-mail-3", tk.Channel.EMAIL)
        await s.reply(108, "T-chat-3")  # 8 min of 10: on time
        await s.reply(120, "T-mail-3")  # 20 min of 30: on time
        clock.now = START + timedelta(hours=3)
        yield nats.url, s.last, clock
    finally:
        await nc.close()
        nats.stop()


def by_key(groups: list[qpb.WhatIfBreakdown]) -> dict[str, tuple[int, int, int]]:
    """key -> (first responses, on time, first-response breaches), actual."""
    return {
        g.key: (
            g.actual.first_responses,
            g.actual.first_responses_on_time,
            g.actual.first_response_breaches,
        )
        for g in groups
    }


def drafted(groups: list[qpb.WhatIfBreakdown]) -> dict[str, tuple[int, int, int]]:
    return {
        g.key: (
            g.alternative.first_responses,
            g.alternative.first_responses_on_time,
            g.alternative.first_response_breaches,
        )
        for g in groups
    }


def since(minutes: float) -> qpb.Period:
    start = Timestamp()
    start.FromDatetime(START + timedelta(minutes=minutes))
    return qpb.Period(start=start)


async def test_actual_is_each_ticket_under_its_recorded_version(
    history: tuple[str, int, Clock], tmp_path: Path
) -> None:
    url, last, clock = history
    async with quality_service(tmp_path / "q", url, clock) as service, stub_of(service) as stub:
        day = qpb.Period()
        day.start.FromDatetime(clock.now - timedelta(days=1))
        result = await stub.WhatIf(
            qpb.WhatIfRequest(period=day, policy_yaml=V3, ticketing_min_sequence=last)
        )
        assert result.tickets == 6
        # As happened: chat-1 on time (default), chat-2 late (chat-10m), chat-3 on time;
        # mail-1 on time (default), mail-2 late (moved to email-30m), mail-3 on time.
        assert by_key(list(result.by_channel)) == {"chat": (3, 2, 1), "email": (3, 2, 1)}
        assert result.actual.policy_version == "chat-10m, default-2026.1, email-30m"
        # The policy in force replayed over every ticket is not what happened (chat-1 would
        # have been late; mail-1 too): the draft differs per channel.
        assert drafted(list(result.by_channel)) == {"chat": (3, 1, 2), "email": (3, 1, 2)}
        assert not result.changes_nothing

        # The tickets the version in force decided: the same draft gives exactly the actual.
        same = await stub.WhatIf(
            qpb.WhatIfRequest(period=since(90), policy_yaml=V3, ticketing_min_sequence=last)
        )
        assert same.tickets == 2 and same.changes_nothing
        assert same.actual == qpb.SlaOutcome(
            **{
                **{
                    f.name: getattr(same.alternative, f.name) for f in same.actual.DESCRIPTOR.fields
                },
                "policy_version": "email-30m",
            }
        )
        for group in (*same.by_channel, *same.by_priority):
            assert group.actual == group.alternative

        # A stricter draft (5 min everywhere) differs per channel.
        strict = document("strict", chat="5m", email="5m")
        stricter = await stub.WhatIf(
            qpb.WhatIfRequest(period=since(90), policy_yaml=strict, ticketing_min_sequence=last)
        )
        assert not stricter.changes_nothing
        assert by_key(list(stricter.by_channel)) == {"chat": (1, 1, 0), "email": (1, 1, 0)}
        assert drafted(list(stricter.by_channel)) == {"chat": (1, 0, 1), "email": (1, 0, 1)}
        assert [g.key for g in stricter.by_priority] == ["normal"]
