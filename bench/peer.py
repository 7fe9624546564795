"""Peer comparison: the ticket workload in the `eventsourcing` library vs our application layer.

Both run in this process, one command at a time (eventsourcing is synchronous): per ticket an
open, then load + assign + save, load + reply + save, load + reprioritise + save, i.e. four
stored events. Ours runs TicketingApp over JetStreamEventStore on the embedded NATS
(sync_interval: always) and over InMemoryEventStore; theirs runs its SQLite recorder (WAL,
synchronous=FULL, so each commit is fsynced), PostgreSQL recorder and POPO (in-memory)
recorder, each without and with its aggregate cache (ours always has its LRU cache).
Theirs store JSON-transcoded events without SLA clocks, protobuf envelopes,
idempotency, tracing or metrics, so this compares frameworks, not identical work.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.memory import InMemoryEventStore
from careops_sla import default_policy
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from nats.js import api
from ticketing.application import TicketingApp

from bench.baselines import awaited_publishes
from bench.common import Report, embedded_nats, postgres_parts, rate, ratio, scratch_postgres
from bench.workload import STEPS, run_tickets, sample_batch

# Issue 16 item 3: ours over JetStream / eventsourcing, same workload and durability.
GOAL_PEER_RATIO = {"sqlite": 1.0, "postgres": 2.0}


class Ticket(Aggregate):
    """The same four events as ours, with the fields our events carry (without SLA clocks)."""

    @event("Opened")
    def __init__(
        self,
        customer_id: str,
        channel: str,
        type: str,
        priority: str,
        subject: str,
        description: str,
    ) -> None:
        self.customer_id = customer_id
        self.channel = channel
        self.type = type
        self.priority = priority
        self.subject = subject
        self.description = description
        self.status = "open"
        self.assignee_id = ""
        self.agent_replies = 0

    @event("Assigned")
    def assign(self, agent_id: str) -> None:
        self.assignee_id = agent_id
        self.status = "assigned"

    @event("ReplyAdded")
    def add_reply(self, author: str, author_id: str, body: str) -> None:
        self.agent_replies += 1
        self.status = "in_progress"

    @event("PriorityChanged")
    def change_priority(self, priority: str, reason: str) -> None:
        self.priority = priority


class Tickets(Application[uuid.UUID]):
    def open(self) -> uuid.UUID:
        ticket = Ticket(
            "C-bench",
            "email",
            "fault",
            "normal",
            "Printer shows E42",
            "Since this morning the office printer shows error E42.",
        )
        self.save(ticket)
        return ticket.id

    def assign(self, ticket_id: uuid.UUID) -> None:
        ticket: Ticket = self.repository.get(ticket_id)
        ticket.assign("agent-1")
        self.save(ticket)

    def reply(self, ticket_id: uuid.UUID) -> None:
        ticket: Ticket = self.repository.get(ticket_id)
        ticket.add_reply("agent", "agent-1", "Looking into it, please restart the printer.")
        self.save(ticket)

    def change_priority(self, ticket_id: uuid.UUID) -> None:
        ticket: Ticket = self.repository.get(ticket_id)
        ticket.change_priority("high", "customer is a hospital")
        self.save(ticket)


def eventsourcing_rate(tickets: int, env: dict[str, str]) -> float:
    """Events per second of the workload in an eventsourcing application configured by `env`."""
    application = Tickets(env=env)
    try:
        for _ in range(20):  # warm-up
            application.change_priority(application.open())
        started = time.perf_counter()
        for _ in range(tickets):
            ticket_id = application.open()
            application.assign(ticket_id)
            application.reply(ticket_id)
            application.change_priority(ticket_id)
        return rate(tickets * STEPS, time.perf_counter() - started)
    finally:
        application.close()


async def ours_rate(app: TicketingApp, tickets: int, concurrency: int = 1) -> float:
    await app.provision()
    await run_tickets(app, 20)  # warm-up
    return rate(tickets * STEPS, await run_tickets(app, tickets, concurrency))


async def run(quick: bool) -> dict[str, Any]:
    tickets = 300 if quick else 2000
    ours: dict[str, float] = {}
    theirs: dict[str, float] = {}
    ours["memory"] = await ours_rate(
        TicketingApp(store=InMemoryEventStore(), policy=default_policy()), tickets
    )
    with embedded_nats() as server:
        nc = await connect(server.url, name="bench-peer")
        app = TicketingApp(store=JetStreamEventStore(nc), policy=default_policy())
        ours["jetstream"] = await ours_rate(app, tickets)
        ours["jetstream_16_concurrent"] = await ours_rate(app, tickets, concurrency=16)
        # The floor of one command at a time over this log: its publish alone, awaited.
        js = nc.jetstream()
        await js.add_stream(
            api.StreamConfig(
                name="PEERFLOOR", subjects=["peerfloor.>"], storage=api.StorageType.FILE
            )
        )
        floor = await awaited_publishes(js, "peerfloor", tickets * STEPS, await sample_batch())
        await nc.close()

    # Its cache deep-copies aggregates by default, which costs more than it saves here; ours
    # hands out immutable states, so the like-for-like setting is without the copy.
    cached = {"AGGREGATE_CACHE_MAXSIZE": "10000", "DEEPCOPY_FROM_AGGREGATE_CACHE": "n"}
    theirs["popo"] = eventsourcing_rate(tickets, {"PERSISTENCE_MODULE": "eventsourcing.popo"})
    theirs["popo_cache"] = eventsourcing_rate(
        tickets, {"PERSISTENCE_MODULE": "eventsourcing.popo", **cached}
    )
    with TemporaryDirectory(prefix="careops-bench-") as directory:
        for suffix, extra in (("", {}), ("_cache", cached)):
            database = Path(directory) / f"peer{suffix}.db"
            theirs[f"sqlite{suffix}"] = eventsourcing_rate(
                tickets,
                {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(database)}
                | extra,
            )
    postgres_error = ""
    with scratch_postgres() as url:
        if url is not None:
            parts = postgres_parts(url)
            env = {
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                "POSTGRES_DBNAME": parts["dbname"],
                "POSTGRES_HOST": parts["host"],
                "POSTGRES_PORT": parts["port"],
                "POSTGRES_USER": parts["user"],
                "POSTGRES_PASSWORD": parts["password"],
            }
            for suffix, extra in (("", {}), ("_cache", cached)):
                try:
                    theirs[f"postgres{suffix}"] = eventsourcing_rate(tickets, env | extra)
                except Exception as exc:  # e.g. a missing optional dependency
                    postgres_error = f"{type(exc).__name__}: {exc}"[:300]

    report = Report(
        f"5. Peer: {tickets:,} tickets x {STEPS} commands, one at a time, in-process (events/s)"
    )
    report.add(
        system="ours: TicketingApp over JetStream (fsync always)", events_s=ours["jetstream"]
    )
    report.add(
        system="ours: TicketingApp over JetStream, 16 tickets in flight",
        events_s=ours["jetstream_16_concurrent"],
    )
    report.add(system="ours: TicketingApp over InMemoryEventStore", events_s=ours["memory"])
    report.add(
        system="raw: JetStream publish of an OpenTicket message, awaited one at a time (the floor)",
        events_s=floor["ops_s"],
    )
    labels = {
        "sqlite": "eventsourcing 9.5: SQLite recorder",
        "postgres": "eventsourcing 9.5: PostgreSQL recorder",
        "popo": "eventsourcing 9.5: POPO (in-memory) recorder",
    }
    for key, label in labels.items():
        if key in theirs:
            report.add(
                system=label,
                events_s=theirs[key],
                with_cache_no_deepcopy=theirs.get(f"{key}_cache"),
            )
    if postgres_error:
        report.note(f"eventsourcing PostgreSQL recorder failed: {postgres_error}")
    ratios = {
        "jetstream_vs_sqlite": ratio(ours["jetstream"], theirs["sqlite"]),
        "jetstream_vs_sqlite_cache": ratio(ours["jetstream"], theirs["sqlite_cache"]),
        "jetstream_vs_postgres": ratio(ours["jetstream"], theirs.get("postgres", 0.0)),
        "jetstream_vs_postgres_cache": ratio(ours["jetstream"], theirs.get("postgres_cache", 0.0)),
        "memory_vs_popo": ratio(ours["memory"], theirs["popo"]),
        "memory_vs_popo_cache": ratio(ours["memory"], theirs["popo_cache"]),
    }
    report.note(
        "ours/theirs: "
        + ", ".join(f"{name.replace('_vs_', ' / ')} {value}" for name, value in ratios.items())
    )
    floors = {
        "ours_over_floor": ratio(ours["jetstream"], floor["ops_s"]),
        "floor_vs_sqlite": ratio(floor["ops_s"], theirs["sqlite"]),
        "floor_vs_postgres": ratio(floor["ops_s"], theirs.get("postgres", 0.0)),
    }
    report.note(
        f"the floor (one awaited, fsynced publish per event, nothing else) / eventsourcing: "
        f"sqlite {floors['floor_vs_sqlite']}, postgres {floors['floor_vs_postgres']}; "
        f"ours over JetStream reaches {floors['ours_over_floor']} of the floor"
    )
    for backend, goal in GOAL_PEER_RATIO.items():
        value = ratios[f"jetstream_vs_{backend}"]
        report.goal(
            f"application layer over JetStream vs eventsourcing/{backend}",
            f">= {goal} x (same workload and durability)",
            str(value) if value is not None else "not run",
            None if value is None else value >= goal,
        )
    report.show()
    return {
        "report": report.to_json(),
        "tickets": tickets,
        "ours_events_s": ours,
        "eventsourcing_events_s": theirs,
        "ratios_ours_over_theirs": ratios,
        "floor": {"awaited_publish": floor, **floors},
        "postgres_error": postgres_error,
    }
