"""Translation between pure domain events (dataclasses) and their protobuf messages.

Fields are matched by name. Domain enums are StrEnums whose values are the proto enum value
names without the enum prefix, lower-cased (Channel.PHONE = "phone" <-> CHANNEL_PHONE).
datetime <-> Timestamp, timedelta <-> Duration, nested dataclasses <-> messages, tuples <->
repeated fields, None <-> unset message field.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Union

from careops.common.v1 import policy_pb2 as _policy_events  # noqa: F401 (registers types)
from careops.customer.v1 import events_pb2 as _customer_events  # noqa: F401
from careops.events.v1.envelope_pb2 import EventBatch, EventEnvelope
from careops.incident.v1 import events_pb2 as _incident_events  # noqa: F401
from careops.quality.v1 import events_pb2 as _quality_events  # noqa: F401
from careops.ticketing.v1 import events_pb2 as _ticketing_events  # noqa: F401
from google.protobuf import descriptor_pool, duration_pb2, timestamp_pb2
from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import Message


class UnknownEventType(LookupError):
    """An envelope carries an event type this codec does not know (skip and count it)."""


def known_event_type(type_name: str) -> bool:
    """True if `type_name` is a CareOps event of any context (not necessarily one a given codec
    maps): a projection merely ignores those, while other names are truly unknown."""
    try:
        descriptor_pool.Default().FindMessageTypeByName(type_name)
    except KeyError:
        return False
    return type_name.startswith("careops.")


@dataclasses.dataclass(frozen=True)
class EnvelopeContext:
    """Metadata that every event of one command shares."""

    aggregate_id: str
    aggregate_type: str
    command_id: str
    occurred_at: datetime
    actor: str = "system"
    causation_id: str = ""
    correlation_id: str = ""
    policy_versions: Mapping[str, str] = dataclasses.field(default_factory=dict)
    trace_context: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DecodedEvent:
    """A domain event together with the envelope it came in."""

    event: Any
    envelope: EventEnvelope


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def set_timestamp(target: timestamp_pb2.Timestamp, value: datetime) -> None:
    """Writes `value` into `target`: integer arithmetic on the offset from the epoch, which is
    what `FromDatetime` computes, at a third of its cost (it runs ~12 times per command)."""
    if value.tzinfo is None:  # naive: local time, as FromDatetime(astimezone) reads it
        value = value.astimezone(UTC)
    offset = value - _EPOCH
    target.seconds = offset.days * 86_400 + offset.seconds
    target.nanos = offset.microseconds * 1000


def to_timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    set_timestamp(stamp, value)
    return stamp


def from_timestamp(stamp: timestamp_pb2.Timestamp) -> datetime:
    # Equal to ToDatetime(tzinfo=UTC) (nanos are always ≥ 0), without its normalising steps;
    # timedelta(days, seconds, microseconds) positionally: a third cheaper than by keyword.
    return _EPOCH + timedelta(0, stamp.seconds, stamp.nanos // 1000)


def set_duration(target: duration_pb2.Duration, value: timedelta) -> None:
    """Writes `value` into `target` as FromTimedelta does (seconds and nanos of one sign)."""
    seconds = value.days * 86_400 + value.seconds
    nanos = value.microseconds * 1000
    if seconds < 0 < nanos:
        seconds, nanos = seconds + 1, nanos - 1_000_000_000
    target.seconds = seconds
    target.nanos = nanos


def to_duration(value: timedelta) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    set_duration(duration, value)
    return duration


@cache
def _enum_prefix(descriptor: EnumDescriptor) -> str:
    return descriptor.values_by_number[0].name.removesuffix("UNSPECIFIED")


def enum_to_proto(value: enum.Enum | str | None, descriptor: EnumDescriptor) -> Any:
    """Returns the proto number of a domain enum member or its value's name (0 for None)."""
    if value is None:
        return 0
    return _enum_number(descriptor, value)


@cache
def _enum_number(descriptor: EnumDescriptor, value: enum.Enum | str) -> int:
    # Cached per (enum, member): a dict hit instead of building and looking up the name.
    name = str(value.value if isinstance(value, enum.Enum) else value)
    return int(descriptor.values_by_name[_enum_prefix(descriptor) + name.upper()].number)


def enum_from_proto(number: int, descriptor: EnumDescriptor, domain: type[enum.Enum]) -> Any:
    """Returns the domain member for a proto number; None for 0 (unspecified) or unknown numbers."""
    member = _enum_members(descriptor, domain).get(number)
    if member is not None:
        return member
    value = descriptor.values_by_number.get(number)
    if value is None or number == 0:
        return None
    return domain(value.name.removeprefix(_enum_prefix(descriptor)).lower())


@cache
def _enum_members(descriptor: EnumDescriptor, domain: type[enum.Enum]) -> dict[int, Any]:
    """Proto number -> domain member, built once per pair (a decode reads ~7 enums per event);
    a value the domain lacks is left out, so enum_from_proto's slow path raises for it."""
    members: dict[int, Any] = {}
    prefix = _enum_prefix(descriptor)
    for value in descriptor.values:
        if value.number != 0:
            try:
                members[value.number] = domain(value.name.removeprefix(prefix).lower())
            except ValueError:
                continue
    return members


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


@cache
def _write_plan(cls: type, descriptor: Any) -> tuple[tuple[str, bool, bool, Any], ...]:
    """(name, repeated, is_message, enum descriptor) per field, decided once per type pair."""
    plan = []
    for field in dataclasses.fields(cls):
        proto_field = descriptor.fields_by_name[field.name]
        plan.append(
            (
                field.name,
                proto_field.is_repeated,
                proto_field.message_type is not None,
                proto_field.enum_type,
            )
        )
    return tuple(plan)


def dataclass_to_message(obj: Any, message: Message) -> Message:
    """Fills `message` from the same-named fields of dataclass `obj`; returns it."""
    cls: type = type(obj)
    for name, repeated, is_message, enum_type in _write_plan(cls, message.DESCRIPTOR):
        value = getattr(obj, name)
        if value is None:
            continue
        if repeated:
            target = getattr(message, name)
            for item in value:
                if is_message:
                    _set_message(target.add(), item)
                else:
                    target.append(enum_to_proto(item, enum_type) if enum_type else item)
        elif is_message:
            _set_message(getattr(message, name), value)
        else:
            setattr(message, name, enum_to_proto(value, enum_type) if enum_type else value)
    return message


def _set_message(target: Message, value: Any) -> None:
    target.SetInParent()
    if isinstance(value, datetime):
        set_timestamp(typing.cast(timestamp_pb2.Timestamp, target), value)
    elif isinstance(value, timedelta):
        set_duration(typing.cast(duration_pb2.Duration, target), value)
    else:
        dataclass_to_message(value, target)


@dataclasses.dataclass(frozen=True)
class _Field:
    """How to read one field: decided once per (dataclass, message type) pair."""

    name: str
    repeated: bool
    is_message: bool
    enum: Any  # the proto enum descriptor, or None
    hint: Any  # the domain type (of the items, for repeated fields)


@cache
def _read_plan(cls: type, descriptor: Any) -> tuple[_Field, ...]:
    hints = _hints(cls)
    plan = []
    for field in dataclasses.fields(cls):
        proto_field = descriptor.fields_by_name[field.name]
        hint = _unwrap_optional(hints[field.name])
        if proto_field.is_repeated:
            (hint, *_rest) = typing.get_args(hint) or (Any,)
        plan.append(
            _Field(
                field.name,
                proto_field.is_repeated,
                proto_field.message_type is not None,
                proto_field.enum_type,
                hint,
            )
        )
    return tuple(plan)


def message_to_dataclass(message: Message, cls: type) -> Any:
    """Builds dataclass `cls` from the same-named fields of `message`."""
    return _builder(cls, message.DESCRIPTOR)(message)


@cache
def _builder(cls: type, descriptor: Any) -> Callable[[Message], Any]:
    """One function per type pair that reads every field and builds `cls` from them: the
    readers' loop, its dict and its per-field branches unrolled once (the way `dataclasses`
    writes `__init__`). A decode of a TicketOpened reads ~35 fields, its SLA clocks included.

    A timestamp's conversion is written inline, and a plain dataclass (see `_plain_init`) is
    filled without its `__init__`: a frozen dataclass's `__init__` sets each field through
    `object.__setattr__`, a third of a clock snapshot's decode. The instance is the one
    `cls(**fields)` builds: the same attributes, in the same order."""
    names: dict[str, Any] = {"cls": cls, "new": object.__new__, "E": _EPOCH, "td": timedelta}
    arguments = []
    for index, (name, optional, absent, read) in enumerate(_readers(cls, descriptor)):
        if read is from_timestamp:
            value = f"(E + td(0, (x := m.{name}).seconds, x.nanos // 1000))"
        elif read is None:
            value = f"m.{name}"
        else:
            names[f"r{index}"] = read
            value = f"r{index}(m.{name})"
        if optional:
            names[f"a{index}"] = absent
            value = f"({value} if m.HasField({name!r}) else a{index})"
        arguments.append(f"{name}={value}")
    if _plain_init(cls):
        body = f"o = new(cls)\n    o.__dict__.update({', '.join(arguments)})\n    return o"
    else:
        body = f"return cls({', '.join(arguments)})"
    source = f"def build(m):\n    {body}\n"
    exec(source, names)  # noqa: S102 - the source is built from field names only
    return typing.cast(Callable[[Message], Any], names["build"])


def _plain_init(cls: type) -> bool:
    """True if `cls(**fields)` only stores its fields: a dataclass with the `__init__` that
    `dataclasses` wrote (every field an argument), no `__post_init__`, no slots, and neither
    `__new__` nor `__setattr__` of its own (a frozen dataclass's refusing one aside)."""
    if not dataclasses.is_dataclass(cls) or "__slots__" in cls.__dict__:
        return False
    code = getattr(cls.__dict__.get("__init__"), "__code__", None)
    frozen = bool(cls.__dataclass_params__.frozen)  # type: ignore[attr-defined]
    return (
        code is not None
        and code.co_filename == "<string>"  # dataclasses execs the source it writes
        and all(field.init for field in dataclasses.fields(cls))
        and not hasattr(cls, "__post_init__")
        and cls.__new__ is object.__new__
        and (frozen or cls.__setattr__ is object.__setattr__)
    )


_Reader = tuple[str, bool, Any, Callable[[Any], Any] | None]


@cache
def _readers(cls: type, descriptor: Any) -> tuple[_Reader, ...]:
    """(name, optional message, value when absent, conversion or None) per field: the field's
    conversion is chosen once per type pair, so a decode only calls it (~35 fields per
    TicketOpened, its SLA snapshots included)."""
    readers = []
    for field in _read_plan(cls, descriptor):
        read = _conversion(field)
        if field.repeated:
            read = _each(read)
        optional = field.is_message and not field.repeated
        absent = timedelta(0) if field.hint is timedelta else None
        readers.append((field.name, optional, absent, read))
    return tuple(readers)


def _each(read: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    if read is None:
        return tuple
    return lambda raw: tuple(map(read, raw))


def _conversion(field: _Field) -> Callable[[Any], Any] | None:
    """How one value is read: None for scalars taken as they are."""
    if field.enum is not None:
        descriptor, domain = field.enum, field.hint
        members = _enum_members(descriptor, domain)

        def member(number: int) -> Any:
            found = members.get(number)
            return found if found is not None else enum_from_proto(number, descriptor, domain)

        return member
    if not field.is_message:
        return None
    if field.hint is datetime:
        return from_timestamp
    if field.hint is timedelta:
        return _from_duration
    return _Nested(field.hint)


class _Nested:
    """Reads a nested message with its type pair's builder, found on first use (a message type
    may contain itself)."""

    def __init__(self, hint: type) -> None:
        self._hint = hint
        self._build: Callable[[Message], Any] | None = None

    def __call__(self, raw: Message) -> Any:
        build = self._build
        if build is None:
            build = self._build = _builder(self._hint, raw.DESCRIPTOR)
        return build(raw)


def _from_duration(raw: duration_pb2.Duration) -> timedelta:
    # ToTimedelta's value (nanos rounded toward zero) without its generic checks.
    nanos = raw.nanos
    micros = nanos // 1000 if nanos >= 0 else -(-nanos // 1000)
    return timedelta(0, raw.seconds, micros)


class EventCodec:
    """Maps a context's domain event classes to protobuf messages and envelopes."""

    def __init__(
        self,
        mapping: Mapping[type, type[Message]],
        *,
        sealed_fields: Mapping[type, tuple[str, ...]] | None = None,
    ) -> None:
        self._to_proto = dict(mapping)
        self._by_type_name = {proto.DESCRIPTOR.full_name: cls for cls, proto in mapping.items()}
        # The type URL `Any.Pack` writes for each message.
        self._type_urls = {
            cls: f"type.googleapis.com/{proto.DESCRIPTOR.full_name}"
            for cls, proto in mapping.items()
        }
        # Free text an event writes only inside its `sealed` field once that is set (the
        # application sealed it for its owner, careops_platform.sealing): never in clear.
        self._sealed_fields = dict(sealed_fields or {})

    def type_name(self, event: Any) -> str:
        return str(self._to_proto[type(event)].DESCRIPTOR.full_name)

    def only(self, *classes: type) -> EventCodec:
        """Returns a codec that knows just `classes`: a reader of a few types decodes those
        and skips the rest of a batch unparsed."""
        return EventCodec({cls: self._to_proto[cls] for cls in classes})

    def knows(self, type_name: str) -> bool:
        return type_name in self._by_type_name

    @property
    def type_names(self) -> frozenset[str]:
        """The full names of the event types this codec knows."""
        return frozenset(self._by_type_name)

    def encode(self, events: Iterable[Any], context: EnvelopeContext) -> EventBatch:
        """Returns one batch holding an envelope per event."""
        batch = EventBatch()
        recorded_at = datetime.now(UTC)
        for event in events:
            envelope = batch.events.add()
            envelope.event_id = str(uuid.uuid4())
            envelope.type = self.type_name(event)
            envelope.aggregate_id = context.aggregate_id
            envelope.aggregate_type = context.aggregate_type
            set_timestamp(envelope.occurred_at, context.occurred_at)
            set_timestamp(envelope.recorded_at, recorded_at)
            envelope.command_id = context.command_id
            envelope.causation_id = context.causation_id or context.command_id
            envelope.correlation_id = context.correlation_id or context.command_id
            envelope.actor = context.actor
            envelope.policy_versions.update(context.policy_versions)
            envelope.trace_context.update(context.trace_context)
            envelope.payload.Pack(self.payload(event))
        return batch

    def payload(self, event: Any) -> Message:
        """Returns the event's message; a sealed event's free-text fields stay empty."""
        message = dataclass_to_message(event, self._to_proto[type(event)]())
        if getattr(event, "sealed", None) is not None:
            for path in self._sealed_fields.get(type(event), ()):
                head, _, tail = path.partition(".")
                if not tail:
                    message.ClearField(head)
                    continue
                # `answers.text`: the field of each nested message.
                nested = getattr(message, head)
                repeated = message.DESCRIPTOR.fields_by_name[head].is_repeated
                for item in nested if repeated else (nested,):
                    item.ClearField(tail)
        return message

    def decode(self, envelope: EventEnvelope) -> Any:
        """Returns the domain event of an envelope; raises UnknownEventType for unknown types."""
        cls = self._by_type_name.get(envelope.type)
        if cls is None:
            raise UnknownEventType(envelope.type)
        proto = self._to_proto[cls]
        message = proto()
        payload = envelope.payload
        if payload.type_url == self._type_urls[cls]:
            # What Unpack does once its Is() has compared the type's name.
            message.ParseFromString(payload.value)
        elif not payload.Unpack(message):
            raise UnknownEventType(f"{envelope.type}: payload is {payload.TypeName()}")
        return _builder(cls, proto.DESCRIPTOR)(message)

    def decode_batch(self, batch: EventBatch) -> list[DecodedEvent]:
        """Decodes the known events of a batch, skipping unknown types."""
        decoded = []
        for envelope in batch.events:
            if self.knows(envelope.type):
                decoded.append(DecodedEvent(self.decode(envelope), envelope))
        return decoded
