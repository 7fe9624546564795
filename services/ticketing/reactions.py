"""Ticketing reactions. Fair routing: a reaction on the ticket stream assigns waiting tickets.

A ticket nobody can take waits in the queue (open, unassigned). Whenever capacity may have
freed up or appeared — a ticket opened, resolved, closed, handed back; an agent put or set
online — the router takes the waiting tickets (urgent first, then oldest) and assigns each to
the best online agent with the skills (type and channel) and spare capacity on its channel.
An agent going offline hands back their unstarted tickets (no agent reply yet) first.
Passes coalesce: a pass reads the read models as of some stream position, so a trigger at or
before that position is already covered and starts no pass of its own (under a burst of opens,
one pass serves many). Assignments are recorded with actor "<principal> via router", the
principal being the actor of the event that triggered the pass.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from careops_eventstore.model import RecordedBatch
from careops_platform import policies
from careops_sla.versions import KIND_NAME
from prometheus_client import Counter, Gauge, Histogram

from ticketing import domain
from ticketing.application import CODEC, TicketingApp, Workload, Workloads
from ticketing.readmodels import WaitingTicket

log = logging.getLogger(__name__)

QUEUE_LENGTH = Gauge(
    "careops_ticket_queue_length", "Tickets waiting in the routing queue after the last pass."
)
QUEUE_WAIT = Histogram(
    "careops_ticket_queue_wait_seconds",
    "Time a ticket waited in the routing queue before the router assigned it.",
    buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600),
)
PASSES = Counter(
    "careops_ticket_router_passes_total",
    "Triggers of the router by outcome: routed (a pass over the queue) or coalesced (already "
    "covered by a pass that read the read models past it).",
    ["outcome"],
)
for _outcome in ("routed", "coalesced"):
    PASSES.labels(_outcome)
# Priorities first served.
PRIORITY_ORDER = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
QUEUE_BATCH = 500
HANDBACK_REASON = "agent went offline"
ROUTER = "router"

TRIGGERS = (
    domain.TicketOpened,
    domain.TicketResolved,
    domain.TicketClosed,
    domain.TicketReopened,
    domain.TicketReturnedToQueue,
    domain.AgentPut,
    domain.AgentAvailabilityChanged,
)
# The router tells a trigger by its type name and decodes only availability changes (for the
# hand-back); every other payload stays unparsed.
TRIGGER_CODEC = CODEC.only(*TRIGGERS)
AVAILABILITY_CODEC = CODEC.only(domain.AgentAvailabilityChanged)


class RouterReads:
    """What the router reads besides the log: the read models, once caught up."""

    def __init__(
        self,
        *,
        synced: Callable[[int], Awaitable[bool]],
        workload: Workloads,
        waiting: Callable[[int, Sequence[tuple[str, str]]], Awaitable[Sequence[WaitingTicket]]],
        waiting_count: Callable[[], Awaitable[int]],
        unstarted: Callable[[str], Awaitable[Sequence[str]]],
        position: Callable[[], int],
    ) -> None:
        self.synced = synced
        # The stream position every read model the router reads has reached (a lower bound of
        # what a read made after it sees).
        self.position = position
        self.workload = workload
        self.waiting = waiting
        self.waiting_count = waiting_count
        self.unstarted = unstarted


class Router:
    """The routing reaction (one consumer, one message at a time)."""

    def __init__(self, app: TicketingApp, reads: RouterReads) -> None:
        self._app = app
        self._reads = reads
        self._written = 0  # the last sequence the router itself appended
        self._routed_through = 0  # triggers up to here are covered by a pass already made
        self.handled = 0  # the last stream sequence handled (tests wait on it)

    async def handle(self, message: RecordedBatch) -> None:
        """Hands back an offline agent's unstarted tickets, then routes the queue, unless a
        pass already covered this message."""
        triggers = any(TRIGGER_CODEC.knows(envelope.type) for envelope in message.batch.events)
        offline = [
            item.envelope.aggregate_id
            for item in AVAILABILITY_CODEC.decode_batch(message.batch)
            if item.event.availability is domain.Availability.OFFLINE
        ]
        if triggers and (offline or message.sequence > self._routed_through):
            await self._pass(message.sequence, offline)
        elif triggers:
            PASSES.labels("coalesced").inc()
        self.handled = max(self.handled, message.sequence)

    async def _pass(self, sequence: int, offline: Sequence[str]) -> None:
        # Read models must hold this event and everything the router wrote before.
        if not await self._reads.synced(max(sequence, self._written)):
            raise RuntimeError("read models did not catch up; redelivery retries")
        # Recorded as "<principal> via router": the runner keeps the triggering event's
        # principal in scope (careops_eventstore.causes), also through a chain of passes.
        actor = ROUTER
        for agent_id in offline:
            await self._hand_back(agent_id, sequence, actor)
        covered = self._reads.position()
        await self.route(actor=actor, cause=str(sequence))
        self._routed_through = max(self._routed_through, covered)
        PASSES.labels("routed").inc()

    async def _hand_back(self, agent_id: str, cause: int, actor: str) -> None:
        for ticket_id in await self._reads.unstarted(agent_id):
            result = await self._app.execute(
                ticket_id,
                domain.ReturnToQueue(agent_id, HANDBACK_REASON),
                command_id=f"handback.{cause}.{ticket_id}",
                actor=actor,
            )
            self._written = max(self._written, result.sequence)

    async def route(self, *, actor: str, cause: str) -> int:
        """Assigns what it can of the queue; returns how many tickets still wait."""
        workload = await self._reads.workload()
        kinds = _assignable_kinds(workload)
        waiting_before = await self._reads.waiting_count()
        # Only the tickets someone has the skills and room for are read (the oldest
        # QUEUE_BATCH of them): a queue of tickets nobody can take is counted, not read and
        # sorted on every pass, and cannot hide a ticket behind it that someone could take.
        found = await self._reads.waiting(QUEUE_BATCH, kinds) if kinds else []
        queue = sorted(
            found,
            key=lambda w: (PRIORITY_ORDER.get(w.priority, 9), w.queued_at, w.opened_sequence),
        )
        gone = 0  # assigned by this pass, or no longer waiting
        for waiting in queue:
            assigned = await self._assign(waiting, workload, actor=actor, cause=cause)
            if assigned is not None:
                workload = assigned
                gone += 1
        left = max(waiting_before - gone, 0)
        QUEUE_LENGTH.set(left)
        return left

    async def _assign(
        self, waiting: WaitingTicket, workload: Workload, *, actor: str, cause: str
    ) -> Workload | None:
        """Assigns one waiting ticket; returns the workload after it (None: it waits)."""
        if not _anyone_free(workload, waiting.type, waiting.channel):
            # Nobody online has the skills and room: no need to load the ticket. Checked first,
            # because with everyone at capacity each pass meets the whole queue.
            return None
        ticket, _version = await self._app.get(waiting.ticket_id)
        if ticket.assignee_id or ticket.status is not domain.Status.OPEN:
            return workload  # the read model lagged: no longer waiting
        best = next((s for s in workload.suggest(ticket) if _fits(workload, s, ticket)), None)
        if best is None:
            return None
        result = await self._app.execute(
            ticket.ticket_id,
            domain.AssignTicket(best.agent_id, suggested=True, reason=best.reason, from_queue=True),
            command_id=f"route.{cause}.{ticket.ticket_id}",
            actor=actor,
        )
        self._written = max(self._written, result.sequence)
        if not result.events:
            return workload  # assigned meanwhile by someone else
        QUEUE_WAIT.observe(max((self._app.clock() - waiting.queued_at).total_seconds(), 0.0))
        return _taken(workload, best.agent_id, ticket.channel.value)


def _assignable_kinds(workload: Workload) -> list[tuple[str, str]]:
    """The (ticket type, channel) pairs some online agent has the skills and spare room for."""
    return [
        (ticket_type.value, channel.value)
        for ticket_type in domain.TicketType
        for channel in domain.Channel
        if _anyone_free(workload, ticket_type.value, channel.value)
    ]


def _anyone_free(workload: Workload, ticket_type: str, channel: str) -> bool:
    """Returns whether an online agent has the type and channel and spare room on the channel."""
    return any(
        agent.online
        and {ticket_type, channel} <= agent.skills
        and agent.spare(
            channel,
            workload.open_tickets.get(agent.agent_id, 0),
            workload.channel_load.get(agent.agent_id, {}).get(channel, 0),
        )
        > 0
        for agent in workload.agents
    )


def _fits(workload: Workload, suggestion: domain.Suggestion, ticket: domain.Ticket) -> bool:
    """Routing gives a ticket only to an agent with its type and channel (suggestions rank
    partial matches too)."""
    agent = next(a for a in workload.agents if a.agent_id == suggestion.agent_id)
    return agent.can_take(ticket, 1)


def _taken(workload: Workload, agent_id: str, channel: str) -> Workload:
    """Returns the workload with one more ticket of `channel` for `agent_id`."""
    totals = dict(workload.open_tickets)
    totals[agent_id] = totals.get(agent_id, 0) + 1
    loads = {agent: dict(channels) for agent, channels in workload.channel_load.items()}
    loads.setdefault(agent_id, {})[channel] = loads.get(agent_id, {}).get(channel, 0) + 1
    return replace(workload, open_tickets=totals, channel_load=loads)


# ------------------------------------------------------------------------- SLA policy applier

APPLY_BATCH = 500


class SlaPolicyApplier:
    """Moves the open tickets to an SLA policy revision put with apply_to_open (one consumer on
    careops.ticketing.policy.sla). Each ticket's command id is derived from the policy event and
    the ticket, so a redelivery or a restart after a crash applies nothing twice; tickets already
    under that revision or a later one are left alone (ApplySlaPolicy decides on their state)."""

    def __init__(
        self,
        app: TicketingApp,
        *,
        synced: Callable[[int], Awaitable[bool]],
        active: Callable[[int, int], Awaitable[Sequence[tuple[str, int]]]],
    ) -> None:
        self._app = app
        self._synced = synced
        self._active = active
        self.handled = 0  # the last stream sequence handled (tests wait on it)

    async def handle(self, message: RecordedBatch) -> None:
        for item in policies.CODEC.decode_batch(message.batch):
            put: policies.PolicyVersionPut = item.event
            if put.kind == KIND_NAME and put.apply_to_open:
                await self._apply(put.revision, item.envelope.event_id, message.sequence)
        self.handled = max(self.handled, message.sequence)

    async def _apply(self, revision: int, cause: str, sequence: int) -> None:
        # The ticket list must hold every ticket opened before the put.
        if not await self._synced(sequence):
            raise RuntimeError("the ticket list did not catch up; redelivery retries")
        after, applied = 0, 0
        while page := await self._active(after, APPLY_BATCH):
            for ticket_id, opened in page:
                result = await self._app.apply_sla_policy(
                    ticket_id, revision, command_id=f"sla-policy.{cause}.{ticket_id}"
                )
                applied += bool(result.events)
                after = opened
        log.info("sla policy applied", extra={"revision": revision, "tickets": applied})
