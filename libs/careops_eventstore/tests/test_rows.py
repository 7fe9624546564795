"""Row writes batched per kind (careops_eventstore.rows) on a real SQLite: the same rows as
writing one at a time, far fewer statements, and a write the database refuses parks exactly its
message."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    case,
    create_engine,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import dialect as postgresql_dialect
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from careops_eventstore.batches import apply_batch
from careops_eventstore.codec import DecodedEvent, EnvelopeContext
from careops_eventstore.rows import EncodedJSON, _faster, batching, rows, sqlite_datetime_text
from careops_eventstore.sqlstate import list_parked
from careops_eventstore.sqlstate import metadata as shared_metadata
from careops_eventstore.tests.test_runner import CODEC, Closed, message

own = MetaData()
values = Table(
    "rows_values",
    own,
    Column("key", String(20), primary_key=True),
    Column("value", Integer, nullable=False),
)
_INSERT = insert(values)
_TIMES_TEN = update(values).where(values.c.key == bindparam("k")).values(value=values.c.value * 10)
_PLUS_ONE = update(values).where(values.c.key == bindparam("k")).values(value=values.c.value + 1)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    own.create_all(engine)
    shared_metadata.create_all(engine)
    yield engine
    engine.dispose()


def counted(engine: Engine) -> list[int]:
    """Collects the row count of every statement sent to the database (executemany: >1)."""
    sent: list[int] = []

    def before(*args: Any) -> None:
        parameters, executemany = args[3], args[5]
        sent.append(len(parameters) if executemany else 1)

    event.listen(engine, "before_cursor_execute", before)
    return sent


def content(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(connection.execute(select(values.c.key, values.c.value)).all())  # type: ignore[arg-type]


# (statement, parameters, key): inserts of three rows interleaved with updates of them.
WRITES: list[tuple[Any, dict[str, Any], str]] = [
    (_INSERT, {"key": "a", "value": 1}, "a"),
    (_INSERT, {"key": "b", "value": 2}, "b"),
    (_TIMES_TEN, {"k": "a"}, "a"),
    (_INSERT, {"key": "c", "value": 3}, "c"),
    (_TIMES_TEN, {"k": "b"}, "b"),
    (_PLUS_ONE, {"k": "a"}, "a"),
    (_TIMES_TEN, {"k": "a"}, "a"),
    (_PLUS_ONE, {"k": "c"}, "c"),
]


def write_all(connection: Connection, writes: Sequence[tuple[Any, dict[str, Any], str]]) -> None:
    for statement, parameters, key in writes:
        rows(connection).write(statement, parameters, key=key)


def test_a_batch_writes_what_one_at_a_time_writes_in_fewer_statements(engine: Engine) -> None:
    with engine.begin() as connection:
        write_all(connection, WRITES)  # no batch active: each at once
    one_at_a_time = content(engine)
    with engine.begin() as connection:
        connection.execute(values.delete())
    sent = counted(engine)
    with engine.begin() as connection, batching(connection) as buffer:
        write_all(connection, WRITES)
        assert sent == []  # buffered
        buffer.flush()
    # inserts, x10 of a and b, +1 of a and c, x10 of a: the second x10 of a may not join the
    # first (a's +1 runs between them).
    assert sent == [3, 2, 2, 1]
    # a: (1 * 10 + 1) * 10; b: 2 * 10; c: 3 + 1
    assert content(engine) == one_at_a_time == {"a": 110, "b": 20, "c": 4}


def test_a_write_without_a_key_runs_after_everything_buffered(engine: Engine) -> None:
    with engine.begin() as connection, batching(connection) as buffer:
        rows(connection).write(_INSERT, {"key": "a", "value": 1}, key="a")
        rows(connection).write(_TIMES_TEN, {"k": "a"}, key=None)
        assert content_in(connection) == {"a": 10}
        buffer.flush()


def content_in(connection: Connection) -> dict[str, int]:
    return dict(connection.execute(select(values.c.key, values.c.value)).all())  # type: ignore[arg-type]


def test_a_batch_left_unflushed_is_an_error(engine: Engine) -> None:
    with (
        pytest.raises(RuntimeError, match="unflushed"),
        engine.begin() as connection,
        batching(connection),
    ):
        rows(connection).write(_INSERT, {"key": "a", "value": 1}, key="a")


class Inserts:
    """Inserts each note as a key through the batch; a repeated note is refused by the
    database only when the buffered INSERTs are sent."""

    name = "rows_inserts"
    batched_writes = True

    @property
    def tables(self) -> Sequence[Table]:
        return [values]

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        rows(connection).write(_INSERT, {"key": event.event.note, "value": position}, key=position)


def test_a_write_the_database_refuses_parks_exactly_its_message(engine: Engine) -> None:
    notes = ["one", "two", "one", "three"]
    outcome = apply_batch(
        engine, Inserts(), CODEC, "S", [message(note) for note in notes], [1, 2, 3, 4]
    )
    assert content(engine) == {"one": 1, "two": 2, "three": 4}
    assert outcome.last_sequence == 4
    assert outcome.parked == [3]
    with engine.connect() as connection:
        (parked,) = list_parked(connection, consumers=["rows_inserts"])
    assert (parked.sequence, parked.reason) == (3, "failed")
    assert "IntegrityError" in parked.detail


class InsertsAtOnce(Inserts):
    """The same projection without `batched_writes`: its writes run as they are made."""

    batched_writes = False


def test_a_projection_that_does_not_opt_in_writes_at_once(engine: Engine) -> None:
    sent = counted(engine)
    apply_batch(engine, InsertsAtOnce(), CODEC, "S", [message("a"), message("b")], [1, 2])
    assert content(engine) == {"a": 1, "b": 2}
    assert 2 not in sent  # no executemany of the two inserts


def test_what_is_remembered_lasts_until_the_buffer_is_flushed_and_never_outside_a_batch(
    engine: Engine,
) -> None:
    with engine.begin() as connection:
        rows(connection).remember("a", 1)  # no batch: nothing is kept
        assert rows(connection).recall("a") is None
        with batching(connection) as buffer:
            rows(connection).write(_INSERT, {"key": "a", "value": 1}, key="a")
            rows(connection).remember("a", 1)
            assert rows(connection).recall("a") == 1
            buffer.flush()  # the database has it now
            assert rows(connection).recall("a") is None
            rows(connection).remember("a", 2)
            buffer.discard()  # rolled back: the writes and the memo go
            assert rows(connection).recall("a") is None
            buffer.flush()
        assert content_in(connection) == {"a": 1}


class Pairs(Inserts):
    """Each message carries two notes; both are inserted, with their message's position, except
    that a note "bad" raises after the first note's write was buffered."""

    name = "rows_pairs"

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        if event.event.note == "bad":
            raise ValueError("refused")
        rows(connection).write(_INSERT, {"key": event.event.note, "value": position}, key=position)


def test_a_message_refused_half_way_leaves_none_of_its_buffered_writes(engine: Engine) -> None:
    context = EnvelopeContext("T-1", "ticket", "c", datetime(2026, 1, 1, tzinfo=UTC))
    pair = [
        CODEC.encode([Closed(first), Closed(second)], context).SerializeToString()
        for first, second in (("a", "b"), ("c", "bad"), ("d", "e"))
    ]
    outcome = apply_batch(engine, Pairs(), CODEC, "S", pair, [1, 2, 3])
    assert outcome.parked == [2]
    # "c" was buffered before "bad" raised: it went with its message.
    assert content(engine) == {"a": 1, "b": 1, "d": 3, "e": 3}


kinds = Table(
    "rows_kinds",
    own,
    Column("key", String(20), primary_key=True),
    Column("n", Integer, nullable=False),
    Column("flag", Boolean, nullable=False),
    Column("state", String(20), nullable=False),
    Column("at", DateTime(timezone=True), nullable=True),
    Column("doc", JSON, nullable=True),
    Column("encoded", EncodedJSON, nullable=True),
    Column("note", String(20), nullable=False, default=""),
)
_K = kinds.c
_KINDS_INSERT = insert(kinds)
# Bound values, the statement's own constants (a literal flag and note, a CASE and its
# literals) and an expression of the row, as the ticket list's updates are built.
_KINDS_UPDATE = (
    update(kinds)
    .where(_K.key == bindparam("k"))
    .values(
        n=_K.n + bindparam("delta"),
        flag=True,
        note="",
        state=case((_K.state == "open", "busy"), else_=_K.state),
        at=bindparam("at"),
        encoded=bindparam("clocks"),
    )
)


def kinds_writes() -> list[tuple[Any, dict[str, Any], str]]:
    at = datetime(2026, 12, 3, 6, 30, 1, 250_000, tzinfo=UTC)
    writes: list[tuple[Any, dict[str, Any], str]] = []
    for number in range(6):
        key = f"k{number}"
        row = {
            "key": key,
            "n": number,
            "flag": number % 2 == 0,
            "state": "open" if number < 4 else "done",
            "at": at.replace(second=number) if number != 3 else None,
            "doc": {"number": number, "text": "é"} if number != 2 else None,
            "encoded": '[{"clock": "first_response"}]' if number % 2 else [{"n": number}],
            "note": "x",
        }
        writes.append((_KINDS_INSERT, row, key))
    for number in (0, 1, 2, 0, 5):
        key = f"k{number}"
        parameters = {"k": key, "delta": 10, "at": at.replace(minute=number), "clocks": "[]"}
        writes.append((_KINDS_UPDATE, parameters, key))
    return writes


def raw_kinds(engine: Engine) -> list[tuple[Any, ...]]:
    """The table as the DBAPI returns it (no SQLAlchemy type processing): the stored values."""
    with engine.connect() as connection:
        query = "SELECT key, n, flag, state, at, doc, encoded, note FROM rows_kinds ORDER BY key"
        return [tuple(row) for row in connection.exec_driver_sql(query)]


def test_executemany_stores_what_execute_stores_on_either_database(
    read_model_engine: Engine,
) -> None:
    """Groups of several rows go to the DBAPI with parameters built once per statement; the
    stored values (SQLite's datetime text, JSON text, booleans; PostgreSQL's types) are those
    of the same writes sent one at a time through `execute`."""
    engine = read_model_engine
    own.create_all(engine, tables=[kinds])
    writes = kinds_writes()
    with engine.begin() as connection:
        write_all(connection, writes)  # no batch: each through execute
    one_at_a_time = raw_kinds(engine)
    with engine.begin() as connection:
        connection.execute(kinds.delete())
    prepared: list[bool] = []

    def before(*args: Any) -> None:
        context, executemany = args[4], args[5]
        if executemany:
            prepared.append(context.compiled is None)  # exec_driver_sql: no compiled statement

    event.listen(engine, "before_cursor_execute", before)
    for _round in range(2):  # the second round reuses the plans of the first
        with engine.begin() as connection, batching(connection) as buffer:
            write_all(connection, writes)
            buffer.flush()
        assert raw_kinds(engine) == one_at_a_time
        with engine.begin() as connection:
            connection.execute(kinds.delete())
    # The inserts, then the updates (k0's second joins its group: nothing of k0 runs between),
    # per round, both through the prepared parameters (psycopg 3, like SQLite, sends an
    # INSERT without RETURNING as executemany; insertmanyvalues would be left to execute).
    assert prepared == [True, True] * 2
    assert one_at_a_time[0][1] == 20 and len(one_at_a_time) == 6


SQLITE_DATETIME = DateTime(timezone=True).dialect_impl(sqlite_dialect())
SQLITES_OWN = SQLITE_DATETIME.bind_processor(sqlite_dialect())


@given(
    at=st.datetimes(
        timezones=st.one_of(st.none(), st.just(UTC), st.timezones()),
        allow_imaginary=True,
    )
)
def test_the_faster_sqlite_datetime_text_is_sqlalchemys_own(at: datetime) -> None:
    """The replay's datetime binds on SQLite: the same text as the dialect's processor for any
    datetime, naive or aware, any year, with or without microseconds."""
    assert SQLITES_OWN is not None
    assert sqlite_datetime_text(SQLITES_OWN)(at) == SQLITES_OWN(at)


class _LaterDatetime(datetime):
    """A subclass: left to the dialect's processor."""


class _NoOffset(tzinfo):
    """A tzinfo whose offset is not one: isoformat raises, the dialect ignores the zone."""

    def utcoffset(self, dt: datetime | None) -> Any:
        return "8 hours"

    def dst(self, dt: datetime | None) -> None:
        return None

    def tzname(self, dt: datetime | None) -> str:
        return "odd"


def test_the_faster_sqlite_datetime_text_leaves_the_rest_to_the_dialect() -> None:
    assert SQLITES_OWN is not None
    faster = sqlite_datetime_text(SQLITES_OWN)
    odd = (
        None,
        date(2026, 12, 3),
        _LaterDatetime(2026, 12, 3, 8, 0, tzinfo=UTC),
        datetime(2026, 12, 3, 8, 0, 1, 5, tzinfo=_NoOffset()),
    )
    for value in odd:
        assert faster(value) == SQLITES_OWN(value)
    with pytest.raises(TypeError):
        faster("2026-12-03")
    # What rows' executemany binds a SQLite DateTime column with; not another dialect's.
    bind = _KINDS_UPDATE.compile().binds["at"]
    assert _faster(bind, sqlite_dialect(), SQLITES_OWN) is not SQLITES_OWN
    assert _faster(bind, postgresql_dialect(), SQLITES_OWN) is SQLITES_OWN
