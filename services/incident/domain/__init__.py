"""Incidents, teams and the response matrix. Pure: no I/O, no clock, no protobuf.

Risk index = sum of weight x normalised factor (DOMAIN §3); the level sets the response deadline;
the response matrix (data) says which teams are paged (red, yellow) or informed (grey); each
paged team's escalation chain pages its on-call, then the next step, until someone acknowledges.

Modules by job: `values` (levels, statuses, kinds), `errors`, `risk` (the risk model), `oncall`
(teams and rotation maths), `matrix`, `events`, `commands`, `incident` (state and evolve),
`decide` (the incident's decisions), `directory` (the team and matrix aggregates), `access` (who
may acknowledge a page), `drills` (drill scenarios, scheduled drills, drill reports). Every
name is re-exported here, so `from incident import domain; domain.X` keeps working.
"""

from __future__ import annotations

from incident.domain import escalation as escalation
from incident.domain.access import (
    entitled_to_acknowledge as entitled_to_acknowledge,
)
from incident.domain.access import (
    escalation_target as escalation_target,
)
from incident.domain.access import (
    escalation_targets as escalation_targets,
)
from incident.domain.access import (
    may_acknowledge as may_acknowledge,
)
from incident.domain.commands import (
    AcknowledgePage as AcknowledgePage,
)
from incident.domain.commands import (
    AddUpdate as AddUpdate,
)
from incident.domain.commands import (
    AssignRole as AssignRole,
)
from incident.domain.commands import (
    CloseIncident as CloseIncident,
)
from incident.domain.commands import (
    Command as Command,
)
from incident.domain.commands import (
    DeclareIncident as DeclareIncident,
)
from incident.domain.commands import (
    DeliveryOutcome as DeliveryOutcome,
)
from incident.domain.commands import (
    EscalateIncident as EscalateIncident,
)
from incident.domain.commands import (
    FireContactTimer as FireContactTimer,
)
from incident.domain.commands import (
    FirePageTimer as FirePageTimer,
)
from incident.domain.commands import (
    FireResponseTimer as FireResponseTimer,
)
from incident.domain.commands import (
    LinkTickets as LinkTickets,
)
from incident.domain.commands import (
    NotifyCustomers as NotifyCustomers,
)
from incident.domain.commands import (
    PublishStatement as PublishStatement,
)
from incident.domain.commands import (
    ReassessIncident as ReassessIncident,
)
from incident.domain.commands import (
    RecordDeliveries as RecordDeliveries,
)
from incident.domain.commands import (
    RecordDelivery as RecordDelivery,
)
from incident.domain.commands import (
    RecordDeliveryBatch as RecordDeliveryBatch,
)
from incident.domain.commands import (
    ResolveIncident as ResolveIncident,
)
from incident.domain.decide import (
    Context as Context,
)
from incident.domain.decide import (
    decide as decide,
)
from incident.domain.directory import (
    SCHEDULE_ANY as SCHEDULE_ANY,
)
from incident.domain.directory import (
    decide_matrix as decide_matrix,
)
from incident.domain.directory import (
    decide_override as decide_override,
)
from incident.domain.directory import (
    decide_override_removal as decide_override_removal,
)
from incident.domain.directory import (
    decide_prune as decide_prune,
)
from incident.domain.directory import (
    decide_swap as decide_swap,
)
from incident.domain.directory import (
    decide_swap_request as decide_swap_request,
)
from incident.domain.directory import (
    decide_team as decide_team,
)
from incident.domain.directory import (
    evolve_matrix as evolve_matrix,
)
from incident.domain.directory import (
    evolve_team as evolve_team,
)
from incident.domain.directory import (
    find_override as find_override,
)
from incident.domain.directory import (
    find_swap as find_swap,
)
from incident.domain.directory import (
    may_decide_swap as may_decide_swap,
)
from incident.domain.drills import (
    AT_LEAST as AT_LEAST,
)
from incident.domain.drills import (
    DEFAULT_SCENARIOS as DEFAULT_SCENARIOS,
)
from incident.domain.drills import (
    RECORDED as RECORDED,
)
from incident.domain.drills import (
    Drill as Drill,
)
from incident.domain.drills import (
    DrillCancelled as DrillCancelled,
)
from incident.domain.drills import (
    DrillEvent as DrillEvent,
)
from incident.domain.drills import (
    DrillFigureRecorded as DrillFigureRecorded,
)
from incident.domain.drills import (
    DrillReport as DrillReport,
)
from incident.domain.drills import (
    DrillRun as DrillRun,
)
from incident.domain.drills import (
    DrillRunFailed as DrillRunFailed,
)
from incident.domain.drills import (
    DrillRunStarted as DrillRunStarted,
)
from incident.domain.drills import (
    DrillScenario as DrillScenario,
)
from incident.domain.drills import (
    DrillScenariosChanged as DrillScenariosChanged,
)
from incident.domain.drills import (
    DrillScheduled as DrillScheduled,
)
from incident.domain.drills import (
    DrillStatus as DrillStatus,
)
from incident.domain.drills import (
    DrillTarget as DrillTarget,
)
from incident.domain.drills import (
    Outcome as Outcome,
)
from incident.domain.drills import (
    Recurrence as Recurrence,
)
from incident.domain.drills import (
    TargetKind as TargetKind,
)
from incident.domain.drills import (
    TargetResult as TargetResult,
)
from incident.domain.drills import (
    TeamResponse as TeamResponse,
)
from incident.domain.drills import (
    decide_cancel as decide_cancel,
)
from incident.domain.drills import (
    decide_figure as decide_figure,
)
from incident.domain.drills import (
    decide_run as decide_run,
)
from incident.domain.drills import (
    decide_scenarios as decide_scenarios,
)
from incident.domain.drills import (
    decide_schedule as decide_schedule,
)
from incident.domain.drills import (
    due_run as due_run,
)
from incident.domain.drills import (
    evolve_drill as evolve_drill,
)
from incident.domain.drills import (
    evolve_scenarios as evolve_scenarios,
)
from incident.domain.drills import (
    initial_drill as initial_drill,
)
from incident.domain.drills import (
    next_due as next_due,
)
from incident.domain.drills import (
    report as report,
)
from incident.domain.drills import (
    run_of as run_of,
)
from incident.domain.drills import (
    validate_scenarios as validate_scenarios,
)
from incident.domain.errors import (
    IllegalTransition as IllegalTransition,
)
from incident.domain.errors import (
    IncidentAlreadyExists as IncidentAlreadyExists,
)
from incident.domain.errors import (
    IncidentError as IncidentError,
)
from incident.domain.errors import (
    InvalidCommand as InvalidCommand,
)
from incident.domain.errors import (
    NotFound as NotFound,
)
from incident.domain.errors import (
    require as require,
)
from incident.domain.escalation import (
    PlannedContact as PlannedContact,
)
from incident.domain.events import (
    CustomersNotificationDecided as CustomersNotificationDecided,
)
from incident.domain.events import (
    EscalationExhausted as EscalationExhausted,
)
from incident.domain.events import (
    IncidentClosed as IncidentClosed,
)
from incident.domain.events import (
    IncidentDeclared as IncidentDeclared,
)
from incident.domain.events import (
    IncidentEscalated as IncidentEscalated,
)
from incident.domain.events import (
    IncidentEvent as IncidentEvent,
)
from incident.domain.events import (
    IncidentReassessed as IncidentReassessed,
)
from incident.domain.events import (
    IncidentResolved as IncidentResolved,
)
from incident.domain.events import (
    NotificationDelivered as NotificationDelivered,
)
from incident.domain.events import (
    NotificationFailed as NotificationFailed,
)
from incident.domain.events import (
    OverrideAdded as OverrideAdded,
)
from incident.domain.events import (
    OverrideRemoved as OverrideRemoved,
)
from incident.domain.events import (
    PageAcknowledged as PageAcknowledged,
)
from incident.domain.events import (
    PageContactsDue as PageContactsDue,
)
from incident.domain.events import (
    PageEscalated as PageEscalated,
)
from incident.domain.events import (
    PageRequested as PageRequested,
)
from incident.domain.events import (
    PostIncidentReview as PostIncidentReview,
)
from incident.domain.events import (
    ResponseDeadlineMissed as ResponseDeadlineMissed,
)
from incident.domain.events import (
    ResponseMatrixChanged as ResponseMatrixChanged,
)
from incident.domain.events import (
    RoleAssigned as RoleAssigned,
)
from incident.domain.events import (
    SchedulePruned as SchedulePruned,
)
from incident.domain.events import (
    ShiftSwapAccepted as ShiftSwapAccepted,
)
from incident.domain.events import (
    ShiftSwapCancelled as ShiftSwapCancelled,
)
from incident.domain.events import (
    ShiftSwapDeclined as ShiftSwapDeclined,
)
from incident.domain.events import (
    ShiftSwapRequested as ShiftSwapRequested,
)
from incident.domain.events import (
    StatementPublished as StatementPublished,
)
from incident.domain.events import (
    TeamDefined as TeamDefined,
)
from incident.domain.events import (
    TeamEngaged as TeamEngaged,
)
from incident.domain.events import (
    TeamEvent as TeamEvent,
)
from incident.domain.events import (
    TeamInformed as TeamInformed,
)
from incident.domain.events import (
    TicketsLinked as TicketsLinked,
)
from incident.domain.events import (
    UpdateAdded as UpdateAdded,
)
from incident.domain.incident import (
    Delivery as Delivery,
)
from incident.domain.incident import (
    Incident as Incident,
)
from incident.domain.incident import (
    Notice as Notice,
)
from incident.domain.incident import (
    PageState as PageState,
)
from incident.domain.incident import (
    PublicStatement as PublicStatement,
)
from incident.domain.incident import (
    TeamEngagement as TeamEngagement,
)
from incident.domain.incident import (
    TimelineEntry as TimelineEntry,
)
from incident.domain.incident import (
    evolve as evolve,
)
from incident.domain.incident import (
    initial as initial,
)
from incident.domain.matrix import (
    Matrix as Matrix,
)
from incident.domain.matrix import (
    MatrixCell as MatrixCell,
)
from incident.domain.matrix import (
    MatrixRow as MatrixRow,
)
from incident.domain.matrix import (
    effective_engagement as effective_engagement,
)
from incident.domain.matrix import (
    validate_matrix as validate_matrix,
)
from incident.domain.notices import (
    CustomerTemplate as CustomerTemplate,
)
from incident.domain.notices import (
    NoticeTemplates as NoticeTemplates,
)
from incident.domain.notices import (
    RenderedNotice as RenderedNotice,
)
from incident.domain.notices import (
    validate_templates as validate_templates,
)
from incident.domain.oncall import (
    DEFAULT_ESCALATION as DEFAULT_ESCALATION,
)
from incident.domain.oncall import (
    ContactPoint as ContactPoint,
)
from incident.domain.oncall import (
    EscalationPolicy as EscalationPolicy,
)
from incident.domain.oncall import (
    EscalationStep as EscalationStep,
)
from incident.domain.oncall import (
    Member as Member,
)
from incident.domain.oncall import (
    NotificationRule as NotificationRule,
)
from incident.domain.oncall import (
    Override as Override,
)
from incident.domain.oncall import (
    Rotation as Rotation,
)
from incident.domain.oncall import (
    RoutingRule as RoutingRule,
)
from incident.domain.oncall import (
    Team as Team,
)
from incident.domain.oncall import (
    validate_team as validate_team,
)
from incident.domain.risk import (
    RiskFactors as RiskFactors,
)
from incident.domain.risk import (
    RiskModel as RiskModel,
)
from incident.domain.risk import (
    validate_factors as validate_factors,
)
from incident.domain.schedules import (
    MAX_RANGE as MAX_RANGE,
)
from incident.domain.schedules import (
    DecidedBy as DecidedBy,
)
from incident.domain.schedules import (
    Layer as Layer,
)
from incident.domain.schedules import (
    OnCall as OnCall,
)
from incident.domain.schedules import (
    Restriction as Restriction,
)
from incident.domain.schedules import (
    RotationType as RotationType,
)
from incident.domain.schedules import (
    Shift as Shift,
)
from incident.domain.schedules import (
    ShiftSwap as ShiftSwap,
)
from incident.domain.schedules import (
    SwapStatus as SwapStatus,
)
from incident.domain.schedules import (
    member_shifts as member_shifts,
)
from incident.domain.schedules import (
    time_violations as time_violations,
)
from incident.domain.schedules import (
    timeline as timeline,
)
from incident.domain.values import (
    HIGHER as HIGHER,
)
from incident.domain.values import (
    ID_PATTERN as ID_PATTERN,
)
from incident.domain.values import (
    MAX_TEXT as MAX_TEXT,
)
from incident.domain.values import (
    MAX_TITLE as MAX_TITLE,
)
from incident.domain.values import (
    OPEN as OPEN,
)
from incident.domain.values import (
    ROLE_PATTERN as ROLE_PATTERN,
)
from incident.domain.values import (
    ContactKind as ContactKind,
)
from incident.domain.values import (
    Engagement as Engagement,
)
from incident.domain.values import (
    Level as Level,
)
from incident.domain.values import (
    Source as Source,
)
from incident.domain.values import (
    Status as Status,
)
