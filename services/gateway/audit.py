"""GatewayService.ListAuditEvents: who did what, when, from the log (careops_platform.audit).

The gateway needs the log only for this RPC, so it connects to NATS on the first call: a
gateway whose log is unreachable still forwards everything else (and this RPC says UNAVAILABLE).
"""

from __future__ import annotations

import asyncio

from careops.gateway.v1 import gateway_pb2 as pb
from careops_eventstore.codec import to_timestamp
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.model import LogUnavailable
from careops_platform.audit import AuditEntry, audit
from careops_platform.errors import FieldViolation, InvalidArgument, Unavailable
from careops_platform.requests import timestamp_field
from nats.aio.client import Client as NatsClient

MAX_EVENTS = 1000


class AuditReader:
    """Reads the audit from the log at `nats_url`, connecting once, on first use."""

    def __init__(self, nats_url: str) -> None:
        self._url = nats_url
        self._nc: NatsClient | None = None
        self._connecting = asyncio.Lock()

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.close()
            self._nc = None

    async def list(self, request: pb.ListAuditEventsRequest) -> pb.ListAuditEventsResponse:
        """Returns the events the request selects, at most its limit (INVALID_ARGUMENT naming
        the field for a missing `since`, a bad time, limit or service)."""
        since = timestamp_field(request, "since")
        if since is None:
            raise InvalidArgument("since is required", [FieldViolation("since", "must be set")])
        limit = _limit(request.limit)
        try:
            entries = await audit(
                await self._store(),
                since=since,
                until=timestamp_field(request, "until"),
                actor=request.actor,
                service=request.service,
            )
        except ValueError as exc:  # a service that owns no stream
            raise InvalidArgument(str(exc), [FieldViolation("service", str(exc))]) from None
        except LogUnavailable as exc:
            raise Unavailable(f"the event log is unreachable: {exc}") from None
        return pb.ListAuditEventsResponse(
            events=[_event(entry) for entry in entries[:limit]], truncated=len(entries) > limit
        )

    async def _store(self) -> JetStreamEventStore:
        async with self._connecting:
            if self._nc is None:
                self._nc = await connect(self._url, name="careops-gateway-audit")
        return JetStreamEventStore(self._nc)


def _limit(requested: int) -> int:
    if requested < 0 or requested > MAX_EVENTS:
        raise InvalidArgument(
            f"limit must be between 0 and {MAX_EVENTS}",
            [FieldViolation("limit", f"0 (the default, {MAX_EVENTS}) to {MAX_EVENTS}")],
        )
    return requested or MAX_EVENTS


def _event(entry: AuditEntry) -> pb.AuditEvent:
    return pb.AuditEvent(
        recorded_at=to_timestamp(entry.recorded_at),
        actor=entry.actor,
        service=entry.service,
        aggregate_type=entry.aggregate_type,
        aggregate_id=entry.aggregate_id,
        event_type=entry.event_type,
        event_id=entry.event_id,
        command_id=entry.command_id,
    )
