"""Who caused a reaction's commands: the actor of the event a reaction or timer acts upon.

Reactions, projections and timers run outside any request, so the actor their code names
("dispatcher", "sla-timer") only says *what* acted. While the runner handles an event it puts
that event's principal in scope (`caused_by`); every command appended meanwhile is attributed
`"<principal> via <what acted>"` (`attributed`, applied by the command executor), and a timer
scheduled meanwhile remembers the principal in its data (`CAUSE_KEY`) for when it fires. The
envelope has no other field for it and the event contract stays as it is, so the attribution
lives in `actor`; `principal` recovers who it was.
"""

from __future__ import annotations

import contextvars

VIA = " via "
# Timer data key holding the principal whose event scheduled the timer.
CAUSE_KEY = "caused_by"
_CAUSE: contextvars.ContextVar[str] = contextvars.ContextVar("careops_cause", default="")


def principal(actor: str) -> str:
    """Returns who is behind `actor`: the part before the first " via " (all of it if none)."""
    return actor.split(VIA, 1)[0]


def current_cause() -> str:
    """Returns the principal whose event is being handled now ("" outside a reaction)."""
    return _CAUSE.get()


class caused_by:  # noqa: N801 - used as the function it was: `with caused_by(actor):`
    """Attributes the commands appended in this block to the principal behind `actor`
    (a chain of reactions keeps the first principal, not the whole chain). A class, not a
    generator: a projection enters it for every event it applies."""

    __slots__ = ("_cause", "_token")

    def __init__(self, actor: str) -> None:
        self._cause = principal(actor)
        self._token: contextvars.Token[str] | None = None

    def __enter__(self) -> None:
        self._token = _CAUSE.set(self._cause)

    def __exit__(self, *_exc: object) -> None:
        if self._token is not None:
            _CAUSE.reset(self._token)
            self._token = None


def attributed(actor: str) -> str:
    """Returns the actor a command is recorded with: `"<cause> via <actor>"` while a cause is
    in scope (and `actor` is not already that principal's), else `actor` unchanged."""
    cause = _CAUSE.get()
    if not cause or principal(actor) == cause:
        return actor
    return f"{cause}{VIA}{actor}"
