"""RebuildProjection answers once the rebuild has started, also when the log cannot tell its
lag at that moment (a clustered stream electing a leader): UNAVAILABLE would have the client
start it again, and again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from careops.common.v1 import admin_pb2
from careops_eventstore import LogUnavailable

from careops_platform.admin import ProjectionAdminServicer


@dataclass
class _Projection:
    name: str = "tickets"


@dataclass
class _RunnerBetweenLeaders:
    """A runner whose rebuild starts but whose lag the log does not answer."""

    projection: _Projection = field(default_factory=_Projection)
    stream: str = "CAREOPS_TICKETING"
    filter_subject: str = "careops.ticketing.>"
    position: int = 0
    rebuilds: int = 0

    async def rebuild(self) -> None:
        self.rebuilds += 1

    async def status(self) -> Any:
        raise LogUnavailable("the event log (NATS) did not answer; lag unknown")


async def test_a_started_rebuild_is_answered_with_what_the_process_knows() -> None:
    runner = _RunnerBetweenLeaders()
    admin = ProjectionAdminServicer(
        {"tickets": runner},  # type: ignore[dict-item]
        store=None,  # type: ignore[arg-type]
        engine=None,  # type: ignore[arg-type]
    )
    reply = await admin.RebuildProjection(admin_pb2.RebuildProjectionRequest(name="tickets"), None)
    assert runner.rebuilds == 1
    assert (reply.status.name, reply.status.stream, reply.status.last_sequence) == (
        "tickets",
        "CAREOPS_TICKETING",
        0,
    )
