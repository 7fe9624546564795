"""ProjectionAdminService: list read models and rebuild one from the log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from careops.common.v1 import admin_pb2, admin_pb2_grpc
from careops_eventstore import EventStore
from careops_eventstore.projection import ProjectionRunner

from careops_platform.errors import DeadlineExceeded, FieldViolation, NotFound

SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["ProjectionAdminService"].full_name
REBUILD_WAIT_SECONDS = 300.0


class ProjectionAdminServicer(admin_pb2_grpc.ProjectionAdminServiceServicer):
    """Operates the projection runners of one service process."""

    def __init__(self, runners: Mapping[str, ProjectionRunner], store: EventStore) -> None:
        self._runners = runners
        self._store = store

    async def _status(self, runner: ProjectionRunner) -> admin_pb2.ProjectionStatus:
        return admin_pb2.ProjectionStatus(
            name=runner.projection.name,
            stream=runner.stream,
            last_sequence=runner.position,
            stream_last_sequence=await self._store.last_sequence(runner.stream),
        )

    async def ListProjections(
        self, request: admin_pb2.ListProjectionsRequest, context: Any
    ) -> admin_pb2.ListProjectionsResponse:
        statuses = [await self._status(runner) for runner in self._runners.values()]
        return admin_pb2.ListProjectionsResponse(projections=statuses)

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
            target = await self._store.last_sequence(runner.stream)
            if not await runner.wait_for(target, REBUILD_WAIT_SECONDS):
                raise DeadlineExceeded(f"{request.name} is still rebuilding; check ListProjections")
        return admin_pb2.RebuildProjectionResponse(status=await self._status(runner))
