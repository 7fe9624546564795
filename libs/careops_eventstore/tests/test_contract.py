"""One contract, two implementations: in-memory and JetStream event stores behave the same."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from careops.events.v1.envelope_pb2 import EventBatch

from careops_eventstore import ConcurrencyConflict, EventStore, StreamSpec
from careops_eventstore.jetstream import JetStreamEventStore
from careops_eventstore.memory import InMemoryEventStore
from careops_eventstore.model import EVENT_TYPE_HEADER, EXPECTED_SUBJECT_SEQ_HEADER


def batch(*types: str, command: str = "c") -> EventBatch:
    result = EventBatch()
    for event_type in types:
        result.events.add(type=event_type, command_id=command, aggregate_id="a")
    return result


@pytest.fixture(params=["memory", "jetstream"])
async def store(
    request: pytest.FixtureRequest, jetstream_store: JetStreamEventStore
) -> AsyncIterator[tuple[EventStore, str]]:
    """Each test gets a fresh stream in the implementation under test."""
    name = f"TEST_{uuid.uuid4().hex[:12].upper()}"
    implementation: EventStore = (
        InMemoryEventStore() if request.param == "memory" else jetstream_store
    )
    await implementation.ensure_stream(StreamSpec(name=name, subjects=(f"{name.lower()}.>",)))
    yield implementation, name.lower()


async def test_append_returns_increasing_sequences(store: tuple[EventStore, str]) -> None:
    es, prefix = store
    stream = prefix.upper()
    first = await es.append(
        stream=stream,
        subject=f"{prefix}.a.1",
        batch=batch("X"),
        expected_sequence=0,
        message_id="m1",
    )
    second = await es.append(
        stream=stream,
        subject=f"{prefix}.a.2",
        batch=batch("Y"),
        expected_sequence=0,
        message_id="m2",
    )
    third = await es.append(
        stream=stream,
        subject=f"{prefix}.a.1",
        batch=batch("Z"),
        expected_sequence=first.sequence,
        message_id="m3",
    )
    assert (first.sequence, second.sequence, third.sequence) == (1, 2, 3)
    assert not any(r.duplicate for r in (first, second, third))
    assert await es.last_sequence(stream) == 3


async def test_wrong_expected_sequence_is_a_conflict_and_appends_nothing(
    store: tuple[EventStore, str],
) -> None:
    es, prefix = store
    stream = prefix.upper()
    await es.append(
        stream=stream,
        subject=f"{prefix}.a.1",
        batch=batch("X"),
        expected_sequence=0,
        message_id="m1",
    )
    with pytest.raises(ConcurrencyConflict):
        await es.append(
            stream=stream,
            subject=f"{prefix}.a.1",
            batch=batch("Y"),
            expected_sequence=0,
            message_id="m2",
        )
    assert await es.last_sequence(stream) == 1


async def test_same_message_id_is_deduplicated_with_original_sequence(
    store: tuple[EventStore, str],
) -> None:
    es, prefix = store
    stream = prefix.upper()
    first = await es.append(
        stream=stream,
        subject=f"{prefix}.a.1",
        batch=batch("X"),
        expected_sequence=0,
        message_id="same",
    )
    # The expected-sequence check comes first (as in JetStream): a stale retry is a conflict,
    # which the command executor resolves by finding its command id in the fresh state.
    with pytest.raises(ConcurrencyConflict):
        await es.append(
            stream=stream,
            subject=f"{prefix}.a.1",
            batch=batch("X"),
            expected_sequence=0,
            message_id="same",
        )
    again = await es.append(
        stream=stream,
        subject=f"{prefix}.a.1",
        batch=batch("X"),
        expected_sequence=first.sequence,
        message_id="same",
    )
    assert again.duplicate and again.sequence == first.sequence
    assert await es.last_sequence(stream) == 1


async def test_concurrent_appends_on_one_subject_have_exactly_one_winner(
    store: tuple[EventStore, str],
) -> None:
    es, prefix = store
    stream = prefix.upper()

    async def attempt(index: int) -> bool:
        try:
            await es.append(
                stream=stream,
                subject=f"{prefix}.a.1",
                batch=batch("X"),
                expected_sequence=0,
                message_id=f"m{index}",
            )
            return True
        except ConcurrencyConflict:
            return False

    outcomes = await asyncio.gather(*(attempt(i) for i in range(10)))
    assert outcomes.count(True) == 1
    assert await es.last_sequence(stream) == 1


async def test_read_subject_returns_only_that_subject_in_order_with_bounds(
    store: tuple[EventStore, str],
) -> None:
    es, prefix = store
    stream = prefix.upper()
    expected = {f"{prefix}.a.1": 0, f"{prefix}.a.2": 0}
    for index in range(7):
        subject = f"{prefix}.a.{1 + index % 2}"
        result = await es.append(
            stream=stream,
            subject=subject,
            batch=batch(f"T{index}", command=f"c{index}"),
            expected_sequence=expected[subject],
            message_id=f"m{index}",
        )
        expected[subject] = result.sequence
    odd = await es.read_subject(stream=stream, subject=f"{prefix}.a.1")
    assert [m.sequence for m in odd] == [1, 3, 5, 7]
    assert [m.batch.events[0].type for m in odd] == ["T0", "T2", "T4", "T6"]
    assert odd[0].headers[EVENT_TYPE_HEADER] == "T0"
    tail = await es.read_subject(stream=stream, subject=f"{prefix}.a.1", after_sequence=3)
    assert [m.sequence for m in tail] == [5, 7]
    upto = await es.read_subject(stream=stream, subject=f"{prefix}.a.1", until_sequence=5)
    assert [m.sequence for m in upto] == [1, 3, 5]
    assert await es.read_subject(stream=stream, subject=f"{prefix}.a.9") == []


async def test_read_stream_pages_through_everything(store: tuple[EventStore, str]) -> None:
    es, prefix = store
    stream = prefix.upper()
    for index in range(5):
        await es.append(
            stream=stream,
            subject=f"{prefix}.a.{index}",
            batch=batch("X", "Y"),
            expected_sequence=0,
            message_id=f"m{index}",
        )
    page = await es.read_stream(stream=stream, after_sequence=1, limit=3)
    assert [m.sequence for m in page] == [2, 3, 4]
    assert [e.type for e in page[0].batch.events] == ["X", "Y"]
    assert await es.read_stream(stream=stream, after_sequence=5) == []


async def test_a_stream_that_does_not_exist_yet_is_empty(store: tuple[EventStore, str]) -> None:
    es, _ = store
    assert await es.last_sequence(f"NEVER_PROVISIONED_{uuid.uuid4().hex[:8].upper()}") == 0


async def test_a_read_message_names_the_subject_sequence_it_was_appended_after(
    store: tuple[EventStore, str],
) -> None:
    """What lets a consumer move a cached aggregate on by a delivered message (observe)."""
    es, prefix = store
    stream, subject = prefix.upper(), f"{prefix}.a.1"
    first = await es.append(
        stream=stream, subject=subject, batch=batch("X"), expected_sequence=0, message_id="m1"
    )
    await es.append(
        stream=stream,
        subject=f"{prefix}.a.2",
        batch=batch("Y"),
        expected_sequence=0,
        message_id="m2",
    )
    await es.append(
        stream=stream,
        subject=subject,
        batch=batch("Z"),
        expected_sequence=first.sequence,
        message_id="m3",
    )
    read = await es.read_subject(stream=stream, subject=subject)
    assert [m.headers[EXPECTED_SUBJECT_SEQ_HEADER] for m in read] == ["0", str(first.sequence)]
