"""The notifiers against real local receivers: what is signed is what is sent, webhooks carry
the trace, and only transient failures are retried (SMTP 4xx yes, 5xx never)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from careops_eventstore.nats_embedded import free_port
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from incident.domain import ContactKind, ContactPoint
from incident.notifiers import (
    IDEMPOTENCY_HEADER,
    RETRY_HEADER,
    FirstSends,
    Notification,
    Notifiers,
    NotifierSettings,
    sign,
)
from tests.receivers import HttpReceiver, MailReceiver, http_receiver, smtp_receiver

KEY = "notifier-test-key"
NOTE = Notification(
    notice_id="N-1",
    incident_id="I-1",
    action="trigger",
    title="Checkout down — 结账失败",  # non-ASCII: the bytes signed must be the bytes sent
    incident_type="outage",
    level="a",
    team_id="technical_support",
    member_id="alice",
    engagement="red",
    drill=False,
)


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    with http_receiver() as receiver:
        yield receiver


@pytest.fixture
def mail() -> Iterator[MailReceiver]:
    with smtp_receiver() as receiver:
        yield receiver


def notifiers(mail_port: int = 1) -> Notifiers:
    return Notifiers(
        NotifierSettings(
            webhook_signing_key=KEY, smtp_port=mail_port, backoff_seconds=0.01, timeout_seconds=5
        )
    )


async def test_the_webhook_signature_covers_exactly_the_bytes_sent(http: HttpReceiver) -> None:
    sender = notifiers()
    try:
        attempts, error = await sender.deliver(
            ContactPoint(ContactKind.WEBHOOK, http.url("/hook")), NOTE
        )
    finally:
        await sender.stop()
    assert (attempts, error) == (1, "")
    [post] = await asyncio.to_thread(http.wait_for, "/hook")
    timestamp = post.headers["x-careops-timestamp"]
    assert post.headers["x-careops-signature"] == sign(KEY, timestamp, post.body)
    assert json.loads(post.body) == NOTE.as_json()


async def test_a_webhook_carries_the_trace_of_its_delivery(http: HttpReceiver) -> None:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # a real provider, so span ids are valid
        trace.set_tracer_provider(TracerProvider())
    sender = notifiers()
    try:
        with trace.get_tracer(__name__).start_as_current_span("page") as span:
            await sender.deliver(ContactPoint(ContactKind.WEBHOOK, http.url("/traced")), NOTE)
    finally:
        await sender.stop()
    [post] = await asyncio.to_thread(http.wait_for, "/traced")
    version, trace_id, parent_id, _flags = post.headers["traceparent"].split("-")
    assert version == "00"
    assert trace_id == format(span.get_span_context().trace_id, "032x")
    assert parent_id != format(span.get_span_context().span_id, "016x")  # the delivery's span


async def test_an_smtp_4xx_is_retried(mail: MailReceiver) -> None:
    mail.replies = ["451 4.3.0 try again later", "421 4.7.0 busy"]
    sender = notifiers(mail.port)
    attempts, error = await sender.deliver(
        ContactPoint(ContactKind.EMAIL, "carol@example.test"), NOTE
    )
    assert (attempts, error) == (3, "")
    assert mail.refused == 2 and len(mail.messages) == 1


async def test_an_smtp_5xx_is_permanent_and_never_retried(mail: MailReceiver) -> None:
    mail.replies = ["550 5.1.1 no such mailbox", "250 OK would have come next"]
    sender = notifiers(mail.port)
    attempts, error = await sender.deliver(
        ContactPoint(ContactKind.EMAIL, "nobody@example.test"), NOTE
    )
    assert attempts == 1 and "550" in error
    assert mail.refused == 1 and mail.messages == []


async def test_an_unreachable_mail_server_is_retried_up_to_the_attempts() -> None:
    sender = notifiers(free_port())  # nothing listens there
    attempts, error = await sender.deliver(
        ContactPoint(ContactKind.EMAIL, "carol@example.test"), NOTE
    )
    assert attempts == 4 and error


async def test_an_http_5xx_is_retried_until_accepted(http: HttpReceiver) -> None:
    http.fail_first["/flaky"] = 2
    sender = notifiers()
    try:
        flaky = await sender.deliver(ContactPoint(ContactKind.SLACK, http.url("/flaky")), NOTE)
    finally:
        await sender.stop()
    assert flaky == (3, "")
    assert len(http.posts("/flaky")) == 3


async def test_a_webhook_resent_carries_the_same_idempotency_key_and_says_it_is_a_retry(
    http: HttpReceiver,
) -> None:
    http.fail_first["/retried"] = 1
    sender = notifiers()
    try:
        hook = ContactPoint(ContactKind.WEBHOOK, http.url("/retried"))
        assert await sender.deliver(hook, NOTE) == (2, "")  # an error, then sent again
        # The pager's message delivered again (its process was lost): sent again, as a retry.
        assert await sender.deliver(hook, replace(NOTE, retry=True)) == (1, "")
    finally:
        await sender.stop()
    posts = await asyncio.to_thread(http.wait_for, "/retried", 3)
    assert {post.headers[IDEMPOTENCY_HEADER.lower()] for post in posts} == {"N-1-webhook"}
    assert [post.headers.get(RETRY_HEADER.lower()) for post in posts] == [None, "1", "1"]
    assert {post.body for post in posts} == {posts[0].body}


async def test_a_pagerduty_retry_keeps_the_dedup_key(http: HttpReceiver) -> None:
    http.fail_first["/pd"] = 1
    sender = Notifiers(NotifierSettings(pagerduty_events_url=http.url("/pd"), backoff_seconds=0.01))
    try:
        assert await sender.deliver(ContactPoint(ContactKind.PAGERDUTY, "rk"), NOTE) == (2, "")
    finally:
        await sender.stop()
    posts = await asyncio.to_thread(http.wait_for, "/pd", 2)
    assert [p.json()["dedup_key"] for p in posts] == ["careops-I-1-technical_support"] * 2


async def test_mails_reuse_an_open_smtp_session_and_a_refused_one_is_not_reused(
    mail: MailReceiver,
) -> None:
    sender = notifiers(mail.port)
    carol = ContactPoint(ContactKind.EMAIL, "carol@example.test")
    try:
        assert await sender.deliver(carol, NOTE) == (1, "")
        assert await sender.deliver(carol, NOTE) == (1, "")
        mail.replies = ["451 4.3.0 try again later"]
        assert await sender.deliver(carol, NOTE) == (2, "")
        assert await sender.deliver(carol, NOTE) == (1, "")
    finally:
        await sender.stop()
    assert len(mail.messages) == 4 and mail.refused == 1
    first, second, refused, retried, after = mail.peers
    assert first == second == refused, "one session for the mails until one is refused"
    assert retried != refused and after == retried, "the refused session is closed, not reused"


async def test_other_channels_wait_while_a_first_send_is_in_flight() -> None:
    gate = FirstSends(max_wait=60)
    order: list[str] = []
    waiting = asyncio.Event()

    async def second_channel() -> None:
        waiting.set()
        await gate.behind()
        order.append("second")

    await gate.behind()  # no first send in flight: nothing to wait for
    with gate.first():
        task = asyncio.ensure_future(second_channel())
        await waiting.wait()  # it is now inside behind()
        assert not task.done()
        order.append("first")
    await task
    assert order == ["first", "second"]
