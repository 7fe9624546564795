"""The team and response-matrix aggregates: define a team, change the matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from incident.domain import schedules
from incident.domain.errors import IllegalTransition, NotFound, require
from incident.domain.events import (
    OverrideAdded,
    OverrideRemoved,
    ResponseMatrixChanged,
    SchedulePruned,
    ShiftSwapAccepted,
    ShiftSwapCancelled,
    ShiftSwapDeclined,
    ShiftSwapRequested,
    TeamDefined,
    TeamEvent,
)
from incident.domain.matrix import Matrix, MatrixRow, validate_matrix
from incident.domain.oncall import Team, validate_team
from incident.domain.schedules import Override, ShiftSwap, SwapStatus

# Who may accept / decline / cancel a swap that is not theirs, and add overrides for anyone.
SCHEDULE_ANY = frozenset({"supervisor", "admin"})
_DECIDED = {
    ShiftSwapAccepted: SwapStatus.ACCEPTED,
    ShiftSwapDeclined: SwapStatus.DECLINED,
    ShiftSwapCancelled: SwapStatus.CANCELLED,
}


def evolve_team(state: Team | None, event: TeamEvent, at: datetime) -> Team | None:
    """Returns the team after the event: a (re)definition keeps what was added at runtime."""
    if isinstance(event, TeamDefined):
        if state is None:
            return event.team
        runtime = tuple(o for o in state.overrides if o.override_id)
        return replace(
            event.team,
            overrides=event.team.overrides + runtime,
            swaps=state.swaps,
            overrides_added=state.overrides_added,
            swaps_requested=state.swaps_requested,
        )
    if state is None:
        return None
    if isinstance(event, OverrideAdded):
        return replace(
            state,
            overrides=(*state.overrides, event.override),
            overrides_added=state.overrides_added + 1,
        )
    if isinstance(event, OverrideRemoved):
        return _without(state, (event.override.override_id,), ())
    if isinstance(event, SchedulePruned):
        return _without(state, event.override_ids, event.swap_ids)
    if isinstance(event, ShiftSwapRequested):
        return replace(
            state, swaps=(*state.swaps, event.swap), swaps_requested=state.swaps_requested + 1
        )
    status = _DECIDED[type(event)]
    swaps = tuple(
        replace(swap, status=status, decided_by=event.by) if swap.swap_id == event.swap_id else swap
        for swap in state.swaps
    )
    return replace(state, swaps=swaps)


def _without(state: Team, override_ids: Sequence[str], swap_ids: Sequence[str]) -> Team:
    """Returns the team without those runtime overrides and swaps."""
    overrides = tuple(
        o for o in state.overrides if not o.override_id or o.override_id not in override_ids
    )
    swaps = tuple(s for s in state.swaps if s.swap_id not in swap_ids)
    return replace(state, overrides=overrides, swaps=swaps)


def _window(start: datetime | None, end: datetime | None, where: str) -> list[tuple[str, str]]:
    if start is None:
        return [(f"{where}starts_at", "must be set")]
    if end is None:
        return [(f"{where}ends_at", "must be set")]
    if end <= start:
        return [(f"{where}ends_at", "must be after starts_at")]
    return []


def _member(team: Team, member_id: str, field: str) -> None:
    if not member_id:
        require([(field, "must not be empty")])
    if team.member(member_id) is None:
        raise NotFound(f"member {member_id} is not a member of team {team.team_id}")


def decide_override(
    team: Team, member_id: str, starts_at: datetime, ends_at: datetime, *, by: str, now: datetime
) -> list[OverrideAdded]:
    """Returns the event adding a one-off override (the next `ovr-<n>` id)."""
    require(_window(starts_at, ends_at, ""))
    require(schedules.time_violations(starts_at=starts_at, ends_at=ends_at))
    if ends_at <= now:
        require([("ends_at", "must be in the future")])
    _member(team, member_id, "member_id")
    number = team.overrides_added + 1
    return [OverrideAdded(Override(member_id, starts_at, ends_at, f"ovr-{number}", by))]


def find_override(team: Team, override_id: str) -> Override:
    """Returns the team's runtime override with that id (NotFound otherwise: never added,
    removed, or pruned)."""
    if not override_id:
        require([("override_id", "must be set")])
    found = next((o for o in team.overrides if o.override_id == override_id), None)
    if found is None:
        raise NotFound(f"override {override_id} does not exist in team {team.team_id}")
    return found


def decide_override_removal(team: Team, override_id: str, *, by: str) -> list[OverrideRemoved]:
    """Returns the event removing a runtime override (one from the team's file is changed
    with the file, PutTeam)."""
    return [OverrideRemoved(find_override(team, override_id), by)]


def decide_prune(team: Team, now: datetime, retention: timedelta) -> list[SchedulePruned]:
    """Returns the event dropping the runtime overrides and the swaps (whatever their status)
    that ended before now - `retention`; nothing when none did. Kept in the log, so a replay
    drops the same ones whatever the retention is then."""
    before = now - retention
    overrides = tuple(o.override_id for o in team.overrides if o.override_id and o.ends_at < before)
    swaps = tuple(s.swap_id for s in team.swaps if max(end for _m, _s, end in s.moves()) < before)
    if not overrides and not swaps:
        return []
    return [SchedulePruned(overrides, swaps, before)]


def decide_swap_request(team: Team, swap: ShiftSwap, *, now: datetime) -> list[ShiftSwapRequested]:
    """Returns the event requesting a swap: the requester must hold the whole shift (and the
    counterpart the whole return shift) now; no open or accepted swap may overlap it."""
    violations = _window(swap.starts_at, swap.ends_at, "")
    if (swap.return_starts_at is None) != (swap.return_ends_at is None):
        violations.append(("return_ends_at", "set both return_starts_at and return_ends_at"))
    elif swap.return_starts_at is not None:
        violations += _window(swap.return_starts_at, swap.return_ends_at, "return_")
    violations += schedules.time_violations(
        starts_at=swap.starts_at,
        ends_at=swap.ends_at,
        return_starts_at=swap.return_starts_at,
        return_ends_at=swap.return_ends_at,
    )
    if swap.ends_at <= now:
        violations.append(("ends_at", "must be in the future"))
    for start, end, name in (
        (swap.starts_at, swap.ends_at, "ends_at"),
        (swap.return_starts_at, swap.return_ends_at, "return_ends_at"),
    ):
        if start is not None and end is not None and end - start > schedules.MAX_RANGE:
            violations.append((name, "a shift swapped is at most 366 days long"))
    if swap.requester_id == swap.counterpart_id:
        violations.append(("counterpart_id", "must not be the requester"))
    require(violations)
    _member(team, swap.requester_id, "requester_id")
    _member(team, swap.counterpart_id, "counterpart_id")
    for other in team.swaps:
        if other.status in (SwapStatus.REQUESTED, SwapStatus.ACCEPTED) and _overlap(other, swap):
            raise IllegalTransition(
                f"swap {other.swap_id} ({other.status}) already moves an overlapping shift"
            )
    _hold(team, swap)
    swap_id = f"swap-{team.swaps_requested + 1}"
    return [ShiftSwapRequested(replace(swap, swap_id=swap_id, status=SwapStatus.REQUESTED))]


def _overlap(one: ShiftSwap, other: ShiftSwap) -> bool:
    return any(s1 < e2 and s2 < e1 for _m1, s1, e1 in one.moves() for _m2, s2, e2 in other.moves())


def _hold(team: Team, swap: ShiftSwap, *, without: str = "") -> None:
    """Raises IllegalTransition unless each side holds the shift it gives away."""
    swaps = tuple(s for s in team.swaps if s.swap_id != without)
    layers, overrides = team.schedule(), team.overrides
    for member, start, end in (
        (swap.requester_id, swap.starts_at, swap.ends_at),
        (swap.counterpart_id, swap.return_starts_at, swap.return_ends_at),
    ):
        if start is None or end is None:
            continue
        if not schedules.covers(layers, member, start, end, overrides, swaps):
            raise IllegalTransition(
                f"{member} is not on call for the whole of [{start.isoformat()}, {end.isoformat()})"
            )


def may_decide_swap(swap: ShiftSwap, subject: str, roles: frozenset[str], action: str) -> bool:
    """Only the counterpart accepts or declines, only the requester cancels; supervisors and
    admins may do either."""
    if roles & SCHEDULE_ANY:
        return True
    return subject == (swap.requester_id if action == "cancel" else swap.counterpart_id)


def find_swap(team: Team, swap_id: str) -> ShiftSwap:
    """Returns the team's swap with that id (NotFound otherwise)."""
    swap = next((s for s in team.swaps if s.swap_id == swap_id), None)
    if swap is None:
        raise NotFound(f"swap {swap_id} does not exist in team {team.team_id}")
    return swap


def decide_swap(
    team: Team, swap_id: str, action: str, *, by: str
) -> list[ShiftSwapAccepted | ShiftSwapDeclined | ShiftSwapCancelled]:
    """Returns the event accepting, declining or cancelling a requested swap; accepting checks
    again that both sides still hold the shifts they give away."""
    swap = find_swap(team, swap_id)
    if swap.status is not SwapStatus.REQUESTED:
        raise IllegalTransition(f"swap {swap_id} is {swap.status}, not requested")
    if action == "accept":
        _hold(team, swap, without=swap_id)
        return [ShiftSwapAccepted(swap_id, by)]
    if action == "decline":
        return [ShiftSwapDeclined(swap_id, by)]
    return [ShiftSwapCancelled(swap_id, by)]


def evolve_matrix(state: Matrix, event: ResponseMatrixChanged, at: datetime) -> Matrix:
    """Returns the matrix with the event's rows."""
    return Matrix({row.incident_type: row for row in event.rows}, state.version)


def decide_team(current: Team | None, team: Team) -> list[TeamDefined]:
    """Returns the event that (re)defines a team; nothing when the definition is unchanged."""
    team = team.definition()
    require(validate_team(team))
    if current is not None and current.definition() == team:
        return []
    return [TeamDefined(team)]


def decide_matrix(
    current: Matrix, rows: Sequence[MatrixRow], teams: set[str]
) -> list[ResponseMatrixChanged]:
    """Returns the event of a new matrix version; nothing when the rows are unchanged."""
    require(validate_matrix(rows, teams))
    if {row.incident_type: row for row in rows} == dict(current.rows):
        return []
    return [ResponseMatrixChanged(tuple(rows))]
