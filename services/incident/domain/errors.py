"""The incident domain's errors; `require` raises the field violations a command collected."""

from __future__ import annotations

from collections.abc import Sequence


class IncidentError(Exception):
    """Base of the incident domain's errors."""


class InvalidCommand(IncidentError):
    """A command's fields are invalid; `violations` holds (field, reason) pairs."""

    def __init__(self, violations: Sequence[tuple[str, str]]) -> None:
        """Keeps the violations and joins them into the message."""
        super().__init__("; ".join(f"{name}: {why}" for name, why in violations))
        self.violations = tuple(violations)


class IllegalTransition(IncidentError):
    """The command is not allowed in the incident's current status."""


class NotFound(IncidentError):
    """The incident, page or notification does not exist."""


class IncidentAlreadyExists(IllegalTransition):
    """An incident with that id was already declared."""


def require(violations: list[tuple[str, str]]) -> None:
    """Raises InvalidCommand when there are violations."""
    if violations:
        raise InvalidCommand(violations)
