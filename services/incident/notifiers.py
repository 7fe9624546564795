"""Notification channels: signed webhook, Slack, PagerDuty Events v2, e-mail; retries with backoff.

Each send runs on its own thread (the stdlib clients block), and each channel kind has its own
pool of threads, so one slow or failing channel never delays another: a Slack endpoint that hangs
until its timeout occupies Slack's threads, never the webhook or e-mail ones.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import json
import smtplib
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from careops_platform.collectors import preinitialise
from prometheus_client import Histogram

from incident.domain import ContactKind, ContactPoint

SIGNATURE_HEADER = "X-CareOps-Signature"
TIMESTAMP_HEADER = "X-CareOps-Timestamp"
SEVERITY = {"a": "critical", "b": "error", "c": "warning"}

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
    threads_per_channel: int = 32


def sign(key: str, timestamp: str, body: bytes) -> str:
    """Returns the webhook signature: hex HMAC-SHA256 over "<timestamp>.<body>"."""
    mac = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _post_json(url: str, payload: dict[str, Any], headers: dict[str, str], timeout: float) -> None:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        retryable = exc.code >= 500 or exc.code == 429
        raise DeliveryError(f"HTTP {exc.code}", retryable=retryable) from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DeliveryError(f"unreachable: {exc}", retryable=True) from exc


class Notifiers:
    """Sends notifications to contact points, one blocking client call per thread."""

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings
        self._pools = {
            kind: ThreadPoolExecutor(settings.threads_per_channel, f"notify-{kind.value}")
            for kind in ContactKind
        }

    async def stop(self) -> None:
        """Stops the channel threads (sends in progress finish first)."""
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    def _webhook(self, address: str, note: Notification) -> None:
        body = json.dumps(note.as_json()).encode()
        timestamp = str(int(time.time()))
        headers = {TIMESTAMP_HEADER: timestamp}
        if self.settings.webhook_signing_key:
            headers[SIGNATURE_HEADER] = sign(self.settings.webhook_signing_key, timestamp, body)
        _post_json(address, note.as_json(), headers, self.settings.timeout_seconds)

    def _slack(self, address: str, note: Notification) -> None:
        payload = {
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
        _post_json(address, payload, {}, self.settings.timeout_seconds)

    def _pagerduty(self, routing_key: str, note: Notification) -> None:
        """Events API v2: a page triggers (or acknowledges, resolves) the team's alert, one per
        incident and team by its dedup_key; an FYI is a change event, which never opens an
        incident nor notifies anyone."""
        if note.action == "inform":
            self._pagerduty_change(routing_key, note)
            return
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
        _post_json(self.settings.pagerduty_events_url, payload, {}, self.settings.timeout_seconds)

    def _pagerduty_change(self, routing_key: str, note: Notification) -> None:
        payload = {
            "routing_key": routing_key,
            "payload": {
                "summary": note.summary(),
                "source": "careops",
                "custom_details": note.as_json(),
            },
        }
        _post_json(self.settings.pagerduty_change_url, payload, {}, self.settings.timeout_seconds)

    def _email(self, address: str, note: Notification) -> None:
        message = EmailMessage()
        message["From"] = self.settings.smtp_sender
        message["To"] = address
        message["Subject"] = note.summary()
        message.set_content(json.dumps(note.as_json(), indent=2))
        try:
            with smtplib.SMTP(
                self.settings.smtp_host,
                self.settings.smtp_port,
                timeout=self.settings.timeout_seconds,
            ) as smtp:
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.smtp_code}", retryable=exc.smtp_code >= 400) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"unreachable: {exc}", retryable=True) from exc

    def send_once(self, contact: ContactPoint, note: Notification) -> None:
        """Sends one notification once (blocking)."""
        senders = {
            ContactKind.WEBHOOK: self._webhook,
            ContactKind.SLACK: self._slack,
            ContactKind.PAGERDUTY: self._pagerduty,
            ContactKind.EMAIL: self._email,
        }
        assert contact.kind is not None
        senders[contact.kind](contact.address, note)

    async def deliver(self, contact: ContactPoint, note: Notification) -> tuple[int, str]:
        """Sends with retries and exponential backoff; returns (attempts, error or "")."""
        assert contact.kind is not None
        pool = self._pools[contact.kind]
        started = time.perf_counter()
        error = ""
        attempt = 0
        for attempt in range(1, self.settings.attempts + 1):
            try:
                await asyncio.get_running_loop().run_in_executor(
                    pool,
                    contextvars.copy_context().run,  # the trace context goes along
                    self.send_once,
                    contact,
                    note,
                )
                error = ""
                break
            except DeliveryError as exc:
                error = str(exc)
                if not exc.retryable or attempt == self.settings.attempts:
                    break
                await asyncio.sleep(self.settings.backoff_seconds * 2 ** (attempt - 1))
        DELIVERY_SECONDS.labels(contact.kind.value).observe(time.perf_counter() - started)
        return attempt, error
