"""Every published view carries every field of its protobuf message, and every value."""

from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path
from types import ModuleType

import pytest
from careops.events.v1.envelope_pb2 import EventEnvelope
from careops_eventstore.codec import dataclass_to_message
from careops_eventstore.tests.protofill import populated
from google.protobuf.message import Message

from careops_published import codec as published
from careops_published import ticketing
from careops_published.codec import (
    ViewMismatch,
    message_class,
    mismatches,
    view_codec,
    withheld,
)

VIEWS = [view for module in published.PUBLISHED for view in published.views(module)]


def _name(view: type) -> str:
    return f"{view.__module__.rsplit('.', 1)[-1]}.{view.__name__}"


def test_every_view_module_publishes_events() -> None:
    for module in published.PUBLISHED:
        assert published.views(module), module.__name__


@pytest.mark.parametrize("view", VIEWS, ids=_name)
def test_view_fields_are_the_message_fields(view: type) -> None:
    assert mismatches(view, message_class(view).DESCRIPTOR) == []


@pytest.mark.parametrize("view", VIEWS, ids=_name)
def test_a_fully_populated_message_round_trips(view: type) -> None:
    message = populated(message_class(view)())
    decoded = view_codec(view).decode(_envelope(message))
    assert isinstance(decoded, view)
    assert _all_set(decoded), decoded
    for name in withheld(view, view.__name__):
        message.ClearField(name)
    assert dataclass_to_message(decoded, type(message)()) == message


def _envelope(message: Message) -> EventEnvelope:
    envelope = EventEnvelope(type=message.DESCRIPTOR.full_name)
    envelope.payload.Pack(message)
    return envelope


def _all_set(value: object) -> bool:
    """True if no field of the view (recursively) is None or empty."""
    if dataclasses.is_dataclass(value):
        return all(_all_set(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, tuple):
        return bool(value) and all(_all_set(item) for item in value)
    return value is not None


def test_a_view_missing_a_field_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class TicketAssigned:
        agent_id: str

    TicketAssigned.__module__ = ticketing.__name__
    with pytest.raises(ViewMismatch, match="suggested: not in the view"):
        view_codec(TicketAssigned)


@dataclasses.dataclass(frozen=True)
class _BareSnapshot:
    """An SlaSnapshot that forgot its clocks."""


@dataclasses.dataclass(frozen=True)
class _Resumed:
    sla: _BareSnapshot | None


def test_a_nested_field_missing_is_found() -> None:
    descriptor = message_class(ticketing.TicketResumed).DESCRIPTOR
    assert mismatches(_Resumed, descriptor) == [
        "careops.ticketing.v1.TicketResumed.sla.clocks: not in the view"
    ]


def test_withheld_fields_are_the_messages_and_absent_from_the_views() -> None:
    for module in published.PUBLISHED:
        for name, fields in module.WITHHELD.items():
            view = getattr(module, name)
            known = message_class(view).DESCRIPTOR.fields_by_name
            assert set(fields) <= set(known), name
            assert not set(fields) & {f.name for f in dataclasses.fields(view)}, name


@pytest.mark.parametrize("module", list(published.PUBLISHED), ids=lambda m: m.__name__)
def test_views_import_the_standard_library_only(module: ModuleType) -> None:
    tree = ast.parse(Path(module.__file__ or "").read_text())
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
