"""Schedules over real gRPC and NATS: overrides page their member, swaps move shifts, the
queries say who decided it, and bad requests get the right codes (docs/incidents.md
"Schedules")."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from careops_platform.identity import Principal
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY

from incident.main import IncidentService
from tests.receivers import HttpReceiver, MailReceiver
from tests.support import FakeClock, channel_to, on_call

Stub = incident_pb2_grpc.IncidentServiceStub
TS = "technical_support"
SEVERE = t.RiskFactors(
    users_affected=200_000,
    core_system=1.0,
    elapsed_minutes=30,
    average_handling_minutes=30,
    exposure=0.6,
)


def key() -> tuple[tuple[str, str], ...]:
    return (("idempotency-key", uuid.uuid4().hex),)


def ts(value: object) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)  # type: ignore[arg-type]
    return stamp


async def call_as(
    service: IncidentService, principal: Principal, method: str, request: object
) -> object:
    async with channel_to(service, principal) as channel:
        return await getattr(Stub(channel), method)(request, metadata=key())


async def refused(
    service: IncidentService, principal: Principal, method: str, request: object
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call_as(service, principal, method, request)
    return caught.value


def changes(team: str, change: str) -> float:
    """The schedule-change counter of a team and kind (it exists from the start)."""
    value = REGISTRY.get_sample_value(
        "careops_oncall_schedule_changes_total", {"team": team, "change": change}
    )
    assert value is not None
    return value


async def test_an_override_for_tonight_pages_the_override_s_member_not_the_rotation_s(
    incident_stub: Stub,
    incident_service: IncidentService,
    incident_clock: FakeClock,
    receivers: tuple[HttpReceiver, MailReceiver],
) -> None:
    http, _ = receivers
    now = incident_clock.now
    who = await incident_stub.WhoIsOnCall(pb.WhoIsOnCallRequest(team_id=TS))
    assert who.shift.member_id == "ts-alice" and who.shift.decided_by == t.ON_CALL_SOURCE_LAYER
    tonight = now.replace(hour=18, minute=0)
    # ts-bob covers tonight; he adds it himself (on-call staff add overrides for themselves).
    added = await call_as(
        incident_service,
        on_call("ts-bob"),
        "AddOnCallOverride",
        pb.AddOnCallOverrideRequest(
            team_id=TS,
            member_id="ts-bob",
            starts_at=ts(tonight),
            ends_at=ts(tonight + timedelta(hours=12)),
        ),
    )
    assert isinstance(added, pb.AddOnCallOverrideResponse)
    assert added.override.override_id == "ovr-1" and added.override.added_by == "ts-bob"
    changes = REGISTRY.get_sample_value(
        "careops_oncall_schedule_changes_total", {"team": TS, "change": "override"}
    )
    assert changes is not None and changes >= 1
    accepted = REGISTRY.get_sample_value(
        "careops_oncall_schedule_changes_total", {"team": TS, "change": "swap_accepted"}
    )
    assert accepted is not None  # present from the start
    incident_clock.set(tonight + timedelta(hours=3))
    who = await incident_stub.WhoIsOnCall(pb.WhoIsOnCallRequest(team_id=TS))
    assert (who.shift.member_id, who.shift.decided_by, who.shift.ref) == (
        "ts-bob",
        t.ON_CALL_SOURCE_OVERRIDE,
        "ovr-1",
    )
    declared = await incident_stub.DeclareIncident(
        pb.DeclareIncidentRequest(
            type="server_crash",
            title="Core cluster down tonight",
            source=t.INCIDENT_SOURCE_MONITORING,
            factors=SEVERE,
        ),
        metadata=key(),
    )
    incident = declared.incident
    assert incident.level == t.INCIDENT_LEVEL_A
    page = next(p for p in incident.pages if p.team_id == TS)
    assert page.member_id == "ts-bob"
    posts = await asyncio.to_thread(http.wait_for, "/ts-bob", 1)
    bodies = [p.json() for p in posts if p.json()["incident_id"] == incident.incident_id]
    assert bodies and bodies[0]["member_id"] == "ts-bob" and bodies[0]["action"] == "trigger"
    assert not [
        p for p in http.posts("/ts-alice") if p.json()["incident_id"] == incident.incident_id
    ]


async def test_a_swap_accepted_by_its_counterpart_moves_the_shifts(
    incident_stub: Stub, incident_service: IncidentService, incident_clock: FakeClock
) -> None:
    start = incident_clock.now + timedelta(days=2)
    end = start + timedelta(days=1)
    requested = await call_as(
        incident_service,
        on_call("ts-alice"),
        "RequestShiftSwap",
        pb.RequestShiftSwapRequest(
            team_id=TS, counterpart_id="ts-bob", starts_at=ts(start), ends_at=ts(end)
        ),
    )
    assert isinstance(requested, pb.RequestShiftSwapResponse)
    swap = requested.swap
    assert swap.requester_id == "ts-alice" and swap.status == t.SHIFT_SWAP_STATUS_REQUESTED
    assert swap.requested_by == "ts-alice"
    # Nobody but ts-bob accepts it: not the requester, not another member.
    for who in ("ts-alice", "ts-lead"):
        error = await refused(
            incident_service,
            on_call(who),
            "AcceptShiftSwap",
            pb.AcceptShiftSwapRequest(team_id=TS, swap_id=swap.swap_id),
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "incident.oncall.swap.accept" in (error.details() or "")
    # An overlapping request is refused while this one is open.
    error = await refused(
        incident_service,
        on_call("ts-alice"),
        "RequestShiftSwap",
        pb.RequestShiftSwapRequest(
            team_id=TS,
            counterpart_id="ts-lead",
            starts_at=ts(start + timedelta(hours=2)),
            ends_at=ts(end),
        ),
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    accepted = await call_as(
        incident_service,
        on_call("ts-bob"),
        "AcceptShiftSwap",
        pb.AcceptShiftSwapRequest(team_id=TS, swap_id=swap.swap_id),
    )
    assert isinstance(accepted, pb.AcceptShiftSwapResponse)
    assert accepted.swap.status == t.SHIFT_SWAP_STATUS_ACCEPTED
    assert accepted.swap.decided_by == "ts-bob"
    who = await incident_stub.WhoIsOnCall(
        pb.WhoIsOnCallRequest(team_id=TS, at=ts(start + timedelta(hours=1)))
    )
    assert (who.shift.member_id, who.shift.decided_by, who.shift.ref) == (
        "ts-bob",
        t.ON_CALL_SOURCE_SWAP,
        swap.swap_id,
    )
    assert who.shift.starts_at.ToDatetime().replace(tzinfo=start.tzinfo) == start
    shifts = await incident_stub.ListMemberShifts(
        pb.ListMemberShiftsRequest(
            team_id=TS,
            member_id="ts-bob",
            start=ts(incident_clock.now),
            end=ts(incident_clock.now + timedelta(days=7)),
        )
    )
    assert [(s.decided_by, s.ref) for s in shifts.shifts] == [
        (t.ON_CALL_SOURCE_OVERRIDE, "ovr-1"),
        (t.ON_CALL_SOURCE_SWAP, swap.swap_id),
    ]
    alice = await incident_stub.ListMemberShifts(
        pb.ListMemberShiftsRequest(
            team_id=TS,
            member_id="ts-alice",
            start=ts(start),
            end=ts(end),
        )
    )
    assert list(alice.shifts) == []  # the shift moved
    # Done is done: a second answer, or a cancel, is refused.
    error = await refused(
        incident_service,
        on_call("ts-bob"),
        "DeclineShiftSwap",
        pb.DeclineShiftSwapRequest(team_id=TS, swap_id=swap.swap_id),
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    team = await incident_stub.GetTeam(pb.GetTeamRequest(team_id=TS))
    assert [(s.swap_id, s.status) for s in team.team.swaps] == [
        (swap.swap_id, t.SHIFT_SWAP_STATUS_ACCEPTED)
    ]


async def test_a_swap_is_declined_or_cancelled_only_by_its_two_members(
    incident_service: IncidentService, incident_clock: FakeClock
) -> None:
    start = incident_clock.now + timedelta(days=10)
    swaps = []
    for offset in (0, 1):
        reply = await call_as(
            incident_service,
            on_call("ts-alice"),
            "RequestShiftSwap",
            pb.RequestShiftSwapRequest(
                team_id=TS,
                counterpart_id="ts-lead",
                starts_at=ts(start + timedelta(days=offset)),
                ends_at=ts(start + timedelta(days=offset, hours=8)),
            ),
        )
        assert isinstance(reply, pb.RequestShiftSwapResponse)
        swaps.append(reply.swap.swap_id)
    cancel = pb.CancelShiftSwapRequest(team_id=TS, swap_id=swaps[0])
    error = await refused(incident_service, on_call("ts-lead"), "CancelShiftSwap", cancel)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    cancelled = await call_as(incident_service, on_call("ts-alice"), "CancelShiftSwap", cancel)
    assert isinstance(cancelled, pb.CancelShiftSwapResponse)
    assert cancelled.swap.status == t.SHIFT_SWAP_STATUS_CANCELLED
    decline = pb.DeclineShiftSwapRequest(team_id=TS, swap_id=swaps[1])
    error = await refused(incident_service, on_call("ts-alice"), "DeclineShiftSwap", decline)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    declined = await call_as(incident_service, on_call("ts-lead"), "DeclineShiftSwap", decline)
    assert isinstance(declined, pb.DeclineShiftSwapResponse)
    assert declined.swap.status == t.SHIFT_SWAP_STATUS_DECLINED
    assert declined.swap.decided_by == "ts-lead"


async def test_bad_schedule_requests_get_the_right_codes(
    incident_service: IncidentService, incident_clock: FakeClock
) -> None:
    now = incident_clock.now
    later = now + timedelta(days=30)
    bob = on_call("ts-bob")
    cases: list[tuple[Principal, str, object, grpc.StatusCode]] = [
        # unknown member (the caller is a supervisor-like admin: the data rule passes)
        (
            Principal("boss", frozenset({"supervisor"})),
            "AddOnCallOverride",
            pb.AddOnCallOverrideRequest(
                team_id=TS,
                member_id="nobody",
                starts_at=ts(later),
                ends_at=ts(later + timedelta(hours=1)),
            ),
            grpc.StatusCode.NOT_FOUND,
        ),
        # end before start
        (
            bob,
            "AddOnCallOverride",
            pb.AddOnCallOverrideRequest(
                team_id=TS,
                member_id="ts-bob",
                starts_at=ts(later),
                ends_at=ts(later - timedelta(hours=1)),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        # a time left out
        (
            bob,
            "AddOnCallOverride",
            pb.AddOnCallOverrideRequest(team_id=TS, member_id="ts-bob", starts_at=ts(later)),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        # an override for someone else, by a member who does not lead the team
        (
            bob,
            "AddOnCallOverride",
            pb.AddOnCallOverrideRequest(
                team_id=TS,
                member_id="ts-alice",
                starts_at=ts(later),
                ends_at=ts(later + timedelta(hours=1)),
            ),
            grpc.StatusCode.PERMISSION_DENIED,
        ),
        # an unknown team
        (
            bob,
            "WhoIsOnCall",
            pb.WhoIsOnCallRequest(team_id="no_such_team"),
            grpc.StatusCode.NOT_FOUND,
        ),
        # a swap of a shift that is not the requester's (ts-alice holds the rotation)
        (
            bob,
            "RequestShiftSwap",
            pb.RequestShiftSwapRequest(
                team_id=TS,
                counterpart_id="ts-lead",
                starts_at=ts(later),
                ends_at=ts(later + timedelta(hours=4)),
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        # a swap asked for someone else
        (
            bob,
            "RequestShiftSwap",
            pb.RequestShiftSwapRequest(
                team_id=TS,
                requester_id="ts-alice",
                counterpart_id="ts-lead",
                starts_at=ts(later),
                ends_at=ts(later + timedelta(hours=4)),
            ),
            grpc.StatusCode.PERMISSION_DENIED,
        ),
        # an unknown counterpart
        (
            on_call("ts-alice"),
            "RequestShiftSwap",
            pb.RequestShiftSwapRequest(
                team_id=TS,
                counterpart_id="nobody",
                starts_at=ts(later),
                ends_at=ts(later + timedelta(hours=4)),
            ),
            grpc.StatusCode.NOT_FOUND,
        ),
        # an unknown swap
        (
            bob,
            "AcceptShiftSwap",
            pb.AcceptShiftSwapRequest(team_id=TS, swap_id="swap-999"),
            grpc.StatusCode.NOT_FOUND,
        ),
        # a time no schedule computes with
        (
            bob,
            "WhoIsOnCall",
            pb.WhoIsOnCallRequest(team_id=TS, at=ts(datetime(9999, 12, 31, tzinfo=UTC))),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        # a swap of a shift a thousand years long
        (
            on_call("ts-alice"),
            "RequestShiftSwap",
            pb.RequestShiftSwapRequest(
                team_id=TS,
                counterpart_id="ts-bob",
                starts_at=ts(now),
                ends_at=ts(datetime(3000, 1, 1, tzinfo=UTC)),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        # shifts of a range too long
        (
            bob,
            "ListMemberShifts",
            pb.ListMemberShiftsRequest(
                team_id=TS, member_id="ts-bob", start=ts(now), end=ts(now + timedelta(days=400))
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]
    for principal, method, request, code in cases:
        error = await refused(incident_service, principal, method, request)
        assert error.code() == code, (method, request, error.details())


async def test_a_follow_the_sun_team_put_over_grpc_answers_by_layer(
    incident_stub: Stub, incident_clock: FakeClock
) -> None:
    members = [t.Member(member_id=m) for m in ("fs-base", "fs-asia", "fs-americas")]
    team = t.Team(
        team_id="follow_the_sun",
        members=members,
        layers=[
            t.ScheduleLayer(
                name="base",
                member_ids=["fs-base"],
                rotation_type=t.ROTATION_TYPE_WEEKLY,
                handoff_time="09:00",
                time_zone="UTC",
                start_date="2026-01-05",
            ),
            t.ScheduleLayer(
                name="asia",
                member_ids=["fs-asia"],
                rotation_type=t.ROTATION_TYPE_DAILY,
                handoff_time="09:00",
                time_zone="Asia/Shanghai",
                start_date="2026-01-05",
                restrictions=[t.LayerRestriction(start_time="09:00", end_time="21:00")],
            ),
            t.ScheduleLayer(
                name="americas",
                member_ids=["fs-americas"],
                rotation_type=t.ROTATION_TYPE_CUSTOM,
                shift_hours=12,
                handoff_time="09:00",
                time_zone="America/New_York",
                start_date="2026-01-05",
                restrictions=[
                    t.LayerRestriction(
                        weekdays=[1, 2, 3, 4, 5], start_time="09:00", end_time="21:00"
                    )
                ],
            ),
        ],
    )
    await incident_stub.PutTeam(pb.PutTeamRequest(team=team), metadata=key())
    got = (await incident_stub.GetTeam(pb.GetTeamRequest(team_id="follow_the_sun"))).team
    assert [layer.name for layer in got.layers] == ["base", "asia", "americas"]
    assert got.layers[2].restrictions[0].weekdays == [1, 2, 3, 4, 5]
    tuesday = datetime(2027, 1, 5, tzinfo=UTC)
    expected = {
        3: ("fs-asia", 1, "asia"),  # 11:00 Shanghai
        15: ("fs-americas", 2, "americas"),  # 10:00 New York
        13: ("fs-base", 0, "base"),  # between the two days
    }
    for hour, (member, layer, name) in expected.items():
        who = await incident_stub.WhoIsOnCall(
            pb.WhoIsOnCallRequest(team_id="follow_the_sun", at=ts(tuesday.replace(hour=hour)))
        )
        shift = who.shift
        assert (shift.member_id, shift.decided_by, shift.layer, shift.ref) == (
            member,
            t.ON_CALL_SOURCE_LAYER,
            layer,
            name,
        )
    bad = t.Team()
    bad.CopyFrom(team)
    bad.layers[1].rotation_type = t.ROTATION_TYPE_UNSPECIFIED
    bad.layers[2].restrictions[0].weekdays.append(9)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await incident_stub.PutTeam(pb.PutTeamRequest(team=bad), metadata=key())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "team.layers[1].rotation_type" in (caught.value.details() or "")


async def test_a_removed_override_no_longer_decides_who_is_on_call(
    incident_stub: Stub, incident_service: IncidentService, incident_clock: FakeClock
) -> None:
    start = incident_clock.now + timedelta(days=5)
    window = pb.AddOnCallOverrideRequest(
        team_id=TS, member_id="ts-bob", starts_at=ts(start), ends_at=ts(start + timedelta(hours=6))
    )
    added = await call_as(incident_service, on_call("ts-bob"), "AddOnCallOverride", window)
    assert isinstance(added, pb.AddOnCallOverrideResponse)
    override_id = added.override.override_id
    at = ts(start + timedelta(hours=1))
    who = await incident_stub.WhoIsOnCall(pb.WhoIsOnCallRequest(team_id=TS, at=at))
    assert (who.shift.member_id, who.shift.ref) == ("ts-bob", override_id)

    remove = pb.RemoveOnCallOverrideRequest(team_id=TS, override_id=override_id)
    removals_before = changes(TS, "override_removed")
    cases: list[tuple[Principal, pb.RemoveOnCallOverrideRequest, grpc.StatusCode]] = [
        # ts-alice neither is the override's member nor leads the team
        (on_call("ts-alice"), remove, grpc.StatusCode.PERMISSION_DENIED),
        (
            on_call("ts-bob"),
            pb.RemoveOnCallOverrideRequest(team_id=TS),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            on_call("ts-bob"),
            pb.RemoveOnCallOverrideRequest(team_id=TS, override_id="ovr-999"),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            on_call("ts-bob"),
            pb.RemoveOnCallOverrideRequest(team_id="no_such_team", override_id=override_id),
            grpc.StatusCode.NOT_FOUND,
        ),
    ]
    for principal, request, code in cases:
        error = await refused(incident_service, principal, "RemoveOnCallOverride", request)
        assert error.code() == code, (request, error.details())
    assert "incident.oncall.override.remove" in (
        (
            await refused(incident_service, on_call("ts-alice"), "RemoveOnCallOverride", remove)
        ).details()
        or ""
    )

    # The team's lead removes it (the rule of AddOnCallOverride); a retry of the same call
    # answers the same, from the log.
    async with channel_to(incident_service, on_call("ts-lead")) as channel:
        retried = key()
        removed = await Stub(channel).RemoveOnCallOverride(remove, metadata=retried)
        again = await Stub(channel).RemoveOnCallOverride(remove, metadata=retried)
    assert removed.override == added.override and removed.sequence > added.sequence
    assert again == removed
    who = await incident_stub.WhoIsOnCall(pb.WhoIsOnCallRequest(team_id=TS, at=at))
    assert who.shift.member_id != "ts-bob" and who.shift.decided_by == t.ON_CALL_SOURCE_LAYER
    shifts = await incident_stub.ListMemberShifts(
        pb.ListMemberShiftsRequest(
            team_id=TS, member_id="ts-bob", start=ts(start), end=ts(start + timedelta(hours=6))
        )
    )
    assert not [s for s in shifts.shifts if s.ref == override_id]
    team = (await incident_stub.GetTeam(pb.GetTeamRequest(team_id=TS))).team
    assert override_id not in [o.override_id for o in team.overrides]
    error = await refused(incident_service, on_call("ts-lead"), "RemoveOnCallOverride", remove)
    assert error.code() == grpc.StatusCode.NOT_FOUND  # removed already
    assert changes(TS, "override_removed") == removals_before + 1


async def test_overrides_and_swaps_long_ended_are_pruned_with_the_next_schedule_command(
    incident_stub: Stub, incident_service: IncidentService, incident_clock: FakeClock
) -> None:
    # Last in the module: it moves the module's clock past the retention.
    before = (await incident_stub.GetTeam(pb.GetTeamRequest(team_id=TS))).team
    ended = [o.override_id for o in before.overrides if o.override_id]
    assert ended and before.swaps  # the earlier tests' overrides and swaps
    pruned_before = changes(TS, "pruned")  # present from the start
    latest = max(
        [o.ends_at.ToDatetime(UTC) for o in before.overrides]
        + [s.return_ends_at.ToDatetime(UTC) for s in before.swaps if s.HasField("return_ends_at")]
        + [s.ends_at.ToDatetime(UTC) for s in before.swaps]
    )
    incident_clock.set(latest + timedelta(days=31))
    # Nothing is dropped by a read: the state changes only with a command's events.
    unchanged = (await incident_stub.GetTeam(pb.GetTeamRequest(team_id=TS))).team
    assert len(unchanged.overrides) == len(before.overrides)
    now = incident_clock.now
    added = await call_as(
        incident_service,
        on_call("ts-bob"),
        "AddOnCallOverride",
        pb.AddOnCallOverrideRequest(
            team_id=TS, member_id="ts-bob", starts_at=ts(now), ends_at=ts(now + timedelta(hours=1))
        ),
    )
    assert isinstance(added, pb.AddOnCallOverrideResponse)
    after = (await incident_stub.GetTeam(pb.GetTeamRequest(team_id=TS))).team
    assert [o.override_id for o in after.overrides if o.override_id] == [added.override.override_id]
    assert not after.swaps and after.overrides_added == before.overrides_added + 1
    # The id counts on past the pruned ones.
    assert added.override.override_id == f"ovr-{before.overrides_added + 1}"
    assert changes(TS, "pruned") == pruned_before + 1
    # A redefinition (PutTeam, as every start puts the file's teams) prunes too.
    incident_clock.set(now + timedelta(days=32))
    await incident_stub.PutTeam(pb.PutTeamRequest(team=after), metadata=key())
    redefined = (await incident_stub.GetTeam(pb.GetTeamRequest(team_id=TS))).team
    assert not [o for o in redefined.overrides if o.override_id]
    assert changes(TS, "pruned") == pruned_before + 2
