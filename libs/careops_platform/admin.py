"""ProjectionAdminService: list read models and reactions, rebuild one, list parked poison."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from careops.common.v1 import admin_pb2, admin_pb2_grpc
from careops_eventstore import EventStore, LogUnavailable
from careops_eventstore.codec import to_timestamp
from careops_eventstore.projection import ConsumerStatus, ProjectionRunner
from careops_eventstore.reactions import ReactionRunner
from careops_eventstore.sqlstate import ParkedMessage, list_parked, parked_counts
from sqlalchemy import Engine

from careops_platform.errors import DeadlineExceeded, FieldViolation, NotFound

SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["ProjectionAdminService"].full_name
REBUILD_WAIT_SECONDS = 300.0
PARKED_LIMIT = 100
PARKED_LIMIT_MAX = 1000


class ProjectionAdminServicer(admin_pb2_grpc.ProjectionAdminServiceServicer):
    """Operates the projection runners (and shows the reactions) of one service process."""

    def __init__(
        self,
        runners: Mapping[str, ProjectionRunner],
        store: EventStore,
        *,
        engine: Engine,
        reactions: Sequence[ReactionRunner] = (),
    ) -> None:
        self._runners = runners
        self._store = store
        self._engine = engine
        self._reactions = reactions

    async def _status(
        self, status: ConsumerStatus, parked: Mapping[str, int]
    ) -> admin_pb2.ProjectionStatus:
        return admin_pb2.ProjectionStatus(
            name=status.name,
            stream=status.stream,
            last_sequence=status.position,
            stream_last_sequence=await self._store.last_sequence(status.stream),
            kind=status.kind,
            filter_subject=status.filter_subject,
            lag=status.lag,
            stalled=status.stalled,
            parked=parked.get(status.name, 0),
        )

    async def _parked_counts(self) -> dict[str, int]:
        def count() -> dict[str, int]:
            with self._engine.connect() as connection:
                return parked_counts(connection)

        return await asyncio.to_thread(count)

    async def ListProjections(
        self, request: admin_pb2.ListProjectionsRequest, context: Any
    ) -> admin_pb2.ListProjectionsResponse:
        parked = await self._parked_counts()
        statuses = [await runner.status() for runner in self._runners.values()]
        statuses += [await reaction.status() for reaction in self._reactions]
        return admin_pb2.ListProjectionsResponse(
            projections=[await self._status(status, parked) for status in statuses]
        )

    async def RebuildProjection(
        self, request: admin_pb2.RebuildProjectionRequest, context: Any
    ) -> admin_pb2.RebuildProjectionResponse:
        runner = self._runners.get(request.name)
        if runner is None:
            known = ", ".join(sorted(self._runners)) or "none"
            raise NotFound(
                f"no projection named {request.name!r} (known: {known})",
                [FieldViolation("name", "unknown projection")],
            )
        await runner.rebuild()
        if request.wait:
            # The last message of its own subjects: a filtered projection never sees the rest.
            target = await runner.target()
            if not await runner.wait_for(target, REBUILD_WAIT_SECONDS):
                raise DeadlineExceeded(f"{request.name} is still rebuilding; check ListProjections")
        return admin_pb2.RebuildProjectionResponse(status=await self._rebuilt(runner))

    async def _rebuilt(self, runner: ProjectionRunner) -> admin_pb2.ProjectionStatus:
        """The status of a projection whose rebuild has started. With the log between leaders
        (a clustered stream electing one), only what the process knows: answering UNAVAILABLE
        would have the client start the rebuild again, and again, never letting it finish."""
        try:
            return await self._status(await runner.status(), await self._parked_counts())
        except LogUnavailable:
            return admin_pb2.ProjectionStatus(
                name=runner.projection.name,
                stream=runner.stream,
                kind="projection",
                filter_subject=runner.filter_subject,
                last_sequence=runner.position,
            )

    async def ListParked(
        self, request: admin_pb2.ListParkedRequest, context: Any
    ) -> admin_pb2.ListParkedResponse:
        known = [*self._runners, *(reaction.name for reaction in self._reactions)]
        if request.name and request.name not in known:
            raise NotFound(
                f"no projection or reaction named {request.name!r} (known: {', '.join(known)})",
                [FieldViolation("name", "unknown projection or reaction")],
            )
        limit = min(request.limit or PARKED_LIMIT, PARKED_LIMIT_MAX)

        def read() -> list[ParkedMessage]:
            with self._engine.connect() as connection:
                return list_parked(
                    connection, consumers=[request.name] if request.name else known, limit=limit
                )

        return admin_pb2.ListParkedResponse(
            parked=[_parked_message(item) for item in await asyncio.to_thread(read)]
        )


def _parked_message(item: ParkedMessage) -> admin_pb2.ParkedMessage:
    message = admin_pb2.ParkedMessage(
        name=item.consumer,
        stream=item.stream,
        sequence=item.sequence,
        subject=item.subject,
        event_type=item.event_type,
        reason=item.reason,
        detail=item.detail,
    )
    if item.parked_at is not None:
        message.parked_at.CopyFrom(to_timestamp(item.parked_at))
    return message
