"""The ticket domain's errors; `require` raises the field violations a command collected."""

from __future__ import annotations

from collections.abc import Sequence


class TicketError(Exception):
    """Base of the ticket domain's errors."""


class InvalidCommand(TicketError):
    """The command's fields are invalid; `violations` lists (field, description)."""

    def __init__(self, violations: Sequence[tuple[str, str]]) -> None:
        """Keeps the violations and joins them into the message."""
        super().__init__("; ".join(f"{name}: {why}" for name, why in violations))
        self.violations = tuple(violations)


class IllegalTransition(TicketError):
    """The command is not allowed in the ticket's current status."""


class TicketNotFound(TicketError):
    """No ticket with that id exists."""


class MacroNotFound(TicketNotFound):
    """No macro with that id exists (NOT_FOUND, like a missing ticket)."""


class TicketAlreadyExists(TicketError):
    """A ticket with that id already exists."""


def require(violations: list[tuple[str, str]]) -> None:
    """Raises InvalidCommand when there are violations."""
    if violations:
        raise InvalidCommand(violations)
