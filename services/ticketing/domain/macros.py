"""Macros: prepared answers with placeholders, managed by supervisors, inserted by agents.

A macro's body may name only the placeholders of PLACEHOLDERS; rendering substitutes plain
text (never `str.format`, so no attribute or index lookup can run). Every put is a version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from string import Formatter

from ticketing.domain.errors import InvalidCommand, MacroNotFound, require
from ticketing.domain.values import MAX_SUBJECT, MAX_TEXT

# The safe set: what an agent knows when inserting an answer. ticket_id and product come from
# the ticket itself; the names from the request (ticketing keeps no customer names).
PLACEHOLDERS = frozenset({"customer_name", "agent_name", "ticket_id", "product"})
FROM_TICKET = frozenset({"ticket_id", "product"})
MAX_VALUE = 200


@dataclass(frozen=True)
class Macro:
    """A macro's state; `version` counts its puts (0: never put)."""

    macro_id: str
    exists: bool = False
    version: int = 0
    title: str = ""
    body: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class PutMacro:
    """Create a macro or replace its title and body (a new version)."""

    title: str
    body: str


@dataclass(frozen=True)
class DeleteMacro:
    """Delete a macro."""


MacroCommand = PutMacro | DeleteMacro


@dataclass(frozen=True)
class MacroPut:
    """A macro was created or changed; `version` is its new version."""

    title: str
    body: str
    version: int


@dataclass(frozen=True)
class MacroDeleted:
    """A macro was deleted at `version` (its last put)."""

    version: int


MacroEvent = MacroPut | MacroDeleted


def initial_macro(macro_id: str) -> Macro:
    """Returns the state of a macro that does not exist."""
    return Macro(macro_id=macro_id)


def _parts(body: str) -> list[tuple[str, str | None]]:
    """Returns the body as (literal, placeholder or None) pairs; InvalidCommand for unbalanced
    braces, positional fields, conversions, format specs or unknown names."""
    try:
        parsed = list(Formatter().parse(body))
    except ValueError as exc:
        why = f"bad braces: {exc} (write {{{{ and }}}} for literal braces)"
        raise InvalidCommand([("body", why)]) from None
    parts: list[tuple[str, str | None]] = []
    violations: list[tuple[str, str]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None and (spec or conversion or name not in PLACEHOLDERS):
            allowed = ", ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS))
            violations.append(("body", f"unknown placeholder {{{name}}}; allowed: {allowed}"))
        parts.append((literal, name))
    require(violations)
    return parts


def decide_macro(state: Macro, command: MacroCommand) -> list[MacroEvent]:
    """Returns the events of a macro command; raises a TicketError when it is not allowed."""
    if isinstance(command, DeleteMacro):
        if not state.exists:
            raise MacroNotFound(f"macro {state.macro_id} does not exist")
        return [MacroDeleted(state.version)]
    violations = []
    if not command.title.strip():
        violations.append(("title", "must not be empty"))
    elif len(command.title) > MAX_SUBJECT:
        violations.append(("title", f"must be at most {MAX_SUBJECT} characters"))
    if not command.body.strip():
        violations.append(("body", "must not be empty"))
    elif len(command.body) > MAX_TEXT:
        violations.append(("body", f"must be at most {MAX_TEXT} characters"))
    require(violations)
    _parts(command.body)
    title = command.title.strip()
    if state.exists and (state.title, state.body) == (title, command.body):
        return []
    return [MacroPut(title, command.body, state.version + 1)]


def evolve_macro(state: Macro, event: MacroEvent, at: datetime) -> Macro:
    """Returns the macro after one event recorded at `at`."""
    if isinstance(event, MacroPut):
        return replace(
            state,
            exists=True,
            version=event.version,
            title=event.title,
            body=event.body,
            updated_at=at,
        )
    return replace(state, exists=False, updated_at=at)


def render(macro: Macro, values: Mapping[str, str], *, ticket_id: str, product: str) -> str:
    """Returns the macro's body with its placeholders filled: ticket_id and product from the
    ticket, the others from `values`. InvalidCommand for a missing, unknown or long value."""
    if not macro.exists:
        raise MacroNotFound(f"macro {macro.macro_id} does not exist")
    violations = []
    for name, value in values.items():
        field = f"macro_values[{name}]"
        if name not in PLACEHOLDERS - FROM_TICKET:
            violations.append((field, "not a placeholder the request may fill"))
        elif len(value) > MAX_VALUE:
            violations.append((field, f"must be at most {MAX_VALUE} characters"))
    filled = {**values, "ticket_id": ticket_id, "product": product}
    parts = _parts(macro.body)
    for _literal, placeholder in parts:
        if placeholder is None or filled.get(placeholder, "").strip():
            continue
        if placeholder in FROM_TICKET:
            violations.append(("macro_id", f"the macro needs the ticket's {placeholder}: none"))
        else:
            violations.append((f"macro_values[{placeholder}]", "the macro needs this value"))
    require(sorted(set(violations)))
    return "".join(literal + (filled[key] if key else "") for literal, key in parts)
