"""The ticket workload every benchmark shares: open a ticket, then assign, reply, reprioritise."""

from __future__ import annotations

import asyncio
import time
import uuid

from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.memory import InMemoryEventStore
from careops_sla import default_policy
from ticketing import domain as d
from ticketing.application import STREAM, TicketingApp
from ticketing.grpc_api import command_reply

STEPS = 4  # commands (and events) per ticket
OPEN_TICKET = "/careops.ticketing.v1.TicketingService/OpenTicket"
OPEN_REQUEST = pb.OpenTicketRequest(
    customer_id="C-bench",
    channel=t.CHANNEL_EMAIL,
    type=t.TICKET_TYPE_FAULT,
    priority=t.PRIORITY_NORMAL,
    subject="Printer shows E42",
    description="Since this morning the office printer shows error E42.",
)
UPDATES: tuple[d.Command, ...] = (
    d.AssignTicket("agent-1"),
    d.AddReply(d.Author.AGENT, "agent-1", "Looking into it, please restart the printer."),
    d.ChangePriority(d.Priority.HIGH, "customer is a hospital"),
)


def new_ticket_id() -> str:
    return f"T-{uuid.uuid4().hex[:20]}"


def open_command(ticket_id: str) -> d.OpenTicket:
    return d.OpenTicket(
        ticket_id=ticket_id,
        customer_id=OPEN_REQUEST.customer_id,
        channel=d.Channel.EMAIL,
        type=d.TicketType.FAULT,
        priority=d.Priority.NORMAL,
        subject=OPEN_REQUEST.subject,
        description=OPEN_REQUEST.description,
    )


def step_command(ticket_id: str, step: int) -> d.Command:
    """Step 0 opens the ticket, steps 1-3 update it."""
    return open_command(ticket_id) if step == 0 else UPDATES[step - 1]


async def one_ticket(app: TicketingApp, ticket_id: str | None = None) -> None:
    ticket_id = ticket_id or new_ticket_id()
    for step in range(STEPS):
        await app.execute(ticket_id, step_command(ticket_id, step), command_id=uuid.uuid4().hex)


async def run_tickets(app: TicketingApp, tickets: int, concurrency: int = 1) -> float:
    """Runs the workload for `tickets` tickets with `concurrency` tickets in flight; returns
    the elapsed seconds."""
    remaining = iter(range(tickets))

    async def worker() -> None:
        for _ in remaining:
            await one_ticket(app)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def sample_batch() -> bytes:
    """The serialized message of a real OpenTicket (its size is the raw baselines' payload)."""
    batch, _reply = await sample_open_ticket()
    return batch


async def sample_open_ticket() -> tuple[bytes, bytes]:
    """A real OpenTicket's appended message and its gRPC reply (OpenTicketResponse), serialized:
    the bytes the grpc + publish floor baseline moves."""
    store = InMemoryEventStore()
    app = TicketingApp(store=store, policy=default_policy())
    await app.provision()
    ticket_id = new_ticket_id()
    result = await app.execute(ticket_id, open_command(ticket_id), command_id=uuid.uuid4().hex)
    (message,) = await store.read_stream(stream=STREAM.name)
    reply = command_reply(pb.OpenTicketResponse, result, app)
    return message.batch.SerializeToString(), reply.SerializeToString()
