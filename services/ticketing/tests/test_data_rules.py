"""Rule 1 and 5 of docs/permissions.md where they are enforced: the application (and the gRPC
edge that hands it the caller), on the in-memory store and the default agents directory (the
seed, put on the log)."""

from __future__ import annotations

from pathlib import Path

import pytest
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import types_pb2
from careops_eventstore.memory import InMemoryEventStore
from careops_platform.errors import PermissionDenied
from careops_platform.identity import Principal, run_as
from careops_platform.permissions import default_table

from tests.in_memory import logged
from tests.support import FakeClock
from ticketing import domain
from ticketing.application import ASSIGN, CODEC, STREAM, WORKS_TICKET, TicketingApp
from ticketing.main import TicketingService, TicketingSettings

# agents_default.yaml: agent-wang works faults, agent-li consultations and returns.
WANG = Principal("agent-wang", frozenset({"agent"}))
LI = Principal("agent-li", frozenset({"agent"}))
SENIOR = Principal("senior-1", frozenset({"senior_agent"}))
SUPERVISOR = Principal("lead-1", frozenset({"supervisor"}))
CONNECTOR = Principal("mail-connector", frozenset({"integration"}))

# One command per narrowed RPC, each legal on an open, unassigned ticket except where noted.
WORK: dict[type[domain.Command], domain.Command] = {
    domain.AddReply: domain.AddReply(domain.Author.AGENT, "", "On it"),
    domain.ChangePriority: domain.ChangePriority(domain.Priority.URGENT, "outage"),
    domain.EscalateTicket: domain.EscalateTicket("needs tier 2"),
    domain.HoldTicket: domain.HoldTicket(domain.HoldReason.WAITING_CUSTOMER),
    domain.ResolveTicket: domain.ResolveTicket("replaced the router"),
}


async def booted(tmp_path: Path) -> tuple[TicketingService, TicketingApp, InMemoryEventStore]:
    """Returns the service's composition root, its application and a fresh in-memory store."""
    service = TicketingService(TicketingSettings(data_dir=str(tmp_path)), clock=FakeClock())
    store = InMemoryEventStore()
    app = await service.bootstrap(store)
    await app.seed_agents(directory_empty=True)  # the service puts the seed once it has started
    return service, app, store


async def opened(
    app: TicketingApp, ticket_id: str, *, kind: domain.TicketType = domain.TicketType.FAULT
) -> None:
    """Opens a ticket of `kind` with no caller (no data rule)."""
    command = domain.OpenTicket(
        ticket_id=ticket_id,
        customer_id="c-1",
        channel=domain.Channel.EMAIL,
        type=kind,
        priority=domain.Priority.HIGH,
        subject="Router down",
    )
    await app.execute(ticket_id, command, command_id=f"open-{ticket_id}")


async def assigned(app: TicketingApp, ticket_id: str, agent_id: str) -> None:
    """Opens a fault ticket and assigns it to `agent_id`, with no caller."""
    await opened(app, ticket_id)
    await app.execute(ticket_id, domain.AssignTicket(agent_id), command_id=f"assign-{ticket_id}")


async def refused(
    app: TicketingApp,
    store: InMemoryEventStore,
    ticket_id: str,
    command: domain.Command,
    caller: Principal,
) -> PermissionDenied:
    """Runs `command` as `caller`, expecting PERMISSION_DENIED and nothing appended."""
    before = await store.last_sequence(STREAM.name)
    with pytest.raises(PermissionDenied) as denied:
        await app.execute(ticket_id, command, command_id="refused", caller=caller)
    assert await store.last_sequence(STREAM.name) == before
    return denied.value


@pytest.mark.parametrize("kind", list(WORK))
async def test_an_agent_works_an_unassigned_ticket_of_their_queue(
    tmp_path: Path, kind: type[domain.Command]
) -> None:
    _, app, store = await booted(tmp_path)
    await opened(app, "t-1")
    before = await store.last_sequence(STREAM.name)
    result = await app.execute("t-1", WORK[kind], command_id="work", caller=WANG)
    assert result.events
    assert await store.last_sequence(STREAM.name) == before + 1


@pytest.mark.parametrize("kind", list(WORK))
async def test_an_agent_is_refused_another_agents_ticket_naming_permission_and_rule(
    tmp_path: Path, kind: type[domain.Command]
) -> None:
    _, app, store = await booted(tmp_path)
    await assigned(app, "t-1", "agent-wang")
    denied = await refused(app, store, "t-1", WORK[kind], LI)
    assert denied.permission == WORKS_TICKET[kind]
    assert WORKS_TICKET[kind] in denied.message
    assert "assigned to them or unassigned in their queue" in denied.message


async def test_an_agent_is_refused_an_unassigned_ticket_of_another_queue(tmp_path: Path) -> None:
    _, app, store = await booted(tmp_path)
    await opened(app, "t-1")  # a fault; agent-li works consultations and returns
    denied = await refused(app, store, "t-1", WORK[domain.AddReply], LI)
    assert denied.permission == "ticket.reply"


async def test_an_agent_works_their_own_ticket_outside_their_queue(tmp_path: Path) -> None:
    _, app, _ = await booted(tmp_path)
    await assigned(app, "t-1", "agent-li")
    result = await app.execute("t-1", WORK[domain.EscalateTicket], command_id="e", caller=LI)
    assert result.state.escalation_level == 1


async def test_resume_and_reopen_are_narrowed_too(tmp_path: Path) -> None:
    _, app, store = await booted(tmp_path)
    await assigned(app, "t-1", "agent-wang")
    await app.execute("t-1", WORK[domain.HoldTicket], command_id="hold", caller=WANG)
    denied = await refused(app, store, "t-1", domain.ResumeTicket(), LI)
    assert denied.permission == "ticket.resume"
    await app.execute("t-1", domain.ResumeTicket(), command_id="resume", caller=WANG)
    await app.execute("t-1", WORK[domain.ResolveTicket], command_id="resolve", caller=WANG)
    denied = await refused(app, store, "t-1", domain.ReopenTicket("still down"), LI)
    assert denied.permission == "ticket.reopen"
    reopened = await app.execute(
        "t-1", domain.ReopenTicket("still down"), command_id="reopen", caller=WANG
    )
    assert reopened.state.reopen_count == 1


@pytest.mark.parametrize("caller", [SENIOR, SUPERVISOR, CONNECTOR])
async def test_seniors_supervisors_and_connectors_work_any_ticket(
    tmp_path: Path, caller: Principal
) -> None:
    _, app, _ = await booted(tmp_path)
    await assigned(app, "t-1", "agent-wang")
    reply = domain.AddReply(domain.Author.CUSTOMER, "c-1", "Still broken")
    result = await app.execute("t-1", reply, command_id="reply", caller=caller)
    assert result.events


async def test_an_agent_takes_an_unassigned_ticket_of_their_queue(tmp_path: Path) -> None:
    _, app, _ = await booted(tmp_path)
    await opened(app, "t-1")
    result = await app.execute(
        "t-1", domain.AssignTicket("agent-wang"), command_id="take", caller=WANG
    )
    assert result.state.assignee_id == "agent-wang"


@pytest.mark.parametrize(
    ("caller", "assignee", "already"),
    [
        (WANG, "agent-chen", ""),  # an agent assigns nobody else
        (LI, "agent-li", ""),  # not of agent-li's queue
        (WANG, "agent-wang", "agent-li"),  # reassigning another's ticket
    ],
)
async def test_an_agent_is_refused_other_assignments(
    tmp_path: Path, caller: Principal, assignee: str, already: str
) -> None:
    _, app, store = await booted(tmp_path)
    if already:
        await assigned(app, "t-1", already)
    else:
        await opened(app, "t-1")
    denied = await refused(app, store, "t-1", domain.AssignTicket(assignee), caller)
    assert denied.permission == ASSIGN
    assert "reassigning is for senior agents and supervisors" in denied.message


async def test_a_supervisor_reassigns(tmp_path: Path) -> None:
    _, app, _ = await booted(tmp_path)
    await assigned(app, "t-1", "agent-li")
    result = await app.execute(
        "t-1", domain.AssignTicket("agent-wang"), command_id="re", caller=SUPERVISOR
    )
    assert result.state.assignee_id == "agent-wang"


async def test_an_agent_reply_is_authored_by_the_caller(tmp_path: Path) -> None:
    _, app, store = await booted(tmp_path)
    await opened(app, "t-1")
    await app.execute("t-1", WORK[domain.AddReply], command_id="reply", caller=WANG)
    reply = (await logged(store, STREAM.name, CODEC))[-1].event
    assert isinstance(reply, domain.ReplyAdded)
    assert reply.author_id == "agent-wang"


async def test_replying_as_another_agent_is_refused(tmp_path: Path) -> None:
    _, app, store = await booted(tmp_path)
    await opened(app, "t-1")
    forged = domain.AddReply(domain.Author.AGENT, "agent-chen", "On it")
    denied = await refused(app, store, "t-1", forged, SUPERVISOR)
    assert denied.permission == "ticket.reply"
    assert "authored by the caller" in denied.message


async def test_an_unknown_ticket_is_not_found_before_any_rule(tmp_path: Path) -> None:
    _, app, _ = await booted(tmp_path)
    with pytest.raises(domain.TicketNotFound):
        await app.execute("t-9", WORK[domain.EscalateTicket], command_id="x", caller=LI)


async def test_without_a_caller_no_data_rule_applies(tmp_path: Path) -> None:
    _, app, _ = await booted(tmp_path)
    await assigned(app, "t-1", "agent-wang")
    result = await app.execute("t-1", WORK[domain.EscalateTicket], command_id="e")
    assert result.events


async def test_the_grpc_edge_hands_the_application_its_caller(tmp_path: Path) -> None:
    service, app, store = await booted(tmp_path)
    servicer = service.servicer(app)
    await assigned(app, "t-1", "agent-wang")
    request = pb.EscalateTicketRequest(ticket_id="t-1", reason="tier 2")
    restore = run_as(LI)
    try:
        before = await store.last_sequence(STREAM.name)
        with pytest.raises(PermissionDenied):
            await servicer.EscalateTicket(request, None)
        assert await store.last_sequence(STREAM.name) == before
    finally:
        restore()
    restore = run_as(WANG)
    try:
        reply = pb.AddReplyRequest(ticket_id="t-1", author=types_pb2.AUTHOR_AGENT, body="Hi")
        response = await servicer.AddReply(reply, None)
    finally:
        restore()
    assert response.ticket.agent_replies == 1


@pytest.mark.parametrize("kind", [*WORKS_TICKET, domain.AssignTicket])
def test_the_permissions_named_are_the_tables(kind: type[domain.Command]) -> None:
    name = WORKS_TICKET.get(kind, ASSIGN)
    method = f"/careops.ticketing.v1.TicketingService/{kind.__name__}"
    permission = default_table().permission(method)
    assert permission is not None and permission.name == name
