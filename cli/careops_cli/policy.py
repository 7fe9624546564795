"""`careops policy <kind> show|edit|history|diff|what-if`: policies as versioned data (issue 13).

One command group for every kind: `KINDS` maps a kind to how it is read, put, listed and
simulated through the gateway. Kinds kept as `careops_platform.policies` documents (risk, …)
share `DocumentKind`; the response matrix, its own aggregate since issue 6, is shown and edited
as the YAML of CAREOPS_RESPONSE_MATRIX_FILE and put through PutResponseMatrix (`MatrixKind`).
"""

from __future__ import annotations

import difflib
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import grpc
import typer
import yaml
from careops.incident.v1 import incident_pb2 as ipb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as it
from careops.quality.v1 import quality_pb2 as qpb
from careops.quality.v1 import quality_pb2_grpc
from careops.ticketing.v1 import ticketing_pb2 as tpb
from careops.ticketing.v1 import ticketing_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from rich.table import Table

from careops_cli.audit import parse_time
from careops_cli.client import call, channel, console, print_message, report

policy_app = typer.Typer(
    help="Policies as versioned data: show, edit, history, diff, what-if.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the response as JSON.")]


@dataclass(frozen=True)
class Revision:
    """One revision of a policy as the CLI shows it."""

    revision: int
    version: str
    author: str
    put_at: datetime | None
    reason: str
    document: str
    current: bool


class PolicyKindCli(Protocol):
    """How the CLI reads, puts and simulates one kind of policy through the gateway."""

    def history(self, opened: grpc.Channel) -> list[Revision]:
        """Every revision, oldest first."""

    def put(
        self,
        opened: grpc.Channel,
        document: str,
        reason: str,
        expected: int,
        apply_to_open: bool = False,
    ) -> Revision:
        """Puts a document edited from revision `expected` (also to open work with
        `apply_to_open`, where the kind has any); returns the revision in force."""

    def what_if(
        self, opened: grpc.Channel, draft: str, since: datetime, until: datetime | None
    ) -> Any:
        """Runs the kind's what-if for `draft`; returns the response."""


def _time(stamp: Timestamp) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if stamp.seconds or stamp.nanos else None


def _stamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _incidents(opened: grpc.Channel) -> incident_pb2_grpc.IncidentServiceStub:
    return incident_pb2_grpc.IncidentServiceStub(opened)


def _quality(opened: grpc.Channel) -> quality_pb2_grpc.QualityServiceStub:
    return quality_pb2_grpc.QualityServiceStub(opened)


def _sla_what_if(opened: grpc.Channel, draft: str, since: datetime, until: datetime | None) -> Any:
    """Quality's what-if: the period's tickets replayed under the draft SLA policy."""
    period = qpb.Period(start=_stamp(since))
    if until is not None:
        period.end.CopyFrom(_stamp(until))
    return call(_quality(opened).WhatIf, qpb.WhatIfRequest(period=period, policy_yaml=draft))


def _incident_what_if(field: str) -> Callable[..., Any]:
    """The incident what-if with the draft in request field `field`."""

    def run(opened: grpc.Channel, draft: str, since: datetime, until: datetime | None) -> Any:
        request = ipb.WhatIfIncidentsRequest(since=_stamp(since))
        setattr(request, field, draft)
        if until is not None:
            request.until.CopyFrom(_stamp(until))
        return call(_incidents(opened).WhatIfIncidents, request)

    return run


def every_page(fetch: Callable[[int], Any]) -> list[Any]:
    """Every version a List…Versions RPC pages out (newest first, `before_revision` cursor),
    oldest first."""
    found: list[Any] = []
    before = 0
    while True:
        page = fetch(before)
        found.extend(page.versions)
        before = page.next_before_revision
        if not before:
            return list(reversed(found))


@dataclass(frozen=True)
class DocumentKind:
    """A kind served by careops_platform.policies: Put/Get/List<Kind>Versions of one service,
    with the fields of proto/careops/common/v1/policy.proto."""

    stub: Callable[[grpc.Channel], Any]
    put_rpc: str
    list_rpc: str
    put_request: Any
    list_request: Any
    run_what_if: Callable[..., Any] | None = None

    def history(self, opened: grpc.Channel) -> list[Revision]:
        rpc = getattr(self.stub(opened), self.list_rpc)
        versions = every_page(
            lambda before: call(rpc, self.list_request(page_size=500, before_revision=before))
        )
        return [
            Revision(
                v.revision, v.version, v.author, _time(v.put_at), v.reason, v.document, v.current
            )
            for v in versions
        ]

    def put(
        self,
        opened: grpc.Channel,
        document: str,
        reason: str,
        expected: int,
        apply_to_open: bool = False,
    ) -> Revision:
        request = self.put_request(
            document=document,
            reason=reason,
            expected_revision=expected,
            apply_to_open=apply_to_open,
        )
        v = call(getattr(self.stub(opened), self.put_rpc), request).policy
        return Revision(
            v.revision, v.version, v.author, _time(v.put_at), v.reason, v.document, v.current
        )

    def what_if(
        self, opened: grpc.Channel, draft: str, since: datetime, until: datetime | None
    ) -> Any:
        if self.run_what_if is None:
            report("this policy kind has no what-if")
            raise typer.Exit(1)
        return self.run_what_if(opened, draft, since, until)


def _engagement_name(number: Any) -> str:
    return str(it.Engagement.Name(number)).removeprefix("ENGAGEMENT_").lower()


def matrix_yaml(matrix: it.ResponseMatrix) -> str:
    """The matrix as the YAML of CAREOPS_RESPONSE_MATRIX_FILE."""
    types = {
        row.incident_type: {
            "title": row.title,
            "teams": {cell.team_id: _engagement_name(cell.engagement) for cell in row.cells},
        }
        for row in matrix.rows
    }
    return yaml.safe_dump({"types": types}, sort_keys=False)


def matrix_rows(document: str) -> list[it.MatrixRow]:
    """The rows of a matrix YAML document; exits 1 naming what is wrong (the service
    validates teams and red leads)."""
    try:
        data = yaml.safe_load(document) or {}
    except yaml.YAMLError as exc:
        report(f"not YAML: {exc}")
        raise typer.Exit(1) from None
    types = data.get("types") if isinstance(data, dict) else None
    if not isinstance(types, dict):
        report("types: expected a mapping {type: {title, teams: {team: red|yellow|grey}}}")
        raise typer.Exit(1)
    rows = []
    for name, spec in types.items():
        spec = spec or {}
        cells = []
        for team, engagement in (spec.get("teams") or {}).items():
            key = f"ENGAGEMENT_{str(engagement).upper()}"
            if key not in set(it.Engagement.keys()) or key == "ENGAGEMENT_UNSPECIFIED":
                report(f"types.{name}.teams.{team}: {engagement!r} is not red, yellow or grey")
                raise typer.Exit(1)
            cells.append(it.MatrixCell(team_id=str(team), engagement=it.Engagement.Value(key)))
        rows.append(it.MatrixRow(incident_type=str(name), title=spec.get("title", ""), cells=cells))
    return rows


@dataclass(frozen=True)
class MatrixKind:
    """The response matrix: versions are its changes on the log (matrix.version = sequence)."""

    def _revision(self, v: ipb.ResponseMatrixVersion) -> Revision:
        return Revision(
            v.revision,
            str(v.matrix.version),
            v.author,
            _time(v.put_at),
            "",
            matrix_yaml(v.matrix),
            v.current,
        )

    def history(self, opened: grpc.Channel) -> list[Revision]:
        stub = _incidents(opened)
        versions = every_page(
            lambda before: call(
                stub.ListResponseMatrixVersions,
                ipb.ListResponseMatrixVersionsRequest(page_size=500, before_revision=before),
            )
        )
        return [self._revision(v) for v in versions]

    def put(
        self,
        opened: grpc.Channel,
        document: str,
        reason: str,
        expected: int,
        apply_to_open: bool = False,
    ) -> Revision:
        rows = matrix_rows(document)
        current = self.history(opened)
        if expected and current and current[-1].revision != expected:
            report(
                f"ABORTED: the matrix changed since revision {expected}: revision"
                f" {current[-1].revision} by {current[-1].author} is in force; edit that one"
            )
            raise typer.Exit(1)
        call(_incidents(opened).PutResponseMatrix, ipb.PutResponseMatrixRequest(rows=rows))
        return self.history(opened)[-1]

    def what_if(
        self, opened: grpc.Channel, draft: str, since: datetime, until: datetime | None
    ) -> Any:
        return _incident_what_if("matrix_document")(opened, draft, since, until)


KINDS: dict[str, PolicyKindCli] = {
    "sla": DocumentKind(
        stub=ticketing_pb2_grpc.TicketingServiceStub,
        put_rpc="PutSlaPolicy",
        list_rpc="ListSlaPolicyVersions",
        put_request=tpb.PutSlaPolicyRequest,
        list_request=tpb.ListSlaPolicyVersionsRequest,
        run_what_if=_sla_what_if,
    ),
    "risk": DocumentKind(
        stub=_incidents,
        put_rpc="PutRiskPolicy",
        list_rpc="ListRiskPolicyVersions",
        put_request=ipb.PutRiskPolicyRequest,
        list_request=ipb.ListRiskPolicyVersionsRequest,
        run_what_if=_incident_what_if("risk_document"),
    ),
    "matrix": MatrixKind(),
    "integrations": DocumentKind(
        stub=_incidents,
        put_rpc="PutIntegrationPolicy",
        list_rpc="ListIntegrationPolicyVersions",
        put_request=ipb.PutIntegrationPolicyRequest,
        list_request=ipb.ListIntegrationPolicyVersionsRequest,
    ),
    "notice_templates": DocumentKind(
        stub=_incidents,
        put_rpc="PutNoticeTemplates",
        list_rpc="ListNoticeTemplatesVersions",
        put_request=ipb.PutNoticeTemplatesRequest,
        list_request=ipb.ListNoticeTemplatesVersionsRequest,
    ),
    "teams": DocumentKind(
        stub=_quality,
        put_rpc="PutQualityTeams",
        list_rpc="ListQualityTeamsVersions",
        put_request=qpb.PutQualityTeamsRequest,
        list_request=qpb.ListQualityTeamsVersionsRequest,
    ),
}


def _pick(history: Sequence[Revision], number: int | None, kind: str) -> Revision:
    if not history:
        report(f"no {kind} policy has been put yet")
        raise typer.Exit(1)
    if number is None:
        return history[-1]
    found = next((r for r in history if r.revision == number), None)
    if found is None:
        report(f"NOT_FOUND: the {kind} policy has no revision {number}")
        raise typer.Exit(1)
    return found


def edit_in_editor(text: str, suffix: str = ".yaml") -> str:
    """Returns `text` as edited in $VISUAL / $EDITOR (default vi)."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"policy{suffix}"
        path.write_text(text, encoding="utf-8")
        if subprocess.call([*shlex.split(editor), str(path)]) != 0:
            report(f"{editor} exited with an error; nothing was put")
            raise typer.Exit(1)
        return path.read_text(encoding="utf-8")


def print_sla_what_if(response: qpb.WhatIfResponse) -> None:
    """Prints the SLA what-if side by side (in total, per channel and per priority), or that
    the draft changes nothing."""
    if response.changes_nothing:
        console.print(
            f"The draft changes nothing: its {response.tickets} tickets come out exactly as"
            " they did."
        )
        return
    console.print(what_if_table(response))


def what_if_table(response: qpb.WhatIfResponse) -> Table:
    """The SLA what-if's side-by-side table: in total, then per channel and per priority."""
    table = Table(
        "group",
        "tickets",
        "on time (actual)",
        "on time (draft)",
        "breaches (actual)",
        "breaches (draft)",
        "compliance (actual)",
        "compliance (draft)",
        title=f"{response.alternative.policy_version} vs as decided",
    )

    def row(name: str, tickets: int, actual: qpb.SlaOutcome, draft: qpb.SlaOutcome) -> None:
        table.add_row(
            name,
            str(tickets),
            f"{actual.first_responses_on_time}/{actual.first_responses}",
            f"{draft.first_responses_on_time}/{draft.first_responses}",
            str(actual.first_response_breaches + actual.resolution_breaches),
            str(draft.first_response_breaches + draft.resolution_breaches),
            f"{actual.sla_compliance_ratio:.0%}",
            f"{draft.sla_compliance_ratio:.0%}",
        )

    row("all", response.tickets, response.actual, response.alternative)
    for label, groups in (
        ("channel", response.by_channel),
        ("priority", response.by_priority),
        ("team", response.by_team),
    ):
        for group in groups:
            row(f"{label} {group.key}", group.tickets, group.actual, group.alternative)
    return table


def print_what_if(response: ipb.WhatIfIncidentsResponse) -> None:
    """Prints the incident what-if side by side, or that the draft changes nothing."""
    level = {it.INCIDENT_LEVEL_A: "A", it.INCIDENT_LEVEL_B: "B", it.INCIDENT_LEVEL_C: "C"}
    compared = len(response.incidents)
    drills = f"; {response.drills_excluded} drills left out" if response.drills_excluded else ""
    if response.changes_nothing:
        console.print(f"The draft changes nothing: {compared} incidents compared{drills}.")
        return
    console.print(f"{response.incidents_changed} of {compared} incidents would differ{drills}.")
    table = Table("incident", "type", "level", "paged (actual)", "paged (draft)")
    for item in response.incidents:
        if not item.changed:
            continue
        table.add_row(
            item.incident_id + (" (drill)" if item.drill else ""),
            item.type + (" (not in draft)" if item.type_not_in_draft else ""),
            f"{level.get(item.actual_level, '?')} -> {level.get(item.draft_level, '?')}",
            ", ".join(item.actual_paged_teams) or "-",
            ", ".join(item.draft_paged_teams) or "-",
        )
    console.print(table)
    totals = Table("total", "actual", "draft")
    for row in response.levels:
        totals.add_row(f"level {row.key}", str(row.actual), str(row.draft))
    for row in response.teams_paged:
        totals.add_row(f"{row.key} paged", str(row.actual), str(row.draft))
    console.print(totals)


def kind_app(name: str, kind: PolicyKindCli) -> typer.Typer:
    """The commands of one policy kind."""
    sub = typer.Typer(help=f"The {name} policy.", no_args_is_help=True)

    @sub.command("show")
    def show(
        revision: Annotated[
            int | None, typer.Option("--revision", help="A past revision (default: in force).")
        ] = None,
    ) -> None:
        """Print a revision's document (default: the one in force)."""
        with channel() as opened:
            picked = _pick(kind.history(opened), revision, name)
        typer.echo(picked.document, nl=not picked.document.endswith("\n"))

    @sub.command("history")
    def history(as_json: JsonOption = False) -> None:
        """List the revisions with who put them, when and why."""
        with channel() as opened:
            revisions = kind.history(opened)
        if as_json:
            console.print_json(
                data=[
                    {
                        "revision": r.revision,
                        "version": r.version,
                        "author": r.author,
                        "put_at": r.put_at.isoformat() if r.put_at else "",
                        "reason": r.reason,
                        "current": r.current,
                    }
                    for r in revisions
                ]
            )
            return
        table = Table("revision", "version", "author", "put at", "reason", "")
        for r in revisions:
            table.add_row(
                str(r.revision),
                r.version,
                r.author,
                r.put_at.isoformat(timespec="seconds") if r.put_at else "",
                r.reason,
                "in force" if r.current else "",
            )
        console.print(table)

    @sub.command("diff")
    def diff(
        old: Annotated[int | None, typer.Argument(help="Revision (default: previous).")] = None,
        new: Annotated[int | None, typer.Argument(help="Revision (default: in force).")] = None,
    ) -> None:
        """Unified diff between two revisions (default: the previous and the one in force)."""
        with channel() as opened:
            revisions = kind.history(opened)
        after = _pick(revisions, new, name)
        if old is None:
            earlier = [r for r in revisions if r.revision < after.revision]
            if not earlier:
                report(f"revision {after.revision} is the first; nothing to compare")
                raise typer.Exit(1)
            before = earlier[-1]
        else:
            before = _pick(revisions, old, name)
        lines = difflib.unified_diff(
            before.document.splitlines(keepends=True),
            after.document.splitlines(keepends=True),
            fromfile=f"{name} revision {before.revision} ({before.version})",
            tofile=f"{name} revision {after.revision} ({after.version})",
        )
        typer.echo("".join(lines) or "no difference", nl=False)

    @sub.command("edit")
    def edit(
        reason: Annotated[str, typer.Option("--reason", help="Why (kept with it).")] = "",
        document_file: Annotated[
            Path | None,
            typer.Option("--file", help="Put this file instead of opening $EDITOR."),
        ] = None,
        apply_to_open: Annotated[
            bool,
            typer.Option(
                "--apply-to-open", help="Also re-apply it to open work (sla: open tickets)."
            ),
        ] = False,
    ) -> None:
        """Edit the document in force in $EDITOR and put it (refused if it changed meanwhile)."""
        with channel() as opened:
            current = _pick(kind.history(opened), None, name)
            edited = (
                document_file.read_text(encoding="utf-8")
                if document_file
                else edit_in_editor(current.document)
            )
            if edited == current.document:
                console.print("No change; nothing put.")
                return
            put = kind.put(opened, edited, reason, current.revision, apply_to_open)
        if put.revision == current.revision:
            console.print(f"Same data as revision {put.revision}; nothing put.")
            return
        console.print(f"Revision {put.revision} ({put.version}) by {put.author} is in force.")

    @sub.command("what-if")
    def what_if(
        draft: Annotated[Path, typer.Option("--draft", help="The draft document (YAML).")],
        since: Annotated[str, typer.Option("--since", help="ISO 8601 or an age: 30d.")] = "30d",
        until: Annotated[str, typer.Option("--until", help="ISO 8601 or an age.")] = "",
        as_json: JsonOption = False,
    ) -> None:
        """Replay the period's tickets (sla) or incidents (risk, matrix) under the draft and
        compare with what happened."""
        with channel() as opened:
            response = kind.what_if(
                opened,
                draft.read_text(encoding="utf-8"),
                parse_time(since),
                parse_time(until) if until else None,
            )
        if as_json:
            print_message(response)
        elif isinstance(response, qpb.WhatIfResponse):
            print_sla_what_if(response)
        else:
            print_what_if(response)

    return sub


for _name, _kind in KINDS.items():
    policy_app.add_typer(kind_app(_name, _kind), name=_name)
