"""Policies as versioned data (issue 13, docs/policies.md): one way for every context.

An operator's policy (an SLA policy with its calendars, risk weights and thresholds, quality
teams) is a YAML document. A context keeps each kind it owns as one aggregate on its own stream
(subject careops.<context>.policy.<kind>): each Put appends `PolicyVersionPut`, a new revision
with its author, reason and whether it also applies to work in progress. The document's own
`version:` label is what every decision records (EventEnvelope.policy_versions), so it must be
new for the kind; a document equal to the one in force appends nothing.

A context declares a `PolicyKind` (how to parse and validate a document, raising an error whose
message starts with the offending key) and reads and changes its policy through a `PolicyBook`;
`PolicyEndpoints` serves the Put/Get/ListVersions RPCs of one kind for its servicer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

import yaml
from careops.common.v1 import policy_pb2
from careops_eventstore.aggregates import AggregateRepository, CommandExecutor, Loaded
from careops_eventstore.application import aggregate_kind, utc_now
from careops_eventstore.codec import EnvelopeContext, EventCodec, to_timestamp
from careops_eventstore.model import EventStore, StreamSpec

from careops_platform.errors import (
    Aborted,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from careops_platform.requests import actor, command_id

T = TypeVar("T")
M = TypeVar("M")

AGGREGATE_TYPE = "policy"
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_REASON = 500
MAX_VERSION = 64
MAX_REVISIONS = 10_000
DEFAULT_PAGE = 50
MAX_PAGE = 500
# A change put through another replica applies here within this (the book re-reads its tail).
REFRESH_SECONDS = 1.0


@dataclass(frozen=True)
class PolicyVersionPut:
    """The event of one Put (careops.common.v1.PolicyVersionPut)."""

    kind: str
    revision: int
    version: str
    document: str
    author: str
    reason: str = ""
    apply_to_open: bool = False


@dataclass(frozen=True)
class PolicyVersion:
    """One revision of a policy document, as put at `put_at`."""

    kind: str
    revision: int
    version: str
    document: str
    author: str
    reason: str
    apply_to_open: bool
    put_at: datetime


@dataclass(frozen=True)
class PolicyHistory:
    """Every revision of one policy kind, oldest first; the last is the one in force."""

    kind: str
    versions: tuple[PolicyVersion, ...] = ()

    @property
    def current(self) -> PolicyVersion | None:
        return self.versions[-1] if self.versions else None

    def revision(self, number: int) -> PolicyVersion | None:
        """Returns revision `number` (1-based), or None."""
        return self.versions[number - 1] if 0 < number <= len(self.versions) else None

    def labelled(self, version: str) -> PolicyVersion | None:
        """Returns the revision whose `version` label is `version`, or None."""
        return next((v for v in self.versions if v.version == version), None)


def evolve_history(state: PolicyHistory, event: Any, at: datetime) -> PolicyHistory:
    """Appends the revision `event` put at `at`."""
    if not isinstance(event, PolicyVersionPut):
        return state
    version = PolicyVersion(
        kind=event.kind,
        revision=event.revision,
        version=event.version,
        document=event.document,
        author=event.author,
        reason=event.reason,
        apply_to_open=event.apply_to_open,
        put_at=at,
    )
    return replace(state, versions=(*state.versions, version))


CODEC = EventCodec({PolicyVersionPut: policy_pb2.PolicyVersionPut})
TYPE_NAME = CODEC.type_name(PolicyVersionPut("", 0, "", "", ""))


class PolicyInvalid(InvalidArgument):
    """A document is not a valid policy of its kind; its violations locate what is wrong."""


@dataclass(frozen=True)
class PolicyKind(Generic[T]):
    """How a context reads one kind of policy document.

    `parse` turns the YAML text into the policy (raising `errors` with a message that starts
    with the offending key, e.g. "channels.email.first_response: …"); `version_of` returns the
    policy's `version:` label.
    """

    name: str
    parse: Callable[[str], T]
    version_of: Callable[[T], str]
    errors: tuple[type[Exception], ...] = (ValueError,)

    def check(self, document: str, *, field_name: str = "document") -> T:
        """Returns the parsed policy, or raises PolicyInvalid locating the error in the YAML."""
        size = len(document.encode("utf-8"))
        if not document.strip():
            raise _invalid(field_name, "required: the policy document (YAML)")
        if size > MAX_DOCUMENT_BYTES:
            raise _invalid(
                field_name, f"at most {MAX_DOCUMENT_BYTES // 1024} KiB, got {size:,} bytes"
            )
        try:
            policy = self.parse(document)
        except self.errors as exc:
            key, _, description = str(exc).partition(": ")
            if not description:
                key, description = "", str(exc)
            path = f"{field_name}.{key}" if key and " " not in key else field_name
            raise _invalid(path, description if path != field_name else str(exc)) from exc
        label = self.version_of(policy)
        if not label or len(label) > MAX_VERSION:
            raise _invalid(f"{field_name}.version", f"required, 1..{MAX_VERSION} characters")
        return policy


def _invalid(path: str, description: str) -> PolicyInvalid:
    return PolicyInvalid(f"{path}: {description}", [FieldViolation(path, description)])


@dataclass(frozen=True)
class PutOutcome(Generic[T]):
    """The revision in force after a Put, its policy and the sequence it was appended at."""

    version: PolicyVersion
    policy: T
    sequence: int
    unchanged: bool


def same_document(left: str, right: str) -> bool:
    """True when two YAML documents hold the same data (comments and layout aside)."""
    try:
        return bool(yaml.safe_load(left) == yaml.safe_load(right))
    except yaml.YAMLError:
        return left == right


def decide_put(
    history: PolicyHistory,
    document: str,
    label: str,
    *,
    author: str,
    reason: str,
    apply_to_open: bool,
    expected_revision: int,
) -> list[PolicyVersionPut]:
    """The revision a Put appends (none when the document equals the one in force)."""
    current = history.current
    in_force = current.revision if current else 0
    if expected_revision and expected_revision != in_force:
        by = f" by {current.author}" if current else ""
        raise Aborted(
            f"the {history.kind} policy changed since revision {expected_revision}: revision"
            f" {in_force}{by} is in force; edit that one"
        )
    if len(reason) > MAX_REASON:
        raise InvalidArgument(
            f"reason: at most {MAX_REASON} characters",
            [FieldViolation("reason", f"at most {MAX_REASON} characters")],
        )
    if current and same_document(current.document, document):
        return []
    used = history.labelled(label)
    # A label names one content: reusing it is refused unless the document is that revision's
    # (a revert to it), so what a decision records never has two meanings.
    if used is not None and not same_document(used.document, document):
        raise InvalidArgument(
            f"document.version: {label!r} is already revision {used.revision}'s; name this"
            " version anew (every decision records it)",
            [
                FieldViolation(
                    "document.version", f"{label!r} is already revision {used.revision}'s"
                )
            ],
        )
    if len(history.versions) >= MAX_REVISIONS:
        raise InvalidArgument(
            f"the {history.kind} policy has {MAX_REVISIONS:,} revisions, the most it keeps",
            [FieldViolation("document", "too many revisions")],
        )
    return [
        PolicyVersionPut(
            kind=history.kind,
            revision=in_force + 1,
            version=label,
            document=document,
            author=author,
            reason=reason,
            apply_to_open=apply_to_open,
        )
    ]


class PolicyBook(Generic[T]):
    """One policy kind of a context, on the context's stream: read, parse once, put.

    The revision in force is re-read from the log at most every REFRESH_SECONDS (a Put through
    this book applies at once; one through another replica within that), so a command's hot
    path costs a clock read.
    """

    def __init__(
        self,
        store: EventStore,
        stream: StreamSpec,
        subject_prefix: str,
        kind: PolicyKind[T],
        *,
        clock: Callable[[], datetime] = utc_now,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self.kind = kind
        self.clock = clock
        self._repository: AggregateRepository[PolicyHistory] = AggregateRepository(
            store,
            aggregate_kind(
                stream,
                subject_prefix,
                AGGREGATE_TYPE,
                initial=lambda _id: PolicyHistory(kind.name),
                evolve=evolve_history,
                codec=CODEC,
            ),
            cache_size=4,
        )
        self._executor = CommandExecutor(self._repository)
        self._parsed: dict[int, T] = {}  # by revision
        self._refresh_seconds = refresh_seconds
        self._read_at = -refresh_seconds
        self._loaded: Loaded[PolicyHistory] | None = None
        self._lock = asyncio.Lock()

    @property
    def subject(self) -> str:
        """The subject this kind's revisions are appended under."""
        return self._repository.kind.subject(self.kind.name)

    async def history(self, *, fresh: bool = False) -> PolicyHistory:
        """Every revision, oldest first (re-read from the log when stale or `fresh`)."""
        return (await self._load(fresh=fresh)).state

    async def _load(self, *, fresh: bool = False) -> Loaded[PolicyHistory]:
        if fresh or self._stale():
            async with self._lock:
                # Commands that found it stale together wait here: the first re-reads it.
                if fresh or self._stale():
                    now = time.monotonic()
                    self._loaded = await self._repository.load(self.kind.name, refresh=True)
                    self._read_at = now
        assert self._loaded is not None
        return self._loaded

    def _stale(self) -> bool:
        return self._loaded is None or time.monotonic() - self._read_at >= self._refresh_seconds

    async def in_force(self, default: T) -> T:
        """The policy in force, or `default` while none was ever put (a context's settings
        before its seed; a book of another context's stream not yet written)."""
        current = (await self.history()).current
        return default if current is None else self.parsed(current)

    async def current(self, *, fresh: bool = False) -> tuple[PolicyVersion, T]:
        """The revision in force and its policy; NotFound when none was ever put."""
        current = (await self.history(fresh=fresh)).current
        if current is None:
            raise NotFound(f"no {self.kind.name} policy has been put yet")
        return current, self.parsed(current)

    async def labelled(self, version: str) -> tuple[PolicyVersion, T] | None:
        """The revision labelled `version` and its policy (the log re-read on a miss), or None."""
        found = (await self.history()).labelled(version)
        if found is None:
            found = (await self.history(fresh=True)).labelled(version)
        return (found, self.parsed(found)) if found else None

    async def revision(self, number: int) -> tuple[PolicyVersion, T]:
        """Revision `number` and its policy; NotFound when there is none."""
        found = (await self.history()).revision(number)
        if found is None:
            found = (await self.history(fresh=True)).revision(number)
        if found is None:
            raise NotFound(f"the {self.kind.name} policy has no revision {number}")
        return found, self.parsed(found)

    def parsed(self, version: PolicyVersion) -> T:
        """The policy of a revision (parsed once; a revision on the log was valid when put)."""
        cached = self._parsed.get(version.revision)
        if cached is None:
            cached = self._parsed[version.revision] = self.kind.parse(version.document)
        return cached

    def check(self, document: str, *, field_name: str = "document") -> T:
        """Parses a draft (e.g. for a what-if) without putting it; PolicyInvalid locates errors."""
        return self.kind.check(document, field_name=field_name)

    async def put(
        self,
        document: str,
        *,
        author: str,
        command_id: str,
        reason: str = "",
        apply_to_open: bool = False,
        expected_revision: int = 0,
    ) -> PutOutcome[T]:
        """Validates and appends a new revision (nothing when equal to the one in force)."""
        policy = self.kind.check(document)
        label = self.kind.version_of(policy)
        context = EnvelopeContext(
            aggregate_id=self.kind.name,
            aggregate_type=AGGREGATE_TYPE,
            command_id=command_id,
            occurred_at=self.clock(),
            actor=author,
            policy_versions={self.kind.name: label},
        )
        result = await self._executor.execute(
            aggregate_id=self.kind.name,
            decide=lambda history: decide_put(
                history,
                document,
                label,
                author=author,
                reason=reason,
                apply_to_open=apply_to_open,
                expected_revision=expected_revision,
            ),
            context=context,
        )
        self._loaded = await self._repository.load(self.kind.name)
        self._read_at = time.monotonic()
        current = result.state.current
        assert current is not None
        return PutOutcome(current, self.parsed(current), result.sequence, not result.events)

    async def seed(self, document: str, *, author: str = "config") -> PutOutcome[T] | None:
        """Puts `document` as revision 1 when the kind has none yet (a start's defaults);
        the command id is fixed, so replicas starting together append it once."""
        if (await self.history(fresh=True)).current is not None:
            return None
        return await self.put(document, author=author, command_id=f"policy-seed-{self.kind.name}")


def version_to_proto(version: PolicyVersion, *, current: bool) -> policy_pb2.PolicyVersion:
    """Returns one revision as careops.common.v1.PolicyVersion."""
    return policy_pb2.PolicyVersion(
        kind=version.kind,
        revision=version.revision,
        version=version.version,
        document=version.document,
        author=version.author,
        reason=version.reason,
        apply_to_open=version.apply_to_open,
        put_at=to_timestamp(version.put_at),
        current=current,
    )


class PolicyEndpoints(Generic[T]):
    """The Put/Get/List-versions RPCs of one policy kind, for a servicer to delegate to.

    Each context's RPCs have their own request and response messages with the fields listed in
    proto/careops/common/v1/policy.proto; these methods read those fields and fill the given
    response type. `put` may be the context's own use case (e.g. ticketing re-applies an SLA
    policy to open tickets after the append); it defaults to the book's.
    """

    def __init__(self, book: PolicyBook[T], *, put: Callable[..., Any] | None = None) -> None:
        self.book = book
        self._put = put or book.put

    async def put(self, request: Any, response: Callable[..., M]) -> M:
        """Puts `request.document`; returns `response(policy, sequence, unchanged)`."""
        outcome: PutOutcome[T] = await self._put(
            request.document,
            author=actor(),
            command_id=command_id(),
            reason=request.reason,
            apply_to_open=request.apply_to_open,
            expected_revision=request.expected_revision,
        )
        return response(
            policy=version_to_proto(outcome.version, current=True),
            sequence=outcome.sequence,
            unchanged=outcome.unchanged,
        )

    async def get(self, request: Any, response: Callable[..., M]) -> M:
        """Returns `response(policy)`: by revision, by version label, or the one in force."""
        if request.revision and request.version:
            raise InvalidArgument(
                "give revision or version, not both",
                [FieldViolation("version", "set either revision or version")],
            )
        if request.revision:
            found, _ = await self.book.revision(request.revision)
        elif request.version:
            labelled = await self.book.labelled(request.version)
            if labelled is None:
                raise NotFound(
                    f"the {self.book.kind.name} policy has no version {request.version!r}"
                )
            found = labelled[0]
        else:
            found, _ = await self.book.current()
        current = (await self.book.history()).current
        return response(policy=version_to_proto(found, current=found == current))

    async def list_versions(self, request: Any, response: Callable[..., M]) -> M:
        """Returns `response(versions, next_before_revision)`: a page, newest first."""
        if request.page_size > MAX_PAGE:
            raise InvalidArgument(
                f"page_size: at most {MAX_PAGE}",
                [FieldViolation("page_size", f"at most {MAX_PAGE}")],
            )
        size = request.page_size or DEFAULT_PAGE
        history = await self.book.history(fresh=True)
        newest_first = [
            v
            for v in reversed(history.versions)
            if not request.before_revision or v.revision < request.before_revision
        ]
        page = newest_first[:size]
        more = len(newest_first) > size
        current = history.current
        return response(
            versions=[version_to_proto(v, current=v == current) for v in page],
            next_before_revision=page[-1].revision if more and page else 0,
        )
