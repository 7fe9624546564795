"""Plain-text e-mail through the configured SMTP relay, with the one retry rule: a 4xx reply or
no reply is retried (exponential backoff), a 5xx reply is permanent. Used by customer-profile to
tell customers about incidents; incident's pager uses the same rule (`smtp_retryable`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.header import Header
from email.message import Message
from email.mime.text import MIMEText

import aiosmtplib
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential


def plain_message(
    sender: str, to: str, subject: str, body: str, headers: Mapping[str, str] | None = None
) -> Message:
    """Returns a plain-text mail. Built with the compat32 email API: `EmailMessage` (the
    `email.policy.default` API) parses every header it is given and cost the pager ~5x the
    CPU per mail, 15% of its CPU under a paging burst (docs/benchmarks.md §6)."""
    message = MIMEText(body, "plain", "us-ascii" if body.isascii() else "utf-8")
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    for name, value in (headers or {}).items():
        message[name] = value
    return message


@dataclass(frozen=True)
class MailSettings:
    """Where mail goes and how hard it is tried."""

    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "careops@localhost"
    timeout_seconds: float = 10.0
    attempts: int = 3
    backoff_seconds: float = 1.0


class MailError(Exception):
    """A message could not be sent; `retryable` when trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def smtp_retryable(exc: aiosmtplib.SMTPException) -> bool:
    """Returns whether an SMTP failure is transient: a 4xx reply, or no reply at all (refused,
    dropped or timed out connections). A 5xx reply is permanent: retrying cannot help."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(400 <= refused.code < 500 for refused in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return 400 <= exc.code < 500
    return True


class Mailer:
    """Sends plain-text messages through one relay."""

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings

    async def send_once(self, to: str, subject: str, body: str, *, language: str = "") -> None:
        """Sends one message once; raises MailError."""
        message = plain_message(
            self.settings.sender,
            to,
            subject,
            body,
            {"Content-Language": language} if language else None,
        )
        try:
            await aiosmtplib.send(
                message,
                hostname=self.settings.host,
                port=self.settings.port,
                timeout=self.settings.timeout_seconds,
                start_tls=False,  # plain SMTP to the configured relay
            )
        except aiosmtplib.SMTPException as exc:
            raise MailError(f"SMTP: {exc}", retryable=smtp_retryable(exc)) from exc
        except (OSError, TimeoutError) as exc:
            raise MailError(f"unreachable: {exc!r}", retryable=True) from exc

    async def send(self, to: str, subject: str, body: str, *, language: str = "") -> str:
        """Sends with retries; returns "" when sent, else the last error."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.attempts),
            wait=wait_exponential(multiplier=self.settings.backoff_seconds),
            retry=retry_if_exception(lambda exc: isinstance(exc, MailError) and exc.retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self.send_once(to, subject, body, language=language)
        except MailError as exc:
            return str(exc)
        return ""
