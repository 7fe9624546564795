"""Two `--role api` replicas of ticketing bound to one port, as the scale-out layout runs them
(docs/benchmarks.md §17): grpc sets SO_REUSEPORT on its listening sockets on Linux, so the
second binds while the first serves, and each answers calls on that port. Deterministic: the
first answers while it is alone on the port, the second once the first has stopped; each
one's own request counter says which answered."""

from __future__ import annotations

from pathlib import Path

from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats, free_port

from tests.support import (
    ServiceProcess,
    eventually_sync,
    metric_sum,
    open_request,
    sync_service_channel,
)

OPEN_TICKET = "/careops.ticketing.v1.TicketingService/OpenTicket"


def open_ticket(address: str, data_dir: Path) -> str:
    """Opens a ticket through `address`; returns its id."""
    with sync_service_channel(address, data_dir) as channel:
        stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
        response = stub.OpenTicket(
            open_request(
                customer_id="C-replicas",
                channel=t.CHANNEL_APP,
                priority=t.PRIORITY_NORMAL,
                subject="one port, two replicas",
            ),
            timeout=10,
        )
    return response.ticket.ticket_id


def opened(replica: ServiceProcess) -> float:
    return metric_sum(replica.metrics_port, "careops_grpc_requests_total", method=OPEN_TICKET)


def serving(replica: ServiceProcess) -> bool:
    """Whether the replica's own log says it serves: health on the shared port could be the
    other replica's answer."""
    assert replica.process is not None and replica.process.poll() is None, "replica exited"
    return "ticketing serving" in (replica.data_dir / "service.log").read_text(errors="replace")


def test_two_api_replicas_bind_one_port_and_each_answers_on_it(tmp_path: Path) -> None:
    nats = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port()).start()
    shared = tmp_path / "shared"  # one database and one internal key, as replicas share them
    env = {"CAREOPS_DATA_DIR": str(shared), "CAREOPS_AUTO_ROUTE": "false"}
    port = free_port()
    first, second = (
        ServiceProcess(
            tmp_path / name, nats.url, extra_env=env, args=["--role", "api"], grpc_port=port
        )
        for name in ("first", "second")
    )
    try:
        for replica in (first, second):
            replica.data_dir.mkdir()
        first.start()
        assert open_ticket(first.address, shared)
        assert opened(first) == 1

        second.launch()  # binds the port the first still serves
        eventually_sync(lambda: serving(second), what="the second replica serving")
        assert serving(first) and opened(second) == 0

        assert first.terminate() == 0
        assert open_ticket(second.address, shared)  # a new connection: only the second is left
        assert opened(second) == 1
        assert second.terminate() == 0
    finally:
        for replica in (first, second):
            replica.kill()
        nats.stop()
