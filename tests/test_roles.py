"""One service as two processes: `--role api` (commands and queries) and `--role worker`
(projections, reactions, timers) over one NATS and one SQLite read-model database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import nats
import nats.js.errors
import pytest
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from careops_platform.service import parse_role
from incident.application import STREAM
from incident.tests.conftest import write_config

from tests.receivers import http_receiver, smtp_receiver
from tests.support import ServiceProcess


def declare_crash(stub: incident_pb2_grpc.IncidentServiceStub) -> pb.DeclareIncidentResponse:
    return stub.DeclareIncident(
        pb.DeclareIncidentRequest(
            type="server_crash",
            title="Payments cluster lost",
            factors=t.RiskFactors(users_affected=50_000, core_system=1.0),
        ),
        timeout=10,
    )


def test_the_role_comes_from_the_command_line_else_the_environment() -> None:
    assert parse_role(["--role", "api"]) == "api"
    assert parse_role(["--role", "worker"]) == "worker"
    assert parse_role([]) is None  # CAREOPS_ROLE, else `all`
    with pytest.raises(SystemExit):
        parse_role(["--role", "both"])


def test_an_api_and_a_worker_process_answer_commands_and_read_models_and_page(
    tmp_path: Path,
) -> None:
    nats = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port()).start()
    with http_receiver() as http, smtp_receiver() as mail:
        config = write_config(tmp_path / "config", http, mail.port, wait_seconds=3600)
        env = {f"CAREOPS_{name.upper()}": value for name, value in config.items()}
        # One read-model database for both processes; each its own data dir (log file).
        env["CAREOPS_DATABASE_URL"] = f"sqlite:///{tmp_path / 'incident.db'}"
        env["CAREOPS_READ_WAIT_SECONDS"] = "1"
        for name in ("api", "worker"):
            (tmp_path / name).mkdir()
        api = ServiceProcess(
            tmp_path / "api", nats.url, extra_env=env, service="incident", args=["--role", "api"]
        )
        worker = ServiceProcess(
            tmp_path / "worker",
            nats.url,
            extra_env={**env, "CAREOPS_ROLE": "worker"},
            service="incident",
        )
        try:
            api.start()
            with api.channel() as channel:
                stub = incident_pb2_grpc.IncidentServiceStub(channel)
                declared = declare_crash(stub)
                incident_id = declared.incident.incident_id
                query = pb.ListIncidentsRequest(min_sequence=declared.sequence)
                # The api process projects nothing: without a worker the read model never
                # reaches the declaration.
                with pytest.raises(grpc.RpcError) as waited:
                    stub.ListIncidents(query, timeout=10)
                assert waited.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                assert http.posts("/ts-alice") == []  # nor does it page

                worker.start()
                listed = stub.ListIncidents(query, timeout=10)
                assert [i.incident_id for i in listed.incidents] == [incident_id]
            # The worker's pager sends the page the api's declaration decided.
            [page] = http.wait_for("/ts-alice", 1, timeout=30)
            assert page.json()["incident_id"] == incident_id
            # The worker serves gRPC health only.
            with worker.channel() as channel:
                with pytest.raises(grpc.RpcError) as refused:
                    incident_pb2_grpc.IncidentServiceStub(channel).GetIncident(
                        pb.GetIncidentRequest(incident_id=incident_id), timeout=10
                    )
                assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert api.terminate() == 0
            assert worker.terminate() == 0
        finally:
            api.kill()
            worker.kill()
            nats.stop()


def consumer_exists(url: str, stream: str, durable: str) -> bool:
    async def check() -> bool:
        client = await nats.connect(url)
        try:
            await client.jetstream().consumer_info(stream, durable)
            return True
        except nats.js.errors.NotFoundError:
            return False
        finally:
            await client.close()

    return asyncio.run(check())


def test_workers_split_the_parts_a_projection_worker_pages_nobody(tmp_path: Path) -> None:
    """CAREOPS_WORKER_PARTS: a projection worker brings the read model up to date but sends
    no page; the page goes out once a pager worker (reactions, background) runs beside it."""
    nats_server = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port()).start()
    with http_receiver() as http, smtp_receiver() as mail:
        config = write_config(tmp_path / "config", http, mail.port, wait_seconds=3600)
        env = {f"CAREOPS_{name.upper()}": value for name, value in config.items()}
        env["CAREOPS_DATABASE_URL"] = f"sqlite:///{tmp_path / 'incident.db'}"

        def process(name: str, role: str, parts: str = "") -> ServiceProcess:
            (tmp_path / name).mkdir()
            extra = {"CAREOPS_ROLE": role} | ({"CAREOPS_WORKER_PARTS": parts} if parts else {})
            return ServiceProcess(
                tmp_path / name, nats_server.url, extra_env={**env, **extra}, service="incident"
            )

        api = process("api", "api")
        projector = process("projector", "worker", "projections")
        pager = process("pager", "worker", "reactions,background")
        try:
            api.start()
            projector.start()
            with api.channel() as channel:
                stub = incident_pb2_grpc.IncidentServiceStub(channel)
                declared = declare_crash(stub)
                incident_id = declared.incident.incident_id
                listed = stub.ListIncidents(
                    pb.ListIncidentsRequest(min_sequence=declared.sequence), timeout=10
                )
                assert [i.incident_id for i in listed.incidents] == [incident_id]
            # Projected, yet nobody paged: the projection worker runs no reaction at all (the
            # pager's durable consumer is created by the first process that runs it).
            assert not consumer_exists(nats_server.url, STREAM.name, "react-incident-pager")
            assert http.posts("/ts-alice") == []
            pager.start()
            [page] = http.wait_for("/ts-alice", 1, timeout=30)
            assert page.json()["incident_id"] == incident_id
            for part in (api, projector, pager):
                assert part.terminate() == 0
        finally:
            for part in (api, projector, pager):
                part.kill()
            nats_server.stop()
