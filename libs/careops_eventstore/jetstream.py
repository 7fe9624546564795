"""JetStream implementation of the event store (ARCHITECTURE §2)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import nats
import nats.errors
import nats.js.errors
from careops.events.v1.envelope_pb2 import EventBatch
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import api
from opentelemetry import propagate

from careops_eventstore.model import (
    DUPLICATE_IN_PROCESS_ERR_CODE,
    EVENT_TYPE_HEADER,
    EXPECTED_SUBJECT_SEQ_HEADER,
    MSG_ID_HEADER,
    TEMPORARILY_UNAVAILABLE_ERR_CODE,
    WRONG_LAST_SEQUENCE_CONSTANT_ERR_CODE,
    WRONG_LAST_SEQUENCE_ERR_CODE,
    AppendResult,
    ConcurrencyConflict,
    LogUnavailable,
    RecordedBatch,
    StreamSpec,
    event_types_header,
)

log = logging.getLogger(__name__)

STREAM_EXISTS_ERR_CODE = 10058
DIRECT_GET_BATCH = 512
CONFLICT_ERR_CODES = frozenset(
    {WRONG_LAST_SEQUENCE_ERR_CODE, WRONG_LAST_SEQUENCE_CONSTANT_ERR_CODE}
)
# Answers of a clustered stream between leaders: retrying with the same message id is safe.
TRANSIENT_ERR_CODES = frozenset({DUPLICATE_IN_PROCESS_ERR_CODE, TEMPORARILY_UNAVAILABLE_ERR_CODE})
UNCONFIRMED = "the event log (NATS) did not confirm the append; retry with the same idempotency-key"


async def connect(
    url: str,
    *,
    name: str,
    on_disconnect: Callable[[], Awaitable[None]] | None = None,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
    connect_timeout: float = 2.0,
) -> NatsClient:
    """Connects to NATS (reconnecting forever later); raises LogUnavailable if unreachable now.

    `url` may name several servers of a cluster, comma-separated: the client tries each and
    fails over among them (and the servers the cluster announces) when one goes away.
    """
    servers = [part.strip() for part in url.split(",") if part.strip()]

    async def disconnected() -> None:
        log.warning("nats disconnected", extra={"nats_url": url})
        if on_disconnect:
            await on_disconnect()

    async def reconnected() -> None:
        log.info("nats reconnected", extra={"nats_url": url})
        if on_reconnect:
            await on_reconnect()

    async def error(exc: Exception) -> None:
        log.debug("nats error: %s", exc)

    try:
        return await nats.connect(
            servers,
            name=name,
            connect_timeout=connect_timeout,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            allow_reconnect=True,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        raise LogUnavailable(f"cannot connect to NATS at {url}: {exc}") from exc


class JetStreamEventStore:
    """Appends event batches to JetStream with expected-sequence and message-id headers."""

    def __init__(self, nc: NatsClient, *, append_timeout: float = 2.0) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=append_timeout)
        self._append_timeout = append_timeout

    @property
    def client(self) -> NatsClient:
        return self._nc

    async def ensure_stream(self, spec: StreamSpec) -> None:
        config = api.StreamConfig(
            name=spec.name,
            subjects=list(spec.subjects),
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            max_age=0,
            num_replicas=spec.replicas,
            duplicate_window=spec.duplicate_window_seconds,
            deny_delete=True,
            deny_purge=True,
            allow_direct=True,
        )
        try:
            await self._js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != STREAM_EXISTS_ERR_CODE:
                raise
            await self._js.update_stream(config)

    async def append(
        self,
        *,
        stream: str,
        subject: str,
        batch: EventBatch,
        expected_sequence: int,
        message_id: str,
    ) -> AppendResult:
        if not self._nc.is_connected:
            raise LogUnavailable("the event log (NATS) is not reachable; nothing was appended")
        headers = {
            MSG_ID_HEADER: message_id,
            EXPECTED_SUBJECT_SEQ_HEADER: str(expected_sequence),
            EVENT_TYPE_HEADER: event_types_header(batch),
        }
        propagate.inject(headers)
        try:
            ack = await self._js.publish(
                subject,
                batch.SerializeToString(),
                timeout=self._append_timeout,
                stream=stream,
                headers=headers,
            )
        except nats.js.errors.APIError as exc:
            if exc.err_code in CONFLICT_ERR_CODES:
                raise ConcurrencyConflict(str(exc.description)) from exc
            if exc.err_code in TRANSIENT_ERR_CODES or isinstance(
                exc, nats.js.errors.ServiceUnavailableError
            ):
                raise LogUnavailable(UNCONFIRMED) from exc
            raise
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            raise LogUnavailable(UNCONFIRMED) from exc
        return AppendResult(sequence=ack.seq, duplicate=bool(ack.duplicate))

    async def read_subject(
        self, *, stream: str, subject: str, after_sequence: int = 0, until_sequence: int = 0
    ) -> list[RecordedBatch]:
        found: list[RecordedBatch] = []
        start = after_sequence + 1
        while True:
            chunk = await self._direct_get_batch(stream, subject, start, DIRECT_GET_BATCH)
            for message in chunk:
                if until_sequence > 0 and message.sequence > until_sequence:
                    return found
                found.append(message)
            if len(chunk) < DIRECT_GET_BATCH:
                return found
            start = chunk[-1].sequence + 1

    async def read_stream(
        self, *, stream: str, after_sequence: int = 0, limit: int = 1000
    ) -> list[RecordedBatch]:
        return await self._direct_get_batch(stream, ">", after_sequence + 1, limit)

    async def last_sequence(self, stream: str) -> int:
        self._require_connection()
        try:
            info = await self._js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            return 0  # a stream nobody has provisioned yet (another context's) is empty
        except (TimeoutError, nats.errors.Error) as exc:
            raise LogUnavailable(f"cannot read stream {stream}: {exc}") from exc
        return int(info.state.last_seq)

    def _require_connection(self) -> None:
        if not self._nc.is_connected:
            raise LogUnavailable("the event log (NATS) is not reachable")

    async def _direct_get_batch(
        self, stream: str, subject: str, start: int, batch: int
    ) -> list[RecordedBatch]:
        """Reads up to `batch` messages of `subject` from `start` with one batched direct get."""
        self._require_connection()
        inbox = self._nc.new_inbox()
        queue: asyncio.Queue[Msg] = asyncio.Queue()

        async def collect(msg: Msg) -> None:
            await queue.put(msg)

        sub = await self._nc.subscribe(inbox, cb=collect)
        request = {"seq": start, "next_by_subj": subject, "batch": batch}
        found: list[RecordedBatch] = []
        try:
            await self._nc.publish(
                f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox
            )
            while True:
                msg = await asyncio.wait_for(queue.get(), timeout=self._append_timeout)
                headers = msg.headers or {}
                status = headers.get("Status")
                if status is not None:
                    if status in ("404", "204"):
                        return found
                    raise LogUnavailable(f"direct get on {stream} failed: {status}")
                found.append(_recorded(stream, msg))
                if len(found) >= batch:
                    return found
        except TimeoutError as exc:
            raise LogUnavailable(f"reading {stream} timed out") from exc
        finally:
            await sub.unsubscribe()


async def last_sequence_matching(nc: NatsClient, stream: str, subject: str) -> int:
    """Returns the sequence of the last message of `subject` (wildcards allowed), 0 if none."""
    if not nc.is_connected:
        raise LogUnavailable("the event log (NATS) is not reachable")
    request = json.dumps({"last_by_subj": subject}).encode()
    try:
        reply = await nc.request(f"$JS.API.DIRECT.GET.{stream}", request, timeout=2.0)
    except nats.errors.NoRespondersError:
        return 0  # a stream nobody has provisioned yet is empty
    except (TimeoutError, nats.errors.Error) as exc:
        raise LogUnavailable(f"cannot read stream {stream}: {exc}") from exc
    headers = reply.headers or {}
    if "Nats-Sequence" in headers:
        return int(headers["Nats-Sequence"])
    if headers.get("Status") in ("404", "503"):  # nothing on that subject / no such stream
        return 0
    raise LogUnavailable(f"direct get on {stream} failed: {headers.get('Status')}")


def _recorded(stream: str, msg: Msg) -> RecordedBatch:
    headers = dict(msg.headers or {})
    batch = EventBatch()
    try:
        batch.ParseFromString(msg.data)
        undecodable = not batch.events
    except DecodeError:
        batch, undecodable = EventBatch(), True
    return RecordedBatch(
        stream=stream,
        subject=headers.get("Nats-Subject", msg.subject),
        sequence=int(headers["Nats-Sequence"]),
        batch=batch,
        headers=headers,
        undecodable=undecodable,
    )
