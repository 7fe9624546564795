"""`careops policy <kind> show|edit|put|history|diff` (docs/policies.md): one command group for
every policy kind kept as versioned data, through the gateway like every command. KINDS says
which RPCs serve a kind; `careops policy sla what-if --draft FILE --since 1d` replays the
period's tickets under a draft, side by side with what happened."""

from __future__ import annotations

import difflib
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import careops_sla
import grpc
import typer
from careops.common.v1 import policy_pb2
from careops.quality.v1 import quality_pb2 as qpb
from careops.quality.v1 import quality_pb2_grpc
from careops.ticketing.v1 import ticketing_pb2 as tpb
from careops.ticketing.v1 import ticketing_pb2_grpc
from google.protobuf.message import Message
from rich.table import Table
from rich.text import Text

from careops_cli.client import call, channel, console, print_message

policy_app = typer.Typer(
    help="Policies as versioned data: show, edit, history, diff (docs/policies.md).",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the response as JSON.")]


@dataclass(frozen=True)
class PolicyRpcs:
    """The RPCs of one policy kind: its service's stub and the Put/Get/List methods and
    request messages (careops.common.v1 policy.proto's fields)."""

    stub: Callable[[grpc.Channel], Any]
    put: str
    put_request: type[Message]
    get: str
    get_request: type[Message]
    list: str
    list_request: type[Message]


# kind -> its RPCs. A context that keeps a policy kind adds one line here.
KINDS: dict[str, PolicyRpcs] = {
    "sla": PolicyRpcs(
        ticketing_pb2_grpc.TicketingServiceStub,
        "PutSlaPolicy",
        tpb.PutSlaPolicyRequest,
        "GetSlaPolicy",
        tpb.GetSlaPolicyRequest,
        "ListSlaPolicyVersions",
        tpb.ListSlaPolicyVersionsRequest,
    ),
}


def _rpc(opened: grpc.Channel, kind: str, name: str) -> Any:
    rpcs = KINDS[kind]
    return getattr(rpcs.stub(opened), getattr(rpcs, name))


def get_version(
    opened: grpc.Channel, kind: str, revision: int = 0, version: str = ""
) -> policy_pb2.PolicyVersion:
    """Returns one revision (by number or label; neither: the one in force)."""
    request = KINDS[kind].get_request(revision=revision, version=version)  # type: ignore[call-arg]
    return call(_rpc(opened, kind, "get"), request).policy  # type: ignore[no-any-return]


def all_versions(opened: grpc.Channel, kind: str) -> list[policy_pb2.PolicyVersion]:
    """Returns every revision, newest first (all pages)."""
    versions: list[policy_pb2.PolicyVersion] = []
    before = 0
    while True:
        request = KINDS[kind].list_request(page_size=500, before_revision=before)  # type: ignore[call-arg]
        page = call(_rpc(opened, kind, "list"), request)
        versions.extend(page.versions)
        before = page.next_before_revision
        if not before:
            return versions


def put_document(
    opened: grpc.Channel,
    kind: str,
    document: str,
    *,
    reason: str,
    apply_to_open: bool,
    expected_revision: int,
    key: str = "",
) -> Any:
    """Puts a document; returns the response (its `policy` is the revision in force)."""
    request = KINDS[kind].put_request(  # type: ignore[call-arg]
        document=document,
        reason=reason,
        apply_to_open=apply_to_open,
        expected_revision=expected_revision,
    )
    return call(_rpc(opened, kind, "put"), request, key)


def describe(version: policy_pb2.PolicyVersion) -> str:
    """One line: revision, label, author, time, reason."""
    at = version.put_at.ToDatetime(UTC).isoformat(timespec="seconds")
    reason = f" — {version.reason}" if version.reason else ""
    applied = " (applied to open work)" if version.apply_to_open else ""
    who = f"by {version.author} at {at}"
    return f"revision {version.revision} {version.version} {who}{applied}{reason}"


def unified_diff(old: policy_pb2.PolicyVersion, new: policy_pb2.PolicyVersion) -> str:
    """The unified diff between two revisions' documents."""
    lines = difflib.unified_diff(
        old.document.splitlines(keepends=True),
        new.document.splitlines(keepends=True),
        fromfile=f"revision {old.revision} ({old.version})",
        tofile=f"revision {new.revision} ({new.version})",
    )
    return "".join(lines)


def edit_text(text: str, suffix: str = ".yaml") -> str:
    """Opens `text` in $VISUAL / $EDITOR (default vi) and returns what was saved."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False, encoding="utf-8") as f:
        f.write(text)
        path = f.name
    try:
        subprocess.run([*shlex.split(editor), path], check=True)
        return Path(path).read_text(encoding="utf-8")
    finally:
        os.unlink(path)


def _report_put(response: Any, as_json: bool) -> None:
    if as_json:
        print_message(response)
    elif response.unchanged:
        console.print(f"unchanged: revision {response.policy.revision} is in force")
    else:
        console.print(describe(response.policy))


def kind_app(kind: str) -> typer.Typer:
    """The commands of one policy kind."""
    app = typer.Typer(help=f"The {kind} policy.", no_args_is_help=True)

    @app.command("show")
    def show(
        revision: Annotated[int, typer.Option(help="A revision (default: in force).")] = 0,
        version: Annotated[str, typer.Option(help="A version label.")] = "",
        as_json: JsonOption = False,
    ) -> None:
        """Print a revision's document (default: the one in force)."""
        with channel() as opened:
            found = get_version(opened, kind, revision, version)
        if as_json:
            print_message(found)
            return
        console.print(f"# {describe(found)}", markup=False, highlight=False)
        console.print(Text(found.document))

    @app.command("edit")
    def edit(
        reason: Annotated[str, typer.Option(help="Why (recorded with the revision).")] = "",
        apply_to_open: Annotated[
            bool, typer.Option("--apply-to-open", help="Also apply it to work in progress.")
        ] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Edit the document in force in $EDITOR and put it (refused if another change
        landed meanwhile; bump its `version:`)."""
        with channel() as opened:
            current = get_version(opened, kind)
            edited = edit_text(current.document)
            if edited == current.document:
                console.print("no change")
                return
            response = put_document(
                opened,
                kind,
                edited,
                reason=reason,
                apply_to_open=apply_to_open,
                expected_revision=current.revision,
            )
        _report_put(response, as_json)

    @app.command("put")
    def put(
        document: Annotated[Path, typer.Argument(help="The YAML document to put.")],
        reason: Annotated[str, typer.Option(help="Why (recorded with the revision).")] = "",
        apply_to_open: Annotated[
            bool, typer.Option("--apply-to-open", help="Also apply it to work in progress.")
        ] = False,
        expected_revision: Annotated[
            int, typer.Option(help="Refuse if the revision in force is not this one.")
        ] = 0,
        as_json: JsonOption = False,
        key: Annotated[str, typer.Option("--idempotency-key", help="Safe to retry.")] = "",
    ) -> None:
        """Put a document from a file (non-interactive `edit`)."""
        text = document.read_text(encoding="utf-8")
        with channel() as opened:
            response = put_document(
                opened,
                kind,
                text,
                reason=reason,
                apply_to_open=apply_to_open,
                expected_revision=expected_revision,
                key=key,
            )
        _report_put(response, as_json)

    @app.command("history")
    def history(as_json: JsonOption = False) -> None:
        """List the revisions, newest first: who changed what, when and why."""
        with channel() as opened:
            versions = all_versions(opened, kind)
        if as_json:
            for version in versions:
                print_message(version)
            return
        table = Table("revision", "version", "author", "put at", "apply to open", "reason")
        for v in versions:
            table.add_row(
                f"{v.revision}{' *' if v.current else ''}",
                Text(v.version),
                Text(v.author),
                v.put_at.ToDatetime(UTC).isoformat(timespec="seconds"),
                "yes" if v.apply_to_open else "",
                Text(v.reason),
            )
        console.print(table)

    @app.command("diff")
    def diff(
        old: Annotated[int, typer.Argument(help="From revision (default: the previous).")] = 0,
        new: Annotated[int, typer.Argument(help="To revision (default: in force).")] = 0,
    ) -> None:
        """Unified diff between two revisions (default: the previous one and the one in
        force)."""
        with channel() as opened:
            to = get_version(opened, kind, new)
            if not old and to.revision <= 1:
                console.print(f"revision {to.revision} is the first: nothing to compare")
                return
            since = get_version(opened, kind, old or to.revision - 1)
        console.print(Text(unified_diff(since, to) or "no difference\n"), end="")

    if kind == "sla":
        app.command("what-if")(what_if)
    return app


def what_if(
    draft: Annotated[Path, typer.Option(help="The draft SLA policy (YAML).")],
    since: Annotated[str, typer.Option(help="The period: tickets opened since (1d, 30d).")] = "1d",
    as_json: JsonOption = False,
) -> None:
    """Replay the period's tickets under a draft, side by side with what happened (each
    ticket under the version it was decided under), in total, per channel and per priority."""
    try:
        span = careops_sla.parse_duration(since, "--since")
    except careops_sla.PolicyError as exc:
        raise typer.BadParameter(str(exc)) from None
    period = qpb.Period()
    period.start.FromDatetime(datetime.now(UTC) - span)
    request = qpb.WhatIfRequest(period=period, policy_yaml=draft.read_text(encoding="utf-8"))
    with channel() as opened:
        response = call(quality_pb2_grpc.QualityServiceStub(opened).WhatIf, request)
    if as_json:
        print_message(response)
        return
    if response.changes_nothing:
        console.print(
            f"the draft changes nothing: its {response.tickets} tickets since {since} come out"
            " exactly as they did"
        )
        return
    console.print(what_if_table(response, since))


def what_if_table(response: qpb.WhatIfResponse, since: str) -> Table:
    """The side-by-side table: what happened vs the draft, in total and per group."""
    table = Table(
        "group",
        "tickets",
        "on time (actual)",
        "on time (draft)",
        "breaches (actual)",
        "breaches (draft)",
        "compliance (actual)",
        "compliance (draft)",
        title=f"what-if since {since}: {response.alternative.policy_version} vs as decided",
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
    for label, groups in (("channel", response.by_channel), ("priority", response.by_priority)):
        for group in groups:
            row(f"{label} {group.key}", group.tickets, group.actual, group.alternative)
    return table


for _kind in KINDS:
    policy_app.add_typer(kind_app(_kind), name=_kind)
