"""On-call schedules: layers of rotations, restrictions, overrides and shift swaps. Pure maths.

A schedule is a list of layers, lowest first; at any instant the highest layer that has someone
on call wins. A layer hands its shift on at `handoff_time` (wall clock in `time_zone`, so a
hand-off stays at 09:00 across a DST change) every day (daily), every seven days (weekly) or
every `shift_days` days / `shift_hours` elapsed hours (custom), in `member_ids` order from
`start_date`. Restrictions (time-of-day windows on some weekdays, in the layer's zone) limit when
a layer is on call at all: follow-the-sun is layers restricted to each region's day.

Above the layers: accepted shift swaps (the requester's shift goes to the counterpart, and the
counterpart's return shift, if any, to the requester), and above those the overrides (the one
added last wins).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_RANGE = timedelta(days=366)
# Times a schedule computes with (outside: INVALID_ARGUMENT, never an overflow).
EARLIEST = datetime(1971, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
MAX_SHIFT_DAYS = 36_600
MAX_SHIFT_HOURS = 24 * 36_600
HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


class RotationType(StrEnum):
    """How long a layer's shift is."""

    DAILY = "daily"
    WEEKLY = "weekly"
    CUSTOM = "custom"


class SwapStatus(StrEnum):
    """Where a shift swap stands."""

    REQUESTED = "requested"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CANCELLED = "cancelled"


class DecidedBy(StrEnum):
    """What decided who is on call."""

    OVERRIDE = "override"
    SWAP = "swap"
    LAYER = "layer"
    NOBODY = "nobody"


@dataclass(frozen=True)
class Restriction:
    """A window in which a layer is on call: from `start_time` to `end_time` (wall clock in the
    layer's zone; an end at or before the start runs into the next day) on the ISO `weekdays`
    (1 Monday .. 7 Sunday; none: every day) the window starts on."""

    weekdays: tuple[int, ...] = ()
    start_time: str = "00:00"
    end_time: str = "00:00"


@dataclass(frozen=True)
class Layer:
    """One layer of a schedule (see the module's docstring)."""

    name: str = ""
    member_ids: tuple[str, ...] = ()
    rotation_type: RotationType | None = None
    shift_days: int = 0
    shift_hours: int = 0
    handoff_time: str = "09:00"
    time_zone: str = "UTC"
    start_date: str = "2026-01-05"
    restrictions: tuple[Restriction, ...] = ()


@dataclass(frozen=True)
class Override:
    """A member on call instead of the schedule in [starts_at, ends_at)."""

    member_id: str
    starts_at: datetime
    ends_at: datetime
    override_id: str = ""
    added_by: str = ""


@dataclass(frozen=True)
class ShiftSwap:
    """The requester's shift [starts_at, ends_at) goes to the counterpart once accepted, and the
    counterpart's return shift [return_starts_at, return_ends_at), if any, to the requester."""

    swap_id: str
    requester_id: str
    counterpart_id: str
    starts_at: datetime
    ends_at: datetime
    return_starts_at: datetime | None = None
    return_ends_at: datetime | None = None
    status: SwapStatus | None = None
    requested_by: str = ""
    decided_by: str = ""

    def moves(self) -> list[tuple[str, datetime, datetime]]:
        """Returns (member now on call, start, end) of the shifts this swap moves."""
        moved = [(self.counterpart_id, self.starts_at, self.ends_at)]
        if self.return_starts_at and self.return_ends_at:
            moved.append((self.requester_id, self.return_starts_at, self.return_ends_at))
        return moved


@dataclass(frozen=True)
class OnCall:
    """Who is on call and what decided it (`layer`: the deciding layer's index; `ref`: the
    override's or swap's id, or the layer's name)."""

    member_id: str
    decided_by: DecidedBy
    layer: int = -1
    ref: str = ""


@dataclass(frozen=True)
class Shift:
    """A member on call in [starts_at, ends_at), and what decided it."""

    member_id: str
    starts_at: datetime
    ends_at: datetime
    decided_by: DecidedBy
    layer: int = -1
    ref: str = ""


def _hhmm(value: str) -> time:
    hour, minute = (int(part) for part in value.split(":"))
    return time(hour, minute)


def _at(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `clock` on `day` in `zone`."""
    return datetime.combine(day, clock, zone).astimezone(UTC)


def _days(layer: Layer) -> int:
    if layer.rotation_type is RotationType.WEEKLY:
        return 7
    if layer.rotation_type is RotationType.CUSTOM:
        return layer.shift_days
    return 1


def _boundary(layer: Layer, index: int) -> datetime:
    """The UTC start of the layer's shift number `index`."""
    zone = ZoneInfo(layer.time_zone or "UTC")
    first = date.fromisoformat(layer.start_date)
    handoff = _hhmm(layer.handoff_time)
    if layer.rotation_type is RotationType.CUSTOM and layer.shift_hours > 0:
        return _at(first, handoff, zone) + index * timedelta(hours=layer.shift_hours)
    return _at(first + timedelta(days=index * _days(layer)), handoff, zone)


def shift_index(layer: Layer, at: datetime) -> int:
    """Returns the number of the layer's shift running at `at` (negative before the start)."""
    start = _boundary(layer, 0)
    if layer.rotation_type is RotationType.CUSTOM and layer.shift_hours > 0:
        return math.floor((at - start) / timedelta(hours=layer.shift_hours))
    index = math.floor((at - start) / timedelta(days=_days(layer)))
    while _boundary(layer, index) > at:
        index -= 1
    while _boundary(layer, index + 1) <= at:
        index += 1
    return index


def _windows(layer: Layer, day: date) -> list[tuple[datetime, datetime]]:
    """The layer's restriction windows starting on local `day`, as UTC intervals."""
    zone = ZoneInfo(layer.time_zone or "UTC")
    found = []
    for restriction in layer.restrictions:
        if restriction.weekdays and day.isoweekday() not in restriction.weekdays:
            continue
        start, end = _hhmm(restriction.start_time), _hhmm(restriction.end_time)
        end_day = day if end > start else day + timedelta(days=1)
        found.append((_at(day, start, zone), _at(end_day, end, zone)))
    return found


def _restricted_in(layer: Layer, at: datetime) -> bool:
    """True when the layer has no restrictions or `at` falls in one of its windows."""
    if not layer.restrictions:
        return True
    local = at.astimezone(ZoneInfo(layer.time_zone or "UTC")).date()
    days = (local - timedelta(days=1), local)
    return any(start <= at < end for day in days for start, end in _windows(layer, day))


def layer_on_call(layer: Layer, at: datetime) -> str:
    """Returns who the layer has on call at `at` ("" outside its restrictions or when empty)."""
    if not layer.member_ids or not _restricted_in(layer, at):
        return ""
    return layer.member_ids[shift_index(layer, at) % len(layer.member_ids)]


def on_call(
    layers: Sequence[Layer],
    at: datetime,
    overrides: Sequence[Override] = (),
    swaps: Sequence[ShiftSwap] = (),
) -> OnCall:
    """Returns who is on call at `at`: the last override covering it, else an accepted swap's
    member, else the highest layer with someone on call."""
    for override in reversed(overrides):
        if override.starts_at <= at < override.ends_at:
            return OnCall(override.member_id, DecidedBy.OVERRIDE, ref=override.override_id)
    for swap in reversed(swaps):
        if swap.status is not SwapStatus.ACCEPTED:
            continue
        for member, start, end in swap.moves():
            if start <= at < end:
                return OnCall(member, DecidedBy.SWAP, ref=swap.swap_id)
    return _layered(layers, at)


def _layered(layers: Sequence[Layer], at: datetime) -> OnCall:
    for index in range(len(layers) - 1, -1, -1):
        member = layer_on_call(layers[index], at)
        if member:
            return OnCall(member, DecidedBy.LAYER, index, layers[index].name)
    return OnCall("", DecidedBy.NOBODY)


def _edges(layer: Layer, start: datetime, end: datetime) -> set[datetime]:
    """The instants in (start, end) at which the layer may change who is on call."""
    found: set[datetime] = set()
    if layer.member_ids:
        index = shift_index(layer, start) + 1
        while (edge := _boundary(layer, index)) < end:
            found.add(edge)
            index += 1
    if layer.restrictions:
        zone = ZoneInfo(layer.time_zone or "UTC")
        day = start.astimezone(zone).date() - timedelta(days=1)
        while _at(day, time(0), zone) < end:
            for window in _windows(layer, day):
                found.update(edge for edge in window if start < edge < end)
            day += timedelta(days=1)
    return found


def timeline(
    layers: Sequence[Layer],
    start: datetime,
    end: datetime,
    overrides: Sequence[Override] = (),
    swaps: Sequence[ShiftSwap] = (),
) -> list[Shift]:
    """Returns who is on call over [start, end) as consecutive shifts (nobody: no shift);
    adjacent pieces with the same member and decision are merged."""
    if end <= start:
        return []
    edges = {start}
    for layer in layers:
        edges |= _edges(layer, start, end)
    for override in overrides:
        edges.update(e for e in (override.starts_at, override.ends_at) if start < e < end)
    for swap in swaps:
        if swap.status is SwapStatus.ACCEPTED:
            for _member, s, e in swap.moves():
                edges.update(x for x in (s, e) if start < x < end)
    points = sorted(edges)
    shifts: list[Shift] = []
    for index, point in enumerate(points):
        until = points[index + 1] if index + 1 < len(points) else end
        who = on_call(layers, point, overrides, swaps)
        if not who.member_id:
            continue
        last = shifts[-1] if shifts else None
        if (
            last is not None
            and last.ends_at == point
            and (last.member_id, last.decided_by, last.layer, last.ref)
            == (who.member_id, who.decided_by, who.layer, who.ref)
        ):
            shifts[-1] = Shift(
                last.member_id, last.starts_at, until, last.decided_by, last.layer, last.ref
            )
        else:
            shifts.append(Shift(who.member_id, point, until, who.decided_by, who.layer, who.ref))
    return shifts


def member_shifts(
    layers: Sequence[Layer],
    member_id: str,
    start: datetime,
    end: datetime,
    overrides: Sequence[Override] = (),
    swaps: Sequence[ShiftSwap] = (),
) -> list[Shift]:
    """Returns the member's shifts over [start, end), merged across what decided them."""
    mine: list[Shift] = []
    for shift in timeline(layers, start, end, overrides, swaps):
        if shift.member_id != member_id:
            continue
        if mine and mine[-1].ends_at == shift.starts_at and mine[-1].ref == shift.ref:
            last = mine[-1]
            mine[-1] = Shift(member_id, last.starts_at, shift.ends_at, last.decided_by, last.layer)
        else:
            mine.append(shift)
    return mine


def covers(
    layers: Sequence[Layer],
    member_id: str,
    start: datetime,
    end: datetime,
    overrides: Sequence[Override] = (),
    swaps: Sequence[ShiftSwap] = (),
) -> bool:
    """True when `member_id` is on call for the whole of [start, end)."""
    covered = start
    for shift in timeline(layers, start, end, overrides, swaps):
        if shift.starts_at > covered:
            return False
        if shift.member_id != member_id:
            return False
        covered = shift.ends_at
    return covered >= end


def time_violations(**times: datetime | None) -> list[tuple[str, str]]:
    """Returns a violation for each time outside [EARLIEST, LATEST) (None: not checked)."""
    return [
        (name, "must be between 1971 and 9000")
        for name, value in times.items()
        if value is not None and not EARLIEST <= value < LATEST
    ]


def validate_layer(layer: Layer, where: str, known: set[str]) -> list[tuple[str, str]]:
    """Returns the violations of one layer."""
    violations = []
    if not layer.member_ids:
        violations.append((f"{where}.member_ids", "a layer needs at least one member"))
    unknown = [m for m in layer.member_ids if m not in known]
    if unknown:
        violations.append((f"{where}.member_ids", f"not members: {', '.join(unknown)}"))
    if layer.rotation_type is None:
        violations.append((f"{where}.rotation_type", "daily, weekly or custom"))
    elif layer.rotation_type is RotationType.CUSTOM and (layer.shift_days < 1) == (
        layer.shift_hours < 1
    ):
        violations.append((where, "a custom layer sets exactly one of shift_days, shift_hours"))
    if layer.shift_days > MAX_SHIFT_DAYS:
        violations.append((f"{where}.shift_days", f"at most {MAX_SHIFT_DAYS}"))
    if layer.shift_hours > MAX_SHIFT_HOURS:
        violations.append((f"{where}.shift_hours", f"at most {MAX_SHIFT_HOURS}"))
    if not HHMM.fullmatch(layer.handoff_time):
        violations.append((f"{where}.handoff_time", "must be HH:MM"))
    try:
        ZoneInfo(layer.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        violations.append((f"{where}.time_zone", f"unknown time zone {layer.time_zone!r}"))
    try:
        first = date.fromisoformat(layer.start_date)
        if not EARLIEST.year <= first.year < LATEST.year:
            violations.append((f"{where}.start_date", "must be between 1971 and 9000"))
    except ValueError:
        violations.append((f"{where}.start_date", "must be an ISO date"))
    for index, restriction in enumerate(layer.restrictions):
        at = f"{where}.restrictions[{index}]"
        if any(day < 1 or day > 7 for day in restriction.weekdays):
            violations.append((f"{at}.weekdays", "ISO weekdays 1 (Monday) .. 7 (Sunday)"))
        for name in ("start_time", "end_time"):
            if not HHMM.fullmatch(getattr(restriction, name)):
                violations.append((f"{at}.{name}", "must be HH:MM"))
    return violations
