"""Ticket aggregate: lifecycle, SLA clocks and routing. Pure: no I/O, no clock, no protobuf.

decide(state, command, now=..., policy=...) -> events;  evolve(state, event, at) -> state.
SLA clocks count business time of the policy's calendar with the shared model of
`careops_sla.clock` (the one quality's what-if replays); the events carry a snapshot of every
clock they change, so evolve needs no calendar and the read side can schedule the deadlines.

Modules by job: `values`, `errors`, `events`, `commands`, `ticket` (state and evolve), `decide`
(decisions and clock maths), `compensation` (grants within per-role limits), `routing` (agent
suggestions), `access` (which tickets a principal may work), `agents` (the agent directory),
`macros` (prepared answers). Every name is re-exported here.
"""

from __future__ import annotations

from ticketing.domain.access import (
    AGENT as AGENT,
)
from ticketing.domain.access import (
    in_queue as in_queue,
)
from ticketing.domain.access import (
    may_act_on_ticket as may_act_on_ticket,
)
from ticketing.domain.access import (
    may_assign as may_assign,
)
from ticketing.domain.access import (
    sees_internal as sees_internal,
)
from ticketing.domain.agents import (
    SENIOR as SENIOR,
)
from ticketing.domain.agents import (
    AgentAvailabilityChanged as AgentAvailabilityChanged,
)
from ticketing.domain.agents import (
    AgentCommand as AgentCommand,
)
from ticketing.domain.agents import (
    AgentEvent as AgentEvent,
)
from ticketing.domain.agents import (
    AgentNotFound as AgentNotFound,
)
from ticketing.domain.agents import (
    AgentProfile as AgentProfile,
)
from ticketing.domain.agents import (
    AgentPut as AgentPut,
)
from ticketing.domain.agents import (
    Availability as Availability,
)
from ticketing.domain.agents import (
    ChannelCapacity as ChannelCapacity,
)
from ticketing.domain.agents import (
    PutAgent as PutAgent,
)
from ticketing.domain.agents import (
    SetAvailability as SetAvailability,
)
from ticketing.domain.agents import (
    decide_agent as decide_agent,
)
from ticketing.domain.agents import (
    evolve_agent as evolve_agent,
)
from ticketing.domain.agents import (
    initial_agent as initial_agent,
)
from ticketing.domain.agents import (
    put_from_skills as put_from_skills,
)
from ticketing.domain.checklist import (
    CHECKLISTS as CHECKLISTS,
)
from ticketing.domain.checklist import (
    ChecklistItemTicked as ChecklistItemTicked,
)
from ticketing.domain.checklist import (
    ItemTicked as ItemTicked,
)
from ticketing.domain.checklist import (
    TickChecklistItem as TickChecklistItem,
)
from ticketing.domain.commands import (
    AddReply as AddReply,
)
from ticketing.domain.commands import (
    ApplySlaPolicy as ApplySlaPolicy,
)
from ticketing.domain.commands import (
    AssignTicket as AssignTicket,
)
from ticketing.domain.commands import (
    ChangePriority as ChangePriority,
)
from ticketing.domain.commands import (
    CloseTicket as CloseTicket,
)
from ticketing.domain.commands import (
    Command as Command,
)
from ticketing.domain.commands import (
    EscalateTicket as EscalateTicket,
)
from ticketing.domain.commands import (
    FireSlaTimer as FireSlaTimer,
)
from ticketing.domain.commands import (
    HoldTicket as HoldTicket,
)
from ticketing.domain.commands import (
    OpenTicket as OpenTicket,
)
from ticketing.domain.commands import (
    ReopenTicket as ReopenTicket,
)
from ticketing.domain.commands import (
    ResolveTicket as ResolveTicket,
)
from ticketing.domain.commands import (
    ResumeTicket as ResumeTicket,
)
from ticketing.domain.commands import (
    ReturnToQueue as ReturnToQueue,
)
from ticketing.domain.compensation import (
    ApproveCompensation as ApproveCompensation,
)
from ticketing.domain.compensation import (
    Compensation as Compensation,
)
from ticketing.domain.compensation import (
    CompensationApproved as CompensationApproved,
)
from ticketing.domain.compensation import (
    CompensationEvent as CompensationEvent,
)
from ticketing.domain.compensation import (
    CompensationGranted as CompensationGranted,
)
from ticketing.domain.compensation import (
    CompensationKind as CompensationKind,
)
from ticketing.domain.compensation import (
    CompensationLimits as CompensationLimits,
)
from ticketing.domain.compensation import (
    CompensationNotFound as CompensationNotFound,
)
from ticketing.domain.compensation import (
    CompensationRejected as CompensationRejected,
)
from ticketing.domain.compensation import (
    CompensationRequested as CompensationRequested,
)
from ticketing.domain.compensation import (
    CompensationStatus as CompensationStatus,
)
from ticketing.domain.compensation import (
    GrantCompensation as GrantCompensation,
)
from ticketing.domain.compensation import (
    LimitExceeded as LimitExceeded,
)
from ticketing.domain.compensation import (
    RejectCompensation as RejectCompensation,
)
from ticketing.domain.compensation import (
    granted_total as granted_total,
)
from ticketing.domain.complaint import (
    ESCALATION_TEAM as ESCALATION_TEAM,
)
from ticketing.domain.complaint import (
    FOLLOW_UP_TIMER as FOLLOW_UP_TIMER,
)
from ticketing.domain.complaint import (
    Complaint as Complaint,
)
from ticketing.domain.complaint import (
    ComplaintFollowUpMissed as ComplaintFollowUpMissed,
)
from ticketing.domain.complaint import (
    ComplaintStep as ComplaintStep,
)
from ticketing.domain.complaint import (
    ComplaintStepRecorded as ComplaintStepRecorded,
)
from ticketing.domain.complaint import (
    FireFollowUpTimer as FireFollowUpTimer,
)
from ticketing.domain.complaint import (
    RecordComplaintStep as RecordComplaintStep,
)
from ticketing.domain.complaint import (
    StepTaken as StepTaken,
)
from ticketing.domain.decide import (
    Policy as Policy,
)
from ticketing.domain.decide import (
    decide as decide,
)
from ticketing.domain.decide import (
    snapshot as snapshot,
)
from ticketing.domain.errors import (
    IllegalTransition as IllegalTransition,
)
from ticketing.domain.errors import (
    InvalidCommand as InvalidCommand,
)
from ticketing.domain.errors import (
    MacroNotFound as MacroNotFound,
)
from ticketing.domain.errors import (
    TicketAlreadyExists as TicketAlreadyExists,
)
from ticketing.domain.errors import (
    TicketError as TicketError,
)
from ticketing.domain.errors import (
    TicketNotFound as TicketNotFound,
)
from ticketing.domain.errors import (
    require as require,
)
from ticketing.domain.events import (
    FREE_TEXT as FREE_TEXT,
)
from ticketing.domain.events import (
    PriorityChanged as PriorityChanged,
)
from ticketing.domain.events import (
    ReplyAdded as ReplyAdded,
)
from ticketing.domain.events import (
    SlaBreached as SlaBreached,
)
from ticketing.domain.events import (
    SlaClockSnapshot as SlaClockSnapshot,
)
from ticketing.domain.events import (
    SlaPolicyApplied as SlaPolicyApplied,
)
from ticketing.domain.events import (
    SlaSnapshot as SlaSnapshot,
)
from ticketing.domain.events import (
    SlaWarningRaised as SlaWarningRaised,
)
from ticketing.domain.events import (
    TicketAssigned as TicketAssigned,
)
from ticketing.domain.events import (
    TicketClosed as TicketClosed,
)
from ticketing.domain.events import (
    TicketEscalated as TicketEscalated,
)
from ticketing.domain.events import (
    TicketEvent as TicketEvent,
)
from ticketing.domain.events import (
    TicketHeld as TicketHeld,
)
from ticketing.domain.events import (
    TicketOpened as TicketOpened,
)
from ticketing.domain.events import (
    TicketReopened as TicketReopened,
)
from ticketing.domain.events import (
    TicketResolved as TicketResolved,
)
from ticketing.domain.events import (
    TicketResumed as TicketResumed,
)
from ticketing.domain.events import (
    TicketReturnedToQueue as TicketReturnedToQueue,
)
from ticketing.domain.macros import (
    FROM_TICKET as FROM_TICKET,
)
from ticketing.domain.macros import (
    PLACEHOLDERS as PLACEHOLDERS,
)
from ticketing.domain.macros import (
    DeleteMacro as DeleteMacro,
)
from ticketing.domain.macros import (
    Macro as Macro,
)
from ticketing.domain.macros import (
    MacroCommand as MacroCommand,
)
from ticketing.domain.macros import (
    MacroDeleted as MacroDeleted,
)
from ticketing.domain.macros import (
    MacroEvent as MacroEvent,
)
from ticketing.domain.macros import (
    MacroPut as MacroPut,
)
from ticketing.domain.macros import (
    PutMacro as PutMacro,
)
from ticketing.domain.macros import (
    decide_macro as decide_macro,
)
from ticketing.domain.macros import (
    evolve_macro as evolve_macro,
)
from ticketing.domain.macros import (
    initial_macro as initial_macro,
)
from ticketing.domain.macros import (
    render as render,
)
from ticketing.domain.routing import (
    Agent as Agent,
)
from ticketing.domain.routing import (
    Suggestion as Suggestion,
)
from ticketing.domain.routing import (
    suggest_agents as suggest_agents,
)
from ticketing.domain.ticket import (
    Ticket as Ticket,
)
from ticketing.domain.ticket import (
    evolve as evolve,
)
from ticketing.domain.ticket import (
    initial as initial,
)
from ticketing.domain.values import (
    ACTIVE as ACTIVE,
)
from ticketing.domain.values import (
    MAX_ID as MAX_ID,
)
from ticketing.domain.values import (
    MAX_SUBJECT as MAX_SUBJECT,
)
from ticketing.domain.values import (
    MAX_TEXT as MAX_TEXT,
)
from ticketing.domain.values import (
    Author as Author,
)
from ticketing.domain.values import (
    Channel as Channel,
)
from ticketing.domain.values import (
    CustomerTier as CustomerTier,
)
from ticketing.domain.values import (
    HoldReason as HoldReason,
)
from ticketing.domain.values import (
    Priority as Priority,
)
from ticketing.domain.values import (
    SlaClock as SlaClock,
)
from ticketing.domain.values import (
    SlaTimerKind as SlaTimerKind,
)
from ticketing.domain.values import (
    Status as Status,
)
from ticketing.domain.values import (
    TicketType as TicketType,
)
