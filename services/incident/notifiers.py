"""Notification channels: signed webhook, Slack, PagerDuty Events v2, e-mail; one retry policy.

Sends are coroutines (aiohttp, aiosmtplib; SMTP sessions to the relay are kept open between
mails). Each channel kind has its own HTTP connection pool,
so one slow or failing channel never delays another: a Slack endpoint that hangs until its
timeout occupies Slack's connections, never the webhook's. Every delivery is a client span, and
webhooks carry its W3C `traceparent`, so the receiver can continue the incident's trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import Message
from typing import Any

import aiohttp
import aiosmtplib
from careops_platform.collectors import preinitialise
from careops_platform.mail import plain_message, smtp_retryable
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from prometheus_client import Histogram

from incident.domain import ContactKind, ContactPoint

SIGNATURE_HEADER = "X-CareOps-Signature"
TIMESTAMP_HEADER = "X-CareOps-Timestamp"
# The same on every send of one notice over one channel: receivers drop duplicates by it.
IDEMPOTENCY_HEADER = "Idempotency-Key"
# "1" on a send that may repeat an earlier one (a retry after an error, or a page sent again
# after the process delivering it was lost before recording the outcome).
RETRY_HEADER = "X-CareOps-Retry"
SEVERITY = {"a": "critical", "b": "error", "c": "warning"}

tracer = trace.get_tracer(__name__)

DELIVERY_SECONDS = Histogram(
    "careops_notification_delivery_duration_seconds",
    "Time to deliver one notification including retries, by channel kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
preinitialise(DELIVERY_SECONDS, ContactKind)


class DeliveryError(Exception):
    """A send failed; `retryable` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Notification:
    """What a page or notice says, independent of the channel."""

    notice_id: str
    incident_id: str
    action: str  # trigger | acknowledge | resolve | inform
    title: str
    incident_type: str
    level: str
    team_id: str
    member_id: str
    engagement: str
    drill: bool
    ack_due_at: datetime | None = None
    # The send may repeat an earlier one (the message was delivered to the pager before).
    retry: bool = False

    def summary(self) -> str:
        drill = "[DRILL] " if self.drill else ""
        verb = {"inform": "FYI", "acknowledge": "ACKED", "resolve": "RESOLVED"}.get(
            self.action, "PAGE"
        )
        return (
            f"{drill}{verb} level {self.level.upper()} {self.incident_type}: {self.title} "
            f"({self.team_id}, {self.engagement})"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "notice_id": self.notice_id,
            "incident_id": self.incident_id,
            "action": self.action,
            "title": self.title,
            "type": self.incident_type,
            "level": self.level.upper(),
            "team_id": self.team_id,
            "member_id": self.member_id,
            "engagement": self.engagement,
            "drill": self.drill,
            "ack_due_at": self.ack_due_at.isoformat() if self.ack_due_at else None,
        }


@dataclass(frozen=True)
class NotifierSettings:
    webhook_signing_key: str = ""
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    pagerduty_change_url: str = "https://events.pagerduty.com/v2/change/enqueue"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_sender: str = "careops@localhost"
    timeout_seconds: float = 5.0
    attempts: int = 4
    backoff_seconds: float = 0.2
    connections_per_channel: int = 32


def sign(key: str, timestamp: str, body: bytes) -> str:
    """Returns the webhook signature: hex HMAC-SHA256 over "<timestamp>.<body>"."""
    mac = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    """Returns the JSON body of a post: the one serialization that is signed and sent."""
    return json.dumps(payload).encode()


def slack_message(note: Notification) -> dict[str, Any]:
    """Returns the Slack incoming-webhook message of a notification."""
    return {
        "text": note.summary(),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{note.summary()}*"}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"incident `{note.incident_id}`"},
                    {"type": "mrkdwn", "text": f"page `{note.notice_id}`"},
                ],
            },
        ],
    }


def pagerduty_event(routing_key: str, note: Notification) -> dict[str, Any]:
    """Returns the Events API v2 alert event: a page triggers (or acknowledges, resolves) the
    team's alert, one per incident and team by its dedup_key."""
    action = note.action if note.action in ("acknowledge", "resolve") else "trigger"
    payload: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": f"careops-{note.incident_id}-{note.team_id}",
    }
    if action == "trigger":
        payload["payload"] = {
            "summary": note.summary(),
            "source": "careops",
            "severity": SEVERITY.get(note.level, "warning") if not note.drill else "info",
            "component": note.team_id,
            "group": note.incident_type,
            "class": "drill" if note.drill else "incident",
            "custom_details": note.as_json(),
        }
    return payload


def pagerduty_change(routing_key: str, note: Notification) -> dict[str, Any]:
    """Returns the Events API v2 change event of an FYI, which never opens an incident nor
    notifies anyone."""
    return {
        "routing_key": routing_key,
        "payload": {
            "summary": note.summary(),
            "source": "careops",
            "custom_details": note.as_json(),
        },
    }


class FirstSends:
    """First sends go first: while any notice's first channel is being tried, the notices'
    further channels wait before their first attempt (at most `max_wait` seconds, so they
    never starve). Under a burst every notice reaches its first contact point before the
    process spends its CPU on secondary channels, retries (after their backoff) and the
    records of outcomes (docs/benchmarks.md §6)."""

    def __init__(self, max_wait: float = 1.0) -> None:
        self.max_wait = max_wait
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def first(self) -> Iterator[None]:
        self._active += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._active -= 1
            if not self._active:
                self._idle.set()

    async def behind(self) -> None:
        """Waits until no first send is in flight (or `max_wait`)."""
        if self._active:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self.max_wait)


class Notifiers:
    """Sends notifications to contact points, with one retry policy for every channel."""

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings
        self._sessions: dict[ContactKind, aiohttp.ClientSession] = {}
        self._local_hostname: str | None = None
        # SMTP sessions open to the relay, idle between mails (at most connections_per_channel):
        # a mail reuses one instead of paying connect, greeting and EHLO each time.
        self._idle_smtp: list[aiosmtplib.SMTP] = []
        self.first_sends = FirstSends()

    async def stop(self) -> None:
        """Closes the channels' connection pools."""
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()
        idle, self._idle_smtp = self._idle_smtp, []
        for client in idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await client.quit()
            client.close()

    def _session(self, kind: ContactKind) -> aiohttp.ClientSession:
        """Returns the channel's own session, opened on first use (it needs a running loop)."""
        session = self._sessions.get(kind)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.settings.connections_per_channel),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
            )
            self._sessions[kind] = session
        return session

    async def _post(
        self, kind: ContactKind, url: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        try:
            async with self._session(kind).post(
                url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
            ) as response:
                await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise DeliveryError(f"unreachable: {exc!r}", retryable=True) from exc
        if response.status >= 400:
            retryable = response.status >= 500 or response.status == 429
            raise DeliveryError(f"HTTP {response.status}", retryable=retryable)

    async def _webhook(self, address: str, note: Notification) -> None:
        body = encode(note.as_json())
        timestamp = str(int(time.time()))
        headers = {
            TIMESTAMP_HEADER: timestamp,
            IDEMPOTENCY_HEADER: f"{note.notice_id}-{ContactKind.WEBHOOK.value}",
        }
        if note.retry:
            headers[RETRY_HEADER] = "1"
        if self.settings.webhook_signing_key:
            headers[SIGNATURE_HEADER] = sign(self.settings.webhook_signing_key, timestamp, body)
        propagate.inject(headers)  # traceparent: the receiver continues the trace
        await self._post(ContactKind.WEBHOOK, address, body, headers)

    async def _slack(self, address: str, note: Notification) -> None:
        await self._post(ContactKind.SLACK, address, encode(slack_message(note)))

    async def _pagerduty(self, routing_key: str, note: Notification) -> None:
        if note.action == "inform":
            url, payload = self.settings.pagerduty_change_url, pagerduty_change(routing_key, note)
        else:
            url, payload = self.settings.pagerduty_events_url, pagerduty_event(routing_key, note)
        await self._post(ContactKind.PAGERDUTY, url, encode(payload))

    async def _email(self, address: str, note: Notification) -> None:
        message = plain_message(
            self.settings.smtp_sender,
            address,
            note.summary(),
            json.dumps(note.as_json(), indent=2),
            {RETRY_HEADER: "1"} if note.retry else None,
        )
        try:
            await self._send_mail(message)
        except aiosmtplib.SMTPException as exc:
            raise DeliveryError(f"SMTP: {exc}", retryable=smtp_retryable(exc)) from exc
        except (OSError, TimeoutError) as exc:
            raise DeliveryError(f"unreachable: {exc!r}", retryable=True) from exc

    async def _send_mail(self, message: Message) -> None:
        """Sends one mail on an idle session to the relay, or a new one; the session goes back
        to the idle ones only after a mail it carried was accepted (after any error it is
        closed: its state is unknown). A session the relay closed while idle is not used."""
        client = None
        while self._idle_smtp and client is None:
            candidate = self._idle_smtp.pop()
            if candidate.is_connected:
                client = candidate
            else:
                candidate.close()
        if client is None:
            if self._local_hostname is None:
                # Looked up once: aiosmtplib would otherwise resolve it on a thread every time.
                self._local_hostname = await asyncio.to_thread(socket.getfqdn)
            client = aiosmtplib.SMTP(
                hostname=self.settings.smtp_host,
                port=self.settings.smtp_port,
                local_hostname=self._local_hostname,
                timeout=self.settings.timeout_seconds,
                start_tls=False,  # plain SMTP to the configured relay, as before
            )
        try:
            if not client.is_connected:
                await client.connect()
            await client.send_message(message)
        except BaseException:
            client.close()
            raise
        if len(self._idle_smtp) < self.settings.connections_per_channel:
            self._idle_smtp.append(client)
        else:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await client.quit()
            client.close()

    async def send_once(self, contact: ContactPoint, note: Notification) -> None:
        """Sends one notification once; raises DeliveryError."""
        senders = {
            ContactKind.WEBHOOK: self._webhook,
            ContactKind.SLACK: self._slack,
            ContactKind.PAGERDUTY: self._pagerduty,
            ContactKind.EMAIL: self._email,
        }
        assert contact.kind is not None
        await senders[contact.kind](contact.address, note)

    async def deliver(
        self, contact: ContactPoint, note: Notification, *, first: bool = True
    ) -> tuple[int, str]:
        """Sends with retries; returns (attempts, error or ""). Retries follow retryable
        errors only, after an exponential backoff (backoff, 2 × backoff, …), at most
        `attempts` sends in all. A notice's `first` channel goes ahead of the other channels'
        first attempts (FirstSends). A plain loop, not tenacity's: its per-send bookkeeping
        was ~5% of the pager's CPU under a burst (docs/benchmarks.md §6)."""
        assert contact.kind is not None
        started = time.perf_counter()
        attempt, error = 0, ""
        with tracer.start_as_current_span(
            f"notify {contact.kind.value}",
            kind=SpanKind.CLIENT,
            attributes={"careops.notice_id": note.notice_id, "careops.action": note.action},
        ) as span:
            for attempt in range(1, max(1, self.settings.attempts) + 1):
                if attempt > 1:
                    await asyncio.sleep(self.settings.backoff_seconds * 2 ** (attempt - 2))
                ahead = first and attempt == 1
                if not ahead:
                    await self.first_sends.behind()
                try:
                    with self.first_sends.first() if ahead else contextlib.nullcontext():
                        # Every attempt after the first may repeat it: it says so.
                        again = attempt > 1 and not note.retry
                        await self.send_once(contact, replace(note, retry=True) if again else note)
                except DeliveryError as exc:
                    error = str(exc)
                    if exc.retryable:
                        continue
                    break
                error = ""
                break
            if error:
                span.set_status(trace.StatusCode.ERROR, error)
            span.set_attribute("careops.attempts", attempt)
        DELIVERY_SECONDS.labels(contact.kind.value).observe(time.perf_counter() - started)
        return attempt, error
