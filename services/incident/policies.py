"""The response matrix's versions and the what-if over past incidents (issue 13).

The risk policy itself is a `careops_platform.policies` kind (application.RISK_POLICY, read
and put through IncidentApp.risk_book). The matrix predates that module: it stays its own
aggregate (careops.incident.matrix.default), whose every `ResponseMatrixChanged` on the log is
a version. The what-if reads a period's incidents from the log and replays their recorded
assessments (incident.domain.whatif) under a draft risk policy and/or a draft matrix.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from careops_eventstore.codec import from_timestamp
from careops_platform.errors import FieldViolation, InvalidArgument
from careops_platform.policies import PolicyKind
from careops_platform.requests import aggregate_id

from incident import config
from incident import domain as d
from incident.application import CODEC, INCIDENT, MATRIX, MATRIX_ID, STREAM, IncidentApp
from incident.domain import whatif
from incident.domain.values import ID_PATTERN
from incident.readmodels import DeclaredIncident

log = logging.getLogger(__name__)

DEFAULT_PERIOD = timedelta(days=30)
MAX_WHAT_IF_INCIDENTS = 5_000  # each incident's events are read from the log
READ_CONCURRENCY = 16
DEFAULT_PAGE = 50
MAX_PAGE = 500

# A draft matrix is parsed with the one located-error path of policy documents; it has no label.
MATRIX_DRAFT = PolicyKind(
    "matrix", config.parse_matrix, lambda _rows: "draft", (config.MatrixDraftError,)
)


# ----------------------------------------------------------------------------- matrix versions


@dataclass(frozen=True)
class MatrixVersion:
    """One version of the response matrix: `matrix.version` is its stream sequence."""

    matrix: d.Matrix
    revision: int
    author: str
    put_at: datetime


async def matrix_versions(app: IncidentApp) -> list[MatrixVersion]:
    """Every version of the response matrix, oldest first (read from the log)."""
    batches = await app.store.read_subject(stream=STREAM.name, subject=MATRIX.subject(MATRIX_ID))
    versions: list[MatrixVersion] = []
    state = d.Matrix()
    for batch in batches:
        for envelope in batch.batch.events:
            if not CODEC.knows(envelope.type):
                continue
            event = CODEC.decode(envelope)
            if not isinstance(event, d.ResponseMatrixChanged):
                continue
            at = from_timestamp(envelope.occurred_at)
            state = d.evolve_matrix(state, event, at)
            versions.append(
                MatrixVersion(
                    d.Matrix(state.rows, batch.sequence), len(versions) + 1, envelope.actor, at
                )
            )
    return versions


def page_of_versions(
    versions: Sequence[MatrixVersion], *, page_size: int, before_revision: int
) -> tuple[list[MatrixVersion], int]:
    """Returns a page of versions, newest first, and the next page's `before_revision` (0:
    none); INVALID_ARGUMENT for a page_size above MAX_PAGE."""
    if page_size > MAX_PAGE:
        raise InvalidArgument(
            f"page_size: at most {MAX_PAGE}", [FieldViolation("page_size", f"at most {MAX_PAGE}")]
        )
    size = page_size or DEFAULT_PAGE
    newest_first = [
        v for v in reversed(versions) if not before_revision or v.revision < before_revision
    ]
    page = newest_first[:size]
    more = len(newest_first) > size
    return page, page[-1].revision if more and page else 0


# ----------------------------------------------------------------------------- what-if


@dataclass(frozen=True)
class Comparison:
    """One incident as it happened (`actual`) and as the draft would have rated it."""

    incident_id: str
    type: str
    title: str
    drill: bool
    declared_at: datetime
    actual: whatif.Outcome
    draft: whatif.Outcome
    risk_version: str
    matrix_version: int

    @property
    def changed(self) -> bool:
        return whatif.differs(self.actual, self.draft)


@dataclass(frozen=True)
class WhatIfReport:
    """The period's incidents compared, with totals per level and per team."""

    since: datetime
    until: datetime
    incidents: list[Comparison] = field(default_factory=list)
    drills_excluded: int = 0
    draft_risk_version: str = ""

    @property
    def changed(self) -> int:
        return sum(1 for c in self.incidents if c.changed)

    def levels(self) -> list[tuple[str, int, int]]:
        """(level, actual, draft) incident counts, A to C."""
        actual = Counter(c.actual.level for c in self.incidents)
        draft = Counter(c.draft.level for c in self.incidents)
        return [(level.value.upper(), actual[level], draft[level]) for level in d.Level]

    def teams_engaged(self) -> list[tuple[str, int, int]]:
        """(team, actual, draft) counts of incidents engaging the team, by team."""
        return _per_team([(tuple(c.actual.teams), tuple(c.draft.teams)) for c in self.incidents])

    def teams_paged(self) -> list[tuple[str, int, int]]:
        """(team, actual, draft) counts of incidents paging the team, by team."""
        return _per_team([(c.actual.paged, c.draft.paged) for c in self.incidents])


def _per_team(
    pairs: Sequence[tuple[tuple[str, ...], tuple[str, ...]]],
) -> list[tuple[str, int, int]]:
    actual: Counter[str] = Counter()
    draft: Counter[str] = Counter()
    for before, after in pairs:
        actual.update(before)
        draft.update(after)
    return [(team, actual[team], draft[team]) for team in sorted(actual.keys() | draft.keys())]


@dataclass(frozen=True)
class Drafts:
    """What the what-if replays under: a draft risk model, a draft matrix, or both."""

    risk: d.RiskModel | None = None
    matrix: d.Matrix | None = None


ReadDeclared = Callable[[datetime, datetime, int], Awaitable[list[DeclaredIncident]]]
"""Reads up to N incidents declared in [since, until) from the read model."""

_ROW = re.compile(r"^rows\[(\d+)\]")
_CELL = re.compile(r"\.cells\[(\d+)\](\.team_id|\.engagement)?")


def _type_path(row: d.MatrixRow) -> str:
    """`types.<type>`, or `types` for a type that is no id (never echoed)."""
    return f"types.{row.incident_type}" if ID_PATTERN.fullmatch(row.incident_type) else "types"


def _matrix_path(path: str, rows: Sequence[d.MatrixRow]) -> str:
    """Returns a domain matrix violation's path in the YAML (`types.x.teams.y`)."""
    row_match = _ROW.match(path)
    if not row_match:
        return "types"
    row = rows[int(row_match[1])]
    if _type_path(row) == "types":
        return "types"
    located = f"types.{row.incident_type}" + path[row_match.end() :]
    cell_match = _CELL.search(located)
    if cell_match:
        team = row.cells[int(cell_match[1])].team_id
        located = located[: cell_match.start()] + f".teams.{team}"
    return located.replace(".cells", ".teams")


class IncidentWhatIf:
    """Replays a period's incidents under drafts and compares them with what happened."""

    def __init__(self, app: IncidentApp, read_declared: ReadDeclared) -> None:
        self._app = app
        self._read_declared = read_declared

    async def drafts(self, risk_document: str, matrix_document: str) -> Drafts:
        """Parses the drafts; INVALID_ARGUMENT locating the first bad key of either."""
        if not risk_document.strip() and not matrix_document.strip():
            message = "give a draft risk policy, a draft response matrix, or both"
            raise InvalidArgument(
                f"risk_document: {message}", [FieldViolation("risk_document", message)]
            )
        risk = (
            self._app.risk_book.check(risk_document, field_name="risk_document")
            if risk_document.strip()
            else None
        )
        matrix = await self._matrix(matrix_document) if matrix_document.strip() else None
        return Drafts(risk, matrix)

    async def _matrix(self, document: str) -> d.Matrix:
        rows = MATRIX_DRAFT.check(document, field_name="matrix_document")
        for row in rows:  # team ids are subject tokens before any team is loaded
            for cell in row.cells:
                aggregate_id(cell.team_id, f"matrix_document.{_type_path(row)}.teams", kind="team")
        known = set()
        for team_id in sorted({cell.team_id for row in rows for cell in row.cells}):
            try:
                await self._app.team(team_id)
                known.add(team_id)
            except d.NotFound:
                pass
        violations = d.validate_matrix(rows, known)
        if violations:
            located = [
                FieldViolation(f"matrix_document.{_matrix_path(path, rows)}", why)
                for path, why in violations
            ]
            text = "; ".join(f"{v.field}: {v.description}" for v in located)
            raise InvalidArgument(text, located)
        return d.Matrix({row.incident_type: row for row in rows}, 0)

    async def compare(
        self,
        drafts: Drafts,
        *,
        since: datetime | None,
        until: datetime | None,
        include_drills: bool = False,
    ) -> WhatIfReport:
        """Compares the incidents declared in [since, until) (defaults: the last 30 days)."""
        end = until or self._app.clock()
        try:
            start = since or end - DEFAULT_PERIOD
        except OverflowError:
            raise InvalidArgument(
                "until: too early for a default period",
                [FieldViolation("until", "at least 30 days after year 1, or give since")],
            ) from None
        if start >= end:
            raise InvalidArgument(
                "since: must be before until", [FieldViolation("since", "must be before until")]
            )
        declared = await self._read_declared(start, end, MAX_WHAT_IF_INCIDENTS + 1)
        if len(declared) > MAX_WHAT_IF_INCIDENTS:
            message = f"more than {MAX_WHAT_IF_INCIDENTS:,} incidents; narrow the period"
            raise InvalidArgument(f"since: {message}", [FieldViolation("since", message)])
        chosen = [row for row in declared if include_drills or not row.drill]
        replay = _Replay(self._app, drafts)
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def one(row: DeclaredIncident) -> Comparison | None:
            async with gate:
                return await replay.compare(row.incident_id)

        compared = await asyncio.gather(*(one(row) for row in chosen))
        report = WhatIfReport(
            since=start,
            until=end,
            incidents=[c for c in compared if c is not None],
            drills_excluded=len(declared) - len(chosen),
            draft_risk_version=drafts.risk.version if drafts.risk else "",
        )
        log.info(
            "incident what-if",
            extra={
                "incidents": len(report.incidents),
                "changed": report.changed,
                "drills_excluded": report.drills_excluded,
                "draft_risk": bool(drafts.risk),
                "draft_matrix": bool(drafts.matrix),
            },
        )
        return report


class _Replay:
    """One what-if's replays, with the policies of the past read once each."""

    def __init__(self, app: IncidentApp, drafts: Drafts) -> None:
        self._app = app
        self._drafts = drafts
        self._risks: dict[str, d.RiskModel] = {}
        self._matrices: dict[int, d.Matrix] = {}

    async def _risk(self, label: str) -> d.RiskModel:
        """The risk model a decision recorded (the one in force when the label is unknown)."""
        if self._drafts.risk is not None:
            return self._drafts.risk
        if label not in self._risks:
            found = await self._app.risk_book.labelled(label) if label else None
            self._risks[label] = found[1] if found else await self._app.risk_model()
        return self._risks[label]

    async def _matrix(self, version: int) -> d.Matrix:
        """The matrix version a decision recorded."""
        if self._drafts.matrix is not None:
            return self._drafts.matrix
        if version not in self._matrices:
            loaded = await self._app.matrix_repository.load_until(MATRIX_ID, version)
            self._matrices[version] = d.Matrix(loaded.state.rows, loaded.version)
        return self._matrices[version]

    async def compare(self, incident_id: str) -> Comparison | None:
        """Reads the incident's events and replays its assessments (None: not on the log)."""
        batches = await self._app.store.read_subject(
            stream=STREAM.name, subject=INCIDENT.subject(incident_id)
        )
        state = d.initial(incident_id)
        assessments: list[whatif.Assessment] = []
        for batch in batches:
            for envelope in batch.batch.events:
                if not CODEC.knows(envelope.type):
                    continue
                event = CODEC.decode(envelope)
                at = from_timestamp(envelope.occurred_at)
                state = d.evolve(state, event, at)
                if whatif.is_assessment(event):
                    versions = envelope.policy_versions
                    matrix_version = versions.get("response_matrix", "0")
                    assessments.append(
                        whatif.Assessment(
                            at,
                            event,
                            versions.get("risk_model", ""),
                            int(matrix_version) if matrix_version.isdigit() else 0,
                        )
                    )
        if not state.exists or state.declared_at is None or not assessments:
            return None
        resolved = [
            (a, (await self._risk(a.risk_version), await self._matrix(a.matrix_version)))
            for a in assessments
        ]
        draft = whatif.replay(incident_id, resolved)
        if draft is None:
            return None
        first = assessments[0]
        return Comparison(
            incident_id=incident_id,
            type=state.type,
            title=state.title,
            drill=state.drill,
            declared_at=state.declared_at,
            actual=whatif.Outcome.of(state),
            draft=draft,
            risk_version=first.risk_version,
            matrix_version=first.matrix_version,
        )
