"""SLA clocks of one ticket: the one model ticketing decides with and quality's what-if replays.

Pure: no clock reads; time and the business calendar are passed in. A clock counts business
time against a target; it runs, pauses (waiting for the customer), stops (answered / resolved)
and is retargeted (priority change). Its outcome is decided by consumed time, never by whether
a breach timer happened to fire first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

Span = tuple[datetime, datetime]


class Calendar(Protocol):
    def add_business_time(self, start: datetime, amount: timedelta) -> datetime: ...

    def business_time_between(self, start: datetime, end: datetime) -> timedelta: ...


class Targets(Protocol):
    @property
    def first_response(self) -> timedelta: ...

    @property
    def resolution(self) -> timedelta: ...


@dataclass(frozen=True)
class Clock:
    """One SLA clock. `consumed` is the business time used up to `running_since` (the start of
    the current running segment) or in total when halted; `history` holds the closed running
    segments, so the instant any amount was reached is known after the fact."""

    name: str
    target: timedelta
    consumed: timedelta = timedelta(0)
    running_since: datetime | None = None
    paused: bool = False
    warn_at: datetime | None = None
    due_at: datetime | None = None
    warned: bool = False
    breached: bool = False
    met: bool = False
    stopped_at: datetime | None = None
    history: tuple[Span, ...] = ()

    @property
    def running(self) -> bool:
        return self.running_since is not None

    @property
    def open(self) -> bool:
        """Started and not stopped: running, or paused while waiting for the customer."""
        return self.running or self.paused

    def consumed_at(self, at: datetime, calendar: Calendar) -> timedelta:
        """Returns the business time used as of `at` (the running segment included)."""
        if self.running_since is None:
            return self.consumed
        return self.consumed + calendar.business_time_between(self.running_since, at)

    def reached_at(self, amount: timedelta, calendar: Calendar) -> datetime | None:
        """Returns the instant the clock had used `amount` of business time: in a past running
        segment, or (running) in the future; None if it never ran that long and is halted."""
        return _reached(self.running_since, self.consumed, self.history, amount, calendar)

    def is_breached(self, at: datetime, calendar: Calendar) -> bool:
        """True when the clock is breached as of `at`: flagged, or over its target."""
        return self.breached or self.consumed_at(at, calendar) > self.target

    def breach_due(self, at: datetime, calendar: Calendar) -> Clock:
        """Returns the clock flagged breached if it is running past its target at `at` (what
        its breach timer does, whether or not the timer has fired yet)."""
        if self.breached or not self.running or self.consumed_at(at, calendar) <= self.target:
            return self
        return replace(self, breached=True)

    def checkpoint(self, at: datetime) -> Clock:
        """Returns the clock with its running segment up to `at` kept in `history`; `consumed`
        is left to the caller (halt, or a recorded snapshot when state is rebuilt)."""
        if self.running_since is None or at <= self.running_since:
            return self
        return replace(self, history=_extend(self.history, (self.running_since, at)))

    @classmethod
    def started(
        cls, name: str, target: timedelta, at: datetime, calendar: Calendar, warn_ratio: float
    ) -> Clock:
        """`Clock(name, target).start(at, calendar, warn_ratio)`, built in one go."""
        zero = timedelta(0)
        return cls(
            name,
            target,
            running_since=at,
            warn_at=_reached(at, zero, (), target * warn_ratio, calendar),
            due_at=_reached(at, zero, (), target, calendar),
        )

    def start(self, at: datetime, calendar: Calendar, warn_ratio: float) -> Clock:
        """Returns the clock running from `at`, its deadlines computed from its history."""
        consumed, history, target = self.consumed, self.history, self.target
        # The running clock's deadlines (its `reached_at`), computed before it is built.
        warn_at = (
            None if self.warned else _reached(at, consumed, history, target * warn_ratio, calendar)
        )
        due_at = _reached(at, consumed, history, target, calendar)
        return replace(
            self,
            running_since=at,
            paused=False,
            met=False,
            stopped_at=None,
            warn_at=warn_at,
            due_at=due_at,
        )

    def halt(self, at: datetime, calendar: Calendar) -> Clock:
        """Returns the clock with its running segment added to `consumed` (not running)."""
        if self.running_since is None:
            return self
        return replace(
            self.checkpoint(at),
            consumed=self.consumed_at(at, calendar),
            running_since=None,
            warn_at=None,
            due_at=None,
        )

    def pause(self, at: datetime, calendar: Calendar) -> Clock:
        """Returns the clock halted and marked paused (if it was running)."""
        return replace(self.halt(at, calendar), paused=self.running)

    def stop(self, at: datetime, calendar: Calendar) -> Clock:
        """Returns the clock stopped at `at`: met when its consumed time is within the target,
        breached otherwise, whether or not a breach timer fired first."""
        if not self.open:
            return self
        halted = self.halt(at, calendar)
        breached = halted.breached or halted.consumed > halted.target
        return replace(halted, paused=False, breached=breached, met=not breached, stopped_at=at)

    def retarget(
        self, target: timedelta, at: datetime, calendar: Calendar, warn_ratio: float
    ) -> Clock:
        """Returns the clock under a new target; a stopped clock keeps its outcome. The due time
        is when the clock reached (or will reach) the new target, possibly before `at`."""
        if self.stopped_at is not None:
            return self
        if not self.running:
            return replace(self, target=target)
        halted = replace(self.halt(at, calendar), target=target)
        return halted.start(at, calendar, warn_ratio)

    def rebase(self, target: timedelta, calendar: Calendar, warn_ratio: float) -> Clock:
        """Returns the clock under another policy version: its consumed time recounted from its
        closed running segments (`history`) on `calendar`, the new target and deadlines. A
        stopped clock keeps its outcome; a breached or warned one stays so."""
        if self.stopped_at is not None:
            return self
        consumed = sum(
            (calendar.business_time_between(start, end) for start, end in self.history),
            timedelta(0),
        )
        rebased = replace(self, target=target, consumed=consumed, warn_at=None, due_at=None)
        if self.running_since is None:
            return rebased
        return rebased.start(self.running_since, calendar, warn_ratio)


def _reached(
    running_since: datetime | None,
    consumed: timedelta,
    history: tuple[Span, ...],
    amount: timedelta,
    calendar: Calendar,
) -> datetime | None:
    """`Clock.reached_at` of a clock with these fields."""
    if running_since is not None and consumed <= amount:
        return calendar.add_business_time(running_since, amount - consumed)
    used = timedelta(0)
    for start, end in history:
        span = calendar.business_time_between(start, end)
        if used + span >= amount:
            return calendar.add_business_time(start, max(amount - used, timedelta(0)))
        used += span
    return None


def _extend(history: tuple[Span, ...], span: Span) -> tuple[Span, ...]:
    """Appends a running segment, merging it with the previous one when they touch."""
    if history and history[-1][1] == span[0]:
        return (*history[:-1], (history[-1][0], span[1]))
    return (*history, span)


FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"


@dataclass(frozen=True)
class TicketClocks:
    """A ticket's two clocks and what each ticket event does to them (ticketing and what-if)."""

    first_response: Clock
    resolution: Clock

    @classmethod
    def opened(
        cls, targets: Targets, at: datetime, calendar: Calendar, warn_ratio: float
    ) -> TicketClocks:
        """Both clocks running from the opening."""
        return cls(
            Clock.started(FIRST_RESPONSE, targets.first_response, at, calendar, warn_ratio),
            Clock.started(RESOLUTION, targets.resolution, at, calendar, warn_ratio),
        )

    def clocks(self) -> tuple[Clock, Clock]:
        return self.first_response, self.resolution

    def breach_due(self, at: datetime, calendar: Calendar) -> TicketClocks:
        """Flags the clocks running past their target at `at`, before anything else happens."""
        return TicketClocks(*(clock.breach_due(at, calendar) for clock in self.clocks()))

    def agent_reply(self, at: datetime, calendar: Calendar) -> TicketClocks:
        """The first agent reply stops the first-response clock, also while paused (answered
        while waiting for the customer is answered)."""
        return replace(self, first_response=self.first_response.stop(at, calendar))

    def answers(self) -> bool:
        """True when an agent reply now would be the ticket's first response."""
        return self.first_response.open

    def pause(self, at: datetime, calendar: Calendar) -> TicketClocks:
        """Waiting for the customer pauses both running clocks."""
        return TicketClocks(*(clock.pause(at, calendar) for clock in self.clocks()))

    def resume(self, at: datetime, calendar: Calendar, warn_ratio: float) -> TicketClocks:
        """Resuming restarts the paused clocks."""
        return TicketClocks(
            *(
                clock.start(at, calendar, warn_ratio) if clock.paused else clock
                for clock in self.clocks()
            )
        )

    def retarget(
        self, targets: Targets, at: datetime, calendar: Calendar, warn_ratio: float
    ) -> TicketClocks:
        """A priority change applies the new targets to the clocks not yet stopped."""
        return TicketClocks(
            self.first_response.retarget(targets.first_response, at, calendar, warn_ratio),
            self.resolution.retarget(targets.resolution, at, calendar, warn_ratio),
        )

    def rebase(self, targets: Targets, calendar: Calendar, warn_ratio: float) -> TicketClocks:
        """A newer policy version applied to the ticket (see Clock.rebase)."""
        return TicketClocks(
            self.first_response.rebase(targets.first_response, calendar, warn_ratio),
            self.resolution.rebase(targets.resolution, calendar, warn_ratio),
        )

    def resolve(self, at: datetime, calendar: Calendar) -> TicketClocks:
        """A resolution stops both clocks (an unanswered ticket gets no first response)."""
        return TicketClocks(*(clock.stop(at, calendar) for clock in self.clocks()))

    def reopen(self, at: datetime, calendar: Calendar, warn_ratio: float) -> TicketClocks:
        """A reopening restarts the resolution clock where it stopped."""
        resolution = replace(self.resolution, met=False, stopped_at=None)
        return replace(self, resolution=resolution.start(at, calendar, warn_ratio))
