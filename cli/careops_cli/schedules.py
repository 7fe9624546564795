"""`careops oncall who|shifts|override|swap …`: on-call schedules (docs/incidents.md
"Schedules"): who is on call, a member's shifts, one-off overrides and shift swaps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from google.protobuf.timestamp_pb2 import Timestamp
from rich.table import Table

from careops_cli.client import call, channel, console, print_message

swap_app = typer.Typer(help="Shift swaps between two members.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the response as JSON.")]
TeamOption = Annotated[str, typer.Option("--team", help="The team.")]


def _when(value: str, option: str) -> Timestamp:
    """An ISO time (UTC when it names no offset) as a Timestamp."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO time", param_hint=option) from None
    stamp = Timestamp()
    stamp.FromDatetime(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    return stamp


def _text(stamp: Timestamp) -> str:
    return stamp.ToDatetime(tzinfo=UTC).isoformat(timespec="minutes")


def _source(number: t.OnCallSource.ValueType) -> str:
    return str(t.OnCallSource.Name(number)).removeprefix("ON_CALL_SOURCE_").lower()


def _status(number: t.ShiftSwapStatus.ValueType) -> str:
    return str(t.ShiftSwapStatus.Name(number)).removeprefix("SHIFT_SWAP_STATUS_").lower()


def _stub(opened: object) -> incident_pb2_grpc.IncidentServiceStub:
    return incident_pb2_grpc.IncidentServiceStub(opened)  # type: ignore[arg-type]


def _show_swap(swap: t.ShiftSwap, as_json: bool) -> None:
    if as_json:
        print_message(swap)
        return
    back = (
        f", {swap.counterpart_id}'s {_text(swap.return_starts_at)}..{_text(swap.return_ends_at)}"
        f" back to {swap.requester_id}"
        if swap.HasField("return_starts_at")
        else ""
    )
    console.print(
        f"[bold]{swap.swap_id}[/] {_status(swap.status)}: {swap.requester_id}'s "
        f"{_text(swap.starts_at)}..{_text(swap.ends_at)} to {swap.counterpart_id}{back}"
        f"{f' (by {swap.decided_by})' if swap.decided_by else ''}"
    )


def who(
    team: TeamOption,
    at: Annotated[str, typer.Option(help="When (ISO time; default now).")] = "",
    as_json: JsonOption = False,
) -> None:
    """Who is on call for the team, and which layer, override or swap decided it."""
    request = pb.WhoIsOnCallRequest(team_id=team)
    if at:
        request.at.CopyFrom(_when(at, "--at"))
    with channel() as opened:
        response = call(_stub(opened).WhoIsOnCall, request)
    if as_json:
        print_message(response)
        return
    shift = response.shift
    if not shift.member_id:
        console.print(f"nobody is on call for {team} at {_text(response.at)}")
        return
    decided = _source(shift.decided_by)
    detail = f"layer {shift.layer} {shift.ref}".strip() if decided == "layer" else shift.ref
    console.print(
        f"[bold]{shift.member_id}[/] is on call for {team} at {_text(response.at)} "
        f"({decided} {detail}; {_text(shift.starts_at)}..{_text(shift.ends_at)})"
    )


def shifts(
    team: TeamOption,
    member: Annotated[str, typer.Option(help="The member.")],
    start: Annotated[str, typer.Option(help="From (ISO time; default now).")] = "",
    end: Annotated[str, typer.Option(help="Until (ISO time; default start + 28 days).")] = "",
    as_json: JsonOption = False,
) -> None:
    """A member's shifts in a range (the iCal feed serves the same)."""
    request = pb.ListMemberShiftsRequest(team_id=team, member_id=member)
    if start:
        request.start.CopyFrom(_when(start, "--start"))
    if end:
        request.end.CopyFrom(_when(end, "--end"))
    with channel() as opened:
        response = call(_stub(opened).ListMemberShifts, request)
    if as_json:
        print_message(response)
        return
    table = Table("from", "until", "decided by", "ref")
    for shift in response.shifts:
        ref = shift.ref or (f"layer {shift.layer}" if shift.layer >= 0 else "")
        table.add_row(_text(shift.starts_at), _text(shift.ends_at), _source(shift.decided_by), ref)
    console.print(table)


def override(
    team: TeamOption,
    member: Annotated[str, typer.Option(help="Who is on call instead.")],
    start: Annotated[str, typer.Option(help="From (ISO time).")],
    end: Annotated[str, typer.Option(help="Until (ISO time).")],
    as_json: JsonOption = False,
) -> None:
    """Put a member on call for the team in [start, end), over the schedule."""
    request = pb.AddOnCallOverrideRequest(
        team_id=team,
        member_id=member,
        starts_at=_when(start, "--start"),
        ends_at=_when(end, "--end"),
    )
    with channel() as opened:
        response = call(_stub(opened).AddOnCallOverride, request)
    if as_json:
        print_message(response)
        return
    added = response.override
    console.print(
        f"[bold]{added.override_id}[/]: {added.member_id} on call for {team} "
        f"{_text(added.starts_at)}..{_text(added.ends_at)} (added by {added.added_by})"
    )


def remove_override(
    team: TeamOption,
    override_id: Annotated[str, typer.Option("--id", help="The override (ovr-<n>).")],
    as_json: JsonOption = False,
) -> None:
    """Remove a runtime override: the schedule decides again."""
    request = pb.RemoveOnCallOverrideRequest(team_id=team, override_id=override_id)
    with channel() as opened:
        response = call(_stub(opened).RemoveOnCallOverride, request)
    if as_json:
        print_message(response)
        return
    removed = response.override
    console.print(
        f"[bold]{removed.override_id}[/] removed: {removed.member_id} no longer on call for "
        f"{team} {_text(removed.starts_at)}..{_text(removed.ends_at)}"
    )


@swap_app.command("request")
def swap_request(
    team: TeamOption,
    to: Annotated[str, typer.Option("--with", help="The member asked to take the shift.")],
    start: Annotated[str, typer.Option(help="Your shift from (ISO time).")],
    end: Annotated[str, typer.Option(help="Your shift until (ISO time).")],
    back_start: Annotated[str, typer.Option(help="Their shift you take, from.")] = "",
    back_end: Annotated[str, typer.Option(help="Their shift you take, until.")] = "",
    requester: Annotated[str, typer.Option(help="For someone else (supervisors).")] = "",
    as_json: JsonOption = False,
) -> None:
    """Ask another member to take one of your shifts (and optionally give one back)."""
    request = pb.RequestShiftSwapRequest(
        team_id=team,
        requester_id=requester,
        counterpart_id=to,
        starts_at=_when(start, "--start"),
        ends_at=_when(end, "--end"),
    )
    if back_start:
        request.return_starts_at.CopyFrom(_when(back_start, "--back-start"))
    if back_end:
        request.return_ends_at.CopyFrom(_when(back_end, "--back-end"))
    with channel() as opened:
        response = call(_stub(opened).RequestShiftSwap, request)
    _show_swap(response.swap, as_json)


def _decide(method: str, team: str, swap_id: str, as_json: bool) -> None:
    request = getattr(pb, f"{method}Request")(team_id=team, swap_id=swap_id)
    with channel() as opened:
        response = call(getattr(_stub(opened), method), request)
    _show_swap(response.swap, as_json)


@swap_app.command("accept")
def swap_accept(swap_id: str, team: TeamOption, as_json: JsonOption = False) -> None:
    """Accept a swap asked of you: the shifts move."""
    _decide("AcceptShiftSwap", team, swap_id, as_json)


@swap_app.command("decline")
def swap_decline(swap_id: str, team: TeamOption, as_json: JsonOption = False) -> None:
    """Decline a swap asked of you."""
    _decide("DeclineShiftSwap", team, swap_id, as_json)


@swap_app.command("cancel")
def swap_cancel(swap_id: str, team: TeamOption, as_json: JsonOption = False) -> None:
    """Withdraw a swap you asked for."""
    _decide("CancelShiftSwap", team, swap_id, as_json)


def register(oncall_app: typer.Typer) -> None:
    """Adds who, shifts, override, remove-override and swap to `careops oncall`."""
    oncall_app.command("who")(who)
    oncall_app.command("shifts")(shifts)
    oncall_app.command("override")(override)
    oncall_app.command("remove-override")(remove_override)
    oncall_app.add_typer(swap_app, name="swap")
