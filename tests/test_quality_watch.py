"""WatchKpis (issue 15: the supervisor's KPI board pushed): the answer of GetKpis at once, then
again after the read models moved — a survey submitted shows on the stream without asking; an
invalid query is refused as GetKpis refuses it. Real NATS, gRPC and SQLite, the scenario's
tickets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from careops.quality.v1 import quality_pb2 as qpb
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.nats_embedded import EmbeddedNats, free_port

from tests.quality_scenario import (
    EXPECTED,
    NOW,
    Clock,
    quality_service,
    stub_of,
    submit_surveys,
    write_tickets,
)


async def test_the_board_is_pushed_again_after_the_surveys(tmp_path: Path) -> None:
    server = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port())
    server.start()
    nc = await connect(server.url, name="quality-watch")
    try:
        clock = Clock()
        ticketing = await write_tickets(JetStreamEventStore(nc), clock)
        clock.now = NOW
        async with (
            quality_service(tmp_path / "quality", server.url, clock) as service,
            stub_of(service) as stub,
        ):
            query = qpb.GetKpisRequest(ticketing_min_sequence=ticketing)
            stream = stub.WatchKpis(qpb.WatchKpisRequest(query=query))
            first = await asyncio.wait_for(stream.read(), 10)
            assert first.kpis.kpis.tickets_opened == EXPECTED["tickets_opened"]
            assert first.kpis.kpis.surveys == 0

            await submit_surveys(stub, ticketing)
            pushed = first
            while pushed.kpis.kpis.surveys < EXPECTED["surveys"]:  # one push or two
                pushed = await asyncio.wait_for(stream.read(), 10)
            assert pushed.kpis.kpis.surveys == EXPECTED["surveys"]
            assert pushed.kpis.kpis.csat_mean == EXPECTED["csat_mean"]
            stream.cancel()

            refused = stub.WatchKpis(
                qpb.WatchKpisRequest(query=qpb.GetKpisRequest(by_day=True))  # no period
            )
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await asyncio.wait_for(refused.read(), 10)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await nc.close()
        server.stop()
