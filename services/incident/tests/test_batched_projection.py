"""The incidents / pages / timeline projection writes through careops_eventstore.rows (one
executemany per kind, keyed by incident, its status remembered): the KPI scenario's incidents
(declared, paged, acknowledged, resolved; a drill) applied in one batch, or in pages of two
messages, give exactly the rows that applying their events one at a time gives."""

from __future__ import annotations

import pytest
from careops_eventstore.batches import apply_batch, reset
from careops_eventstore.memory import InMemoryEventStore
from careops_eventstore.model import RecordedBatch
from careops_platform.db import migrate
from sqlalchemy import Engine

from incident.application import CODEC, STREAM
from incident.projections import IncidentProjection
from tests.quality_scenario import Clock, write_incidents
from tests.support import apply_one_at_a_time, tables_content

from .test_surge import MIGRATIONS


async def incident_log() -> list[RecordedBatch]:
    memory = InMemoryEventStore()
    await write_incidents(memory, Clock())
    return await memory.read_stream(stream=STREAM.name, after_sequence=0, limit=10_000)


@pytest.mark.parametrize("page", [2, 10_000])
async def test_batches_write_what_one_event_at_a_time_writes(
    read_model_engine: Engine, page: int
) -> None:
    engine = read_model_engine
    migrate(engine, MIGRATIONS)
    log = await incident_log()
    apply_one_at_a_time(engine, IncidentProjection(), CODEC, log)
    expected = tables_content(engine, IncidentProjection())
    assert all(expected.values())  # incidents, pages and timeline steps
    reset(engine, IncidentProjection())
    projection = IncidentProjection()
    for start in range(0, len(log), page):
        part = log[start : start + page]
        outcome = apply_batch(
            engine, projection, CODEC, STREAM.name, part, [m.sequence for m in part]
        )
        assert outcome.parked == []
    assert tables_content(engine, projection) == expected
