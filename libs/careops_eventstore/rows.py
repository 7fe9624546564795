"""A projection's row writes batched per kind: one `executemany` per statement, in order per row.

A projection writes through `rows(connection).write(statement, parameters, key=...)` instead of
`connection.execute`. Inside a batch (careops_eventstore.batches) the writes are buffered and
sent as one `executemany` per statement and parameter set — a page of 256 events then costs a
handful of statements instead of hundreds, and SQLAlchemy's per-statement work (the largest
share of a replay's CPU) is paid once per kind. Outside a batch (a test calling `apply`, a
reaction) `rows` writes at once.

Order is kept where it matters: writes that share a `key` (the row they touch, within the
statement's table) run in the order they were made; writes of different keys commute, so one
may join an earlier group of its kind. A projection that reads rows it wrote through the buffer
calls `flush()` first; a write without a key (`key=None`) flushes and runs at once.

A projection that reads a row back before it writes it again (the KPI facts read a ticket's row
on each of its events) can keep what it wrote: `remember(key, value)` and `recall(key)`. The
memo lives as long as the buffered writes: a flush (everything written is in the database
then) and a discard (a message rolled back) forget it, and outside a batch nothing is kept.

`EncodedJSON` is a JSON column a projection may write already encoded (a `str`), so a value it
can serialise faster than `json.dumps` of a built dict does not pay for both.
"""

from __future__ import annotations

import contextlib
import datetime
import typing
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import JSON, Connection, Dialect
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import TypeDecorator


class RowWriter(Protocol):
    """What a projection writes its rows through (see the module's docstring)."""

    def write(self, statement: Executable, parameters: Mapping[str, Any], *, key: Hashable) -> None:
        """Runs (or buffers) `statement` with `parameters`; `key` names the row it touches."""

    def write_all(
        self, statement: Executable, parameters: Sequence[Mapping[str, Any]], *, key: Hashable
    ) -> None:
        """`write` of each parameter set in order (at once: one executemany)."""

    def flush(self) -> None:
        """Runs every buffered write now."""

    def remember(self, key: Hashable, value: Any) -> None:
        """Keeps `value` (what the caller wrote for `key`) until the buffer is flushed."""

    def recall(self, key: Hashable) -> Any | None:
        """What was remembered for `key` since the last flush, or None."""


@dataclass
class _Group:
    statement: Executable
    parameters: list[Mapping[str, Any]]


@dataclass
class StatementBatch:
    """The buffered writes of one projection's batch (the batch runner owns and flushes it)."""

    connection: Connection
    _groups: list[_Group] = field(default_factory=list)
    # The group a key's last write joined, and the newest group of each kind.
    _last_of_key: dict[Hashable, int] = field(default_factory=dict)
    _newest_of_kind: dict[tuple[int, frozenset[str]], int] = field(default_factory=dict)
    _memo: dict[Hashable, Any] = field(default_factory=dict)

    def write(self, statement: Executable, parameters: Mapping[str, Any], *, key: Hashable) -> None:
        """Buffers the write into the newest group of its kind unless that group runs before
        this key's last write; then a new group starts."""
        if key is None:
            self.flush()
            self.connection.execute(statement, parameters)
            return
        row = (getattr(statement, "table", None), key)
        kind = (id(statement), frozenset(parameters))
        index = self._newest_of_kind.get(kind, -1)
        if index < self._last_of_key.get(row, -1) or index < 0:
            index = len(self._groups)
            self._groups.append(_Group(statement, []))
            self._newest_of_kind[kind] = index
        self._groups[index].parameters.append(parameters)
        self._last_of_key[row] = index

    def write_all(
        self, statement: Executable, parameters: Sequence[Mapping[str, Any]], *, key: Hashable
    ) -> None:
        for item in parameters:
            self.write(statement, item, key=key)

    def remember(self, key: Hashable, value: Any) -> None:
        self._memo[key] = value

    def recall(self, key: Hashable) -> Any | None:
        return self._memo.get(key)

    def discard(self) -> None:
        """Drops the buffered writes and the memo (their message was rolled back)."""
        self._groups = []
        self._last_of_key.clear()
        self._newest_of_kind.clear()
        self._memo.clear()

    def flush(self) -> None:
        """Runs the groups in order, each as one statement (executemany for several rows)."""
        groups = self._groups
        self.discard()
        for group in groups:
            parameters = group.parameters
            if len(parameters) == 1:
                self.connection.execute(group.statement, parameters[0])
            else:
                execute_many(self.connection, group.statement, parameters)


def execute_many(
    connection: Connection, statement: Executable, parameters: Sequence[Mapping[str, Any]]
) -> None:
    """`connection.execute(statement, parameters)` for parameter sets that all name the same
    keys, with the per-row work done once per statement: SQLAlchemy builds a dict of every bind
    per row (`construct_params`) and then looks up each value's type processor; here the
    statement is compiled as `execute` compiles it, each row's DBAPI parameters come from a
    function built once for those keys (the same processors, the statement's own constants
    processed once), and the DBAPI's `executemany` gets them through `exec_driver_sql` (the
    same cursor events and error wrapping). A statement this does not cover (Python-side
    defaults, expanding or literal-execute parameters, RETURNING, escaped names, a schema
    translate map, an INSERT of "insertmanyvalues") runs through `execute` as before."""
    plan = _plan(connection, statement, parameters[0])
    if plan is None:
        connection.execute(statement, list(parameters))
        return
    sql, make = plan
    connection.exec_driver_sql(sql, list(map(make, parameters)))


_Plan = tuple[str, Callable[[Mapping[str, Any]], Any]]
# (id of the statement, id of the dialect, keys) -> (statement, dialect, plan or None): the
# statement and dialect are held so that their ids stay theirs.
_PLANS: dict[tuple[int, int, frozenset[str]], tuple[Executable, Dialect, _Plan | None]] = {}
_MAX_PLANS = 1024


def _plan(connection: Connection, statement: Executable, row: Mapping[str, Any]) -> _Plan | None:
    if connection.get_execution_options().get("schema_translate_map"):
        return None
    dialect = connection.dialect
    keys = frozenset(row)
    cache_key = (id(statement), id(dialect), keys)
    found = _PLANS.get(cache_key)
    if found is not None and found[0] is statement and found[1] is dialect:
        return found[2]
    plan = _build_plan(dialect, statement, keys)
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[cache_key] = (statement, dialect, plan)
    return plan


def _build_plan(dialect: Dialect, statement: Executable, keys: frozenset[str]) -> _Plan | None:
    """The SQL and row function `execute_many` uses, or None where it does not apply."""
    if not isinstance(statement, ClauseElement):
        return None
    compiled = statement.compile(dialect=dialect, column_keys=sorted(keys), for_executemany=True)
    if not isinstance(compiled, SQLCompiler) or (
        compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.escaped_bind_names
        or compiled.effective_returning
        or compiled._render_postcompile
        # An INSERT the dialect sends as one statement of many VALUES (psycopg2's, not psycopg
        # 3's without RETURNING): one statement for the server, which executemany is not.
        or compiled._insertmanyvalues is not None
        or compiled.schema_translate_map
        or (compiled._collect_params and compiled._collected_params)
    ):
        return None
    processors = compiled._bind_processors
    names: dict[str, Any] = {}
    # Where each bind's value comes from, as construct_params decides it: the row's key (the
    # bind's key, else its name), or the statement's own value.
    source: dict[str, str] = {}
    for number, (bind, name) in enumerate(compiled.bind_names.items()):
        processor = _faster(
            bind, dialect, typing.cast(Callable[[Any], Any] | None, processors.get(name))
        )
        if bind.key in keys or name in keys:
            value = f"r[{(bind.key if bind.key in keys else name)!r}]"
            if processor is not None:
                names[f"p{number}"] = processor
                value = f"p{number}({value})"
        elif bind.required or bind.callable:
            return None  # execute raises for the missing value, or calls it per row
        else:
            names[f"c{number}"] = processor(bind.value) if processor else bind.value
            value = f"c{number}"
        source[name] = value
    if compiled.positional:
        if dialect.execute_sequence_format is not tuple or compiled.positiontup is None:
            return None
        body = "(" + "".join(f"{source[name]}, " for name in compiled.positiontup) + ")"
    else:
        body = "{" + ", ".join(f"{name!r}: {value}" for name, value in source.items()) + "}"
    exec(f"def make(r):\n    return {body}\n", names)  # noqa: S102 - names and keys only
    return compiled.string, names["make"]


def _faster(
    bind: BindParameter[Any], dialect: Dialect, processor: Callable[[Any], Any] | None
) -> Callable[[Any], Any] | None:
    """The bind's processor, or one that returns the same values faster: SQLite's datetime
    text, built from a dict and `%` formatting per value, was most of a replay's parameter
    building (docs/benchmarks.md §16, session 28)."""
    if processor is None:
        return None
    impl = bind.type.dialect_impl(dialect)
    if type(impl) is sqlite.DATETIME and impl._storage_format == sqlite.DATETIME._storage_format:
        return sqlite_datetime_text(processor)
    return processor


def sqlite_datetime_text(fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """SQLite's DATETIME bind processor of the default storage format for a `datetime`
    ("YYYY-MM-DD HH:MM:SS.ffffff" of its own fields: an aware one's offset is dropped, not
    applied, as SQLAlchemy drops it); anything else (None, a date, a subclass) through
    `fallback`, the dialect's own processor."""
    exact = datetime.datetime

    def process(value: Any) -> Any:
        if type(value) is not exact:
            return fallback(value)
        try:
            # The first 26 characters are the fields; an offset, if any, follows them.
            return value.isoformat(" ", "microseconds")[:26]
        except (TypeError, ValueError):  # a tzinfo whose utcoffset is not one
            return fallback(value)

    return process


@dataclass(frozen=True)
class _Immediate:
    """Writes at once (no batch active for this connection)."""

    connection: Connection

    def write(self, statement: Executable, parameters: Mapping[str, Any], *, key: Hashable) -> None:
        self.connection.execute(statement, parameters)

    def write_all(
        self, statement: Executable, parameters: Sequence[Mapping[str, Any]], *, key: Hashable
    ) -> None:
        self.connection.execute(statement, list(parameters))

    def flush(self) -> None:
        return None

    def remember(self, key: Hashable, value: Any) -> None:
        return None

    def recall(self, key: Hashable) -> Any | None:
        return None


_ACTIVE: ContextVar[StatementBatch | None] = ContextVar("careops_statement_batch", default=None)


def rows(connection: Connection) -> RowWriter:
    """The writer for `connection`: the active batch's buffer, or one that writes at once."""
    active = _ACTIVE.get()
    if active is not None and active.connection is connection:
        return active
    return _Immediate(connection)


@contextlib.contextmanager
def batching(connection: Connection) -> Iterator[StatementBatch]:
    """Buffers the writes made through `rows(connection)` while active. The caller flushes
    (a write left unflushed when the block ends is dropped with an error)."""
    batch = StatementBatch(connection)
    token = _ACTIVE.set(batch)
    try:
        yield batch
    finally:
        _ACTIVE.reset(token)
    if batch._groups:
        raise RuntimeError("statement batch ended with unflushed writes")


class EncodedJSON(TypeDecorator[Any]):
    """A JSON column (the same DDL, read back decoded as JSON is) that also takes its value
    encoded: a `str` is written as the JSON text it is, anything else is encoded as JSON's own
    bind processing does. Its values are never JSON strings themselves (a `str` is the text)."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        # Replaces TypeDecorator's (process_bind_param, then the impl's processor): the impl's
        # processor is exactly what an encoded value must skip.
        encode = self.impl_instance.bind_processor(dialect)
        if encode is None:
            return None

        def process(value: Any) -> Any:
            return value if isinstance(value, str) else encode(value)

        return process
