"""Fully populated protobuf messages for codec tests: every field set to a non-default value."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

# Timestamps and Durations are set in whole microseconds: datetime and timedelta hold no more.
_WELL_KNOWN = {
    "google.protobuf.Timestamp": {"seconds": 1_780_000_000, "nanos": 123_456_000},
    "google.protobuf.Duration": {"seconds": 5_400, "nanos": 250_000_000},
}


def populated(message: Message, seed: int = 1) -> Message:
    """Sets every field of `message` (recursively; two items per repeated field); returns it."""
    well_known = _WELL_KNOWN.get(message.DESCRIPTOR.full_name)
    if well_known is not None:
        for name, value in well_known.items():
            setattr(message, name, value)
        return message
    for field in message.DESCRIPTOR.fields:
        if field.is_repeated:
            target = getattr(message, field.name)
            for item in (seed, seed + 1):
                if field.message_type is not None:
                    populated(target.add(), item)
                else:
                    target.append(_scalar(field, item))
        elif field.message_type is not None:
            populated(getattr(message, field.name), seed)
        else:
            setattr(message, field.name, _scalar(field, seed))
    return message


def _scalar(field: Any, seed: int) -> Any:
    """Returns a non-default value of a scalar or enum field, varied by `seed`."""
    if field.enum_type is not None:
        numbers = [value.number for value in field.enum_type.values if value.number]
        return numbers[seed % len(numbers)]
    kind = field.type
    if kind == FieldDescriptor.TYPE_BOOL:
        return True
    if kind == FieldDescriptor.TYPE_STRING:
        return f"{field.name}-{seed}"
    if kind == FieldDescriptor.TYPE_BYTES:
        return f"{field.name}-{seed}".encode()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return seed + 0.5
    return seed + 6
