"""A projection that reads part of another context's stream catches up with it."""

from __future__ import annotations

from pathlib import Path

from careops.common.v1 import admin_pb2, admin_pb2_grpc

from tests.faults.platform import SENDERS, running_platform
from tests.support import eventually_sync


def test_customer_incidents_catches_up_with_the_incident_stream(tmp_path: Path) -> None:
    with running_platform(tmp_path, "incident", "customer") as platform:
        with platform.processes["incident"].channel() as channel:
            SENDERS["incident"](channel, 0, "filtered-0")
        channel = platform.processes["customer"].channel()
        stub = admin_pb2_grpc.ProjectionAdminServiceStub(channel)

        def customer_incidents_caught_up() -> bool:
            listed = stub.ListProjections(admin_pb2.ListProjectionsRequest(), timeout=5)
            [status] = [p for p in listed.projections if p.name == "customer_incidents"]
            return status.lag == 0 and status.last_sequence > 0 and not status.stalled

        eventually_sync(customer_incidents_caught_up, timeout=10)
