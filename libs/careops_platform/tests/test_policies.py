"""Policies as versioned data: revisions, labels, located errors, concurrency, history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace

import grpc
import pytest
import yaml
from careops_eventstore.memory import InMemoryEventStore
from careops_eventstore.model import StreamSpec

from careops_platform.errors import Aborted, InvalidArgument, NotFound
from careops_platform.policies import (
    PolicyBook,
    PolicyEndpoints,
    PolicyInvalid,
    PolicyKind,
    PutOutcome,
)

STREAM = StreamSpec("CAREOPS_TEST", ("careops.test.>",))
AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class LimitError(ValueError):
    pass


def parse_limits(text: str) -> dict[str, int]:
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise LimitError("policy: expected a mapping")
    limits = data.get("limits", {})
    for key, value in limits.items():
        if not isinstance(value, int) or value <= 0:
            raise LimitError(f"limits.{key}: must be a positive integer, got {value!r}")
    return {"version": data.get("version", ""), **limits}


KIND = PolicyKind("limits", parse_limits, lambda p: str(p["version"]), (LimitError,))


Request = SimpleNamespace  # any object with the fields of the context's request message


def doc(version: str, **limits: int) -> str:
    return yaml.safe_dump({"version": version, "limits": limits})


async def store() -> InMemoryEventStore:
    memory = InMemoryEventStore()
    await memory.ensure_stream(STREAM)
    return memory


async def book() -> PolicyBook[dict[str, int]]:
    return PolicyBook(await store(), STREAM, "careops.test.policy", KIND, clock=lambda: AT)


async def put(
    b: PolicyBook[dict[str, int]],
    document: str,
    *,
    author: str = "ops",
    cid: str = "",
    reason: str = "",
    apply_to_open: bool = False,
    expected_revision: int = 0,
) -> PutOutcome[dict[str, int]]:
    return await b.put(
        document,
        author=author,
        command_id=cid or document,
        reason=reason,
        apply_to_open=apply_to_open,
        expected_revision=expected_revision,
    )


async def test_each_put_is_a_revision_with_its_author_reason_and_time() -> None:
    b = await book()
    first = await put(b, doc("v1", email=4), reason="start")
    second = await put(b, doc("v2", email=2), author="lead", apply_to_open=True)
    history = await b.history(fresh=True)
    assert [(v.revision, v.version, v.author) for v in history.versions] == [
        (1, "v1", "ops"),
        (2, "v2", "lead"),
    ]
    assert history.versions[0].reason == "start" and history.versions[0].put_at == AT
    assert history.versions[1].apply_to_open and not history.versions[0].apply_to_open
    assert first.sequence < second.sequence
    version, policy = await b.current()
    assert version.revision == 2 and policy["email"] == 2
    assert (await b.labelled("v1"))[1]["email"] == 4  # type: ignore[index]


async def test_an_unchanged_document_appends_nothing() -> None:
    b = await book()
    await put(b, doc("v1", email=4))
    again = await put(b, "# same data, other layout\n" + doc("v1", email=4), cid="other")
    assert again.unchanged and again.sequence == 1
    assert len((await b.history(fresh=True)).versions) == 1


async def test_a_reused_label_is_refused_at_the_version_key() -> None:
    b = await book()
    await put(b, doc("v1", email=4))
    with pytest.raises(InvalidArgument) as refused:
        await put(b, doc("v1", email=3))
    assert [v.field for v in refused.value.violations] == ["document.version"]
    assert len((await b.history(fresh=True)).versions) == 1


async def test_an_invalid_document_is_located_and_changes_nothing() -> None:
    b = await book()
    with pytest.raises(PolicyInvalid) as refused:
        await put(b, doc("v1", email=-1))
    assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in refused.value.violations] == ["document.limits.email"]
    with pytest.raises(PolicyInvalid) as empty:
        await put(b, "  ")
    assert [v.field for v in empty.value.violations] == ["document"]
    with pytest.raises(PolicyInvalid) as unlabelled:
        await put(b, yaml.safe_dump({"limits": {"email": 1}}))
    assert [v.field for v in unlabelled.value.violations] == ["document.version"]
    assert (await b.history(fresh=True)).versions == ()
    with pytest.raises(NotFound):
        await b.current()


async def test_a_revert_to_an_earlier_document_may_keep_its_label() -> None:
    b = await book()
    await put(b, doc("v1", email=4))
    await put(b, doc("v2", email=3))
    reverted = await put(b, doc("v1", email=4), cid="revert", reason="back to v1")
    assert (reverted.version.revision, reverted.version.version) == (3, "v1")
    assert (await b.labelled("v1"))[1]["email"] == 4  # type: ignore[index]


async def test_an_edit_from_a_stale_revision_is_aborted() -> None:
    b = await book()
    await put(b, doc("v1", email=4))
    await put(b, doc("v2", email=3), expected_revision=1)
    with pytest.raises(Aborted, match="revision 2 by ops is in force"):
        await put(b, doc("v3", email=2), expected_revision=1)


async def test_seed_puts_revision_one_only_once() -> None:
    b = await book()
    assert await b.seed(doc("default", email=4)) is not None
    assert await b.seed(doc("default", email=9)) is None
    assert (await b.current())[1]["email"] == 4


async def test_another_replicas_put_is_seen_after_the_refresh_interval() -> None:
    log = await store()
    mine = PolicyBook(log, STREAM, "careops.test.policy", KIND, refresh_seconds=0)
    theirs = PolicyBook(log, STREAM, "careops.test.policy", KIND)
    await put(theirs, doc("v1", email=4))
    assert (await mine.current())[0].version == "v1"
    await put(theirs, doc("v2", email=1))
    assert (await mine.current())[0].version == "v2"


async def test_endpoints_page_the_history_newest_first() -> None:
    b = await book()
    for n in range(1, 6):
        await put(b, doc(f"v{n}", email=n))
    endpoints = PolicyEndpoints(b)
    page = await endpoints.list_versions(Request(page_size=2, before_revision=0), SimpleNamespace)
    assert [v.revision for v in page.versions] == [5, 4] and page.versions[0].current
    rest = await endpoints.list_versions(
        Request(page_size=10, before_revision=page.next_before_revision), SimpleNamespace
    )
    assert [v.revision for v in rest.versions] == [3, 2, 1] and rest.next_before_revision == 0
    got = await endpoints.get(Request(revision=0, version="v2"), SimpleNamespace)
    assert got.policy.revision == 2 and not got.policy.current
    with pytest.raises(NotFound):
        await endpoints.get(Request(revision=9, version=""), SimpleNamespace)
    with pytest.raises(InvalidArgument):
        await endpoints.list_versions(Request(page_size=501, before_revision=0), SimpleNamespace)


async def test_commands_that_find_the_book_stale_together_read_the_log_once() -> None:
    log = await store()
    await put(PolicyBook(log, STREAM, "careops.test.policy", KIND), doc("v1", email=4))
    reads = 0
    original = log.read_subject

    async def counted(**kwargs: object) -> object:
        nonlocal reads
        reads += 1
        return await original(**kwargs)  # type: ignore[arg-type]

    log.read_subject = counted  # type: ignore[method-assign,assignment]
    b = PolicyBook(log, STREAM, "careops.test.policy", KIND)
    await asyncio.gather(*(b.current() for _ in range(20)))
    assert reads == 1


async def test_in_force_is_the_default_until_a_revision_is_put() -> None:
    b = await book()
    assert await b.in_force({"email": 0}) == {"email": 0}
    await put(b, doc("v1", email=4))
    assert (await b.in_force({"email": 0}))["email"] == 4
