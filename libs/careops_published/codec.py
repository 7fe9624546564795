"""Builds the published views from the protobuf event messages, generically, by field name.

`view_codec(view, ...)` returns an EventCodec that decodes each given view class from the
same-named message of its context's events package. It refuses a view whose fields are not
exactly the message's (recursively, nested messages included) less those its module lists in
WITHHELD, so a view never drops a field silently; the conversions (enums, Timestamp, Duration,
nested and repeated fields) are careops_eventstore.codec's.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from types import ModuleType
from typing import Any

from careops.customer.v1 import events_pb2 as customer_events
from careops.customer.v1 import types_pb2 as customer_types
from careops.incident.v1 import events_pb2 as incident_events
from careops.incident.v1 import types_pb2 as incident_types
from careops.quality.v1 import events_pb2 as quality_events
from careops.ticketing.v1 import events_pb2 as ticketing_events
from careops.ticketing.v1 import types_pb2 as ticketing_types
from careops_eventstore.codec import EventCodec
from google.protobuf.message import Message

from careops_published import customer, incident, quality, ticketing

# Each view module and where its messages live: events first, then the nested types.
PUBLISHED: dict[ModuleType, tuple[ModuleType, ...]] = {
    ticketing: (ticketing_events, ticketing_types),
    customer: (customer_events, customer_types),
    incident: (incident_events, incident_types),
    quality: (quality_events,),
}

WELL_KNOWN = ("google.protobuf.Timestamp", "google.protobuf.Duration")


class ViewMismatch(TypeError):
    """A view's fields are not exactly its protobuf message's."""


def views(module: ModuleType) -> list[type]:
    """Returns the event view classes of a view module (its dataclasses named like an event)."""
    sources = PUBLISHED[module]
    return [
        cls
        for cls in vars(module).values()
        if dataclasses.is_dataclass(cls)
        and isinstance(cls, type)
        and cls.__module__ == module.__name__
        and hasattr(sources[0], cls.__name__)
    ]


def message_class(view: type) -> type[Message]:
    """Returns the protobuf message class a view class mirrors (same name, same context)."""
    for source in PUBLISHED[sys.modules[view.__module__]]:
        found = getattr(source, view.__name__, None)
        if found is not None:
            return typing.cast(type[Message], found)
    raise ViewMismatch(f"{view.__module__}.{view.__name__} names no protobuf message")


def mismatches(view: type, descriptor: Any, path: str = "") -> list[str]:
    """Returns the fields missing from / extra in `view` against message `descriptor`,
    recursively (nested messages too)."""
    where = path or descriptor.full_name
    fields = {field.name: field for field in dataclasses.fields(view)}
    kept = withheld(view, descriptor.name)
    wanted = {name: f for name, f in descriptor.fields_by_name.items() if name not in kept}
    problems = [f"{where}.{name}: not in the view" for name in wanted if name not in fields]
    problems += [f"{where}.{name}: not in the message" for name in fields if name not in wanted]
    hints = typing.get_type_hints(view)
    for name, proto_field in wanted.items():
        nested = proto_field.message_type
        if name not in fields or nested is None or nested.full_name in WELL_KNOWN:
            continue
        inner = _dataclass_in(hints[name])
        if inner is None:
            problems.append(f"{where}.{name}: {nested.full_name} is not a dataclass in the view")
        else:
            problems += mismatches(inner, nested, f"{where}.{name}")
    return problems


def withheld(view: type, message_name: str) -> tuple[str, ...]:
    """Returns the fields of message `message_name` that `view`'s module withholds on purpose."""
    declared: dict[str, tuple[str, ...]] = getattr(sys.modules[view.__module__], "WITHHELD", {})
    return declared.get(message_name, ())


def _dataclass_in(hint: Any) -> type | None:
    """Returns the dataclass a field's hint names (through Optional and tuple[..., ...])."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        found = _dataclass_in(arg)
        if found is not None:
            return found
    return None


def view_codec(*view_classes: type) -> EventCodec:
    """Returns a codec decoding exactly these views (other events stay unknown to it).

    Raises ViewMismatch if a view's fields differ from its message's."""
    mapping: dict[type, type[Message]] = {}
    for view in view_classes:
        message = message_class(view)
        problems = mismatches(view, message.DESCRIPTOR)
        if problems:
            raise ViewMismatch("; ".join(problems))
        mapping[view] = message
    return EventCodec(mapping)
