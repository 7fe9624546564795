"""kill -9 of a replica while its projections work through a backlog, several times: once it
has caught up, its read models equal the other replica's and their rebuild from the log."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import grpc
import pytest
from careops.common.v1 import admin_pb2, admin_pb2_grpc
from careops_eventstore.nats_embedded import EmbeddedNats, free_port

from tests.faults.platform import SENDERS, assert_equals_rebuild, dump
from tests.support import ServiceProcess, eventually_sync, fault_scale, shared_key_store_env

KILLS = 3


def moved_on(process: ServiceProcess, floor: int) -> int:
    """The replica's ticket-list position once it is past `floor` (or at the stream's end),
    else 0 (also while the replica is not answering yet)."""
    try:
        with process.channel() as channel:
            stub = admin_pb2_grpc.ProjectionAdminServiceStub(channel)
            listed = stub.ListProjections(admin_pb2.ListProjectionsRequest(), timeout=2)
    except grpc.RpcError:
        return 0
    status = next(p for p in listed.projections if p.name == "tickets")
    at_end = status.last_sequence >= status.stream_last_sequence
    return status.last_sequence if status.last_sequence > floor or at_end else 0


# Processes start slowly on a loaded machine: a wide bound, scaled with the sizes.
@pytest.mark.timeout(300 * fault_scale())
def test_kill_9_during_a_projection_backlog(tmp_path: Path) -> None:
    backlog = 200 * fault_scale()
    nats = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port()).start()
    # Replicas share the key store (ticket texts are sealed for their customer).
    keys = shared_key_store_env(nats.url, "ticketing")
    writer = ServiceProcess(data_dir=tmp_path / "writer", nats_url=nats.url, extra_env=keys)
    behind = ServiceProcess(data_dir=tmp_path / "behind", nats_url=nats.url, extra_env=keys)
    (tmp_path / "writer").mkdir()
    (tmp_path / "behind").mkdir()
    try:
        writer.start()
        with writer.channel() as channel:
            for n in range(backlog):
                SENDERS["ticketing"](channel, n, f"backlog-{n}")
        seen = 0
        for _kill in range(KILLS):
            behind.launch()
            # Killed as soon as its projections have moved on: mid-backlog (or just past it).
            seen = eventually_sync(
                partial(moved_on, behind, seen),
                timeout=120,
                what="the lagging replica's projection moved on",
            )
            behind.kill()
        behind.start()
        assert_equals_rebuild(behind)
        assert_equals_rebuild(writer)
        assert (
            dump(behind.data_dir / "ticketing.db")["tickets"]
            == dump(writer.data_dir / "ticketing.db")["tickets"]
        )
        assert behind.terminate() == 0
    finally:
        writer.kill()
        behind.kill()
        nats.stop()
