"""kill -9 between a page and its escalation deadline, restart: the escalation happens once."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from incident.tests.conftest import write_config

from tests.receivers import http_receiver, smtp_receiver
from tests.support import ServiceProcess

STEP_SECONDS = 3


def test_kill_9_before_the_escalation_deadline_escalates_exactly_once(tmp_path: Path) -> None:
    nats = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port()).start()
    with http_receiver() as http, smtp_receiver() as mail:
        config = write_config(tmp_path / "config", http, mail.port, wait_seconds=STEP_SECONDS)
        env = {f"CAREOPS_{name.upper()}": value for name, value in config.items()}
        env["CAREOPS_TIMER_INTERVAL_SECONDS"] = "0.1"
        service = ServiceProcess(
            data_dir=tmp_path / "data", nats_url=nats.url, extra_env=env, service="incident"
        )
        (tmp_path / "data").mkdir()
        try:
            service.start()
            with grpc.insecure_channel(service.address) as channel:
                stub = incident_pb2_grpc.IncidentServiceStub(channel)
                declared = stub.DeclareIncident(
                    pb.DeclareIncidentRequest(
                        type="server_crash",
                        title="Storage array lost",
                        factors=t.RiskFactors(users_affected=50_000, core_system=1.0),
                    ),
                    metadata=(("idempotency-key", "crash-test"),),
                )
            incident_id = declared.incident.incident_id
            http.wait_for("/ts-alice", 1)
            service.kill()  # the page is out; its escalation deadline is ~3 s away
            service.start()
            # Wait past the deadline, with time for a wrongly doubled escalation to show.
            http.wait_for("/ts-bob", 1, timeout=STEP_SECONDS + 10)
            time.sleep(1.5)
            with grpc.insecure_channel(service.address) as channel:
                stub = incident_pb2_grpc.IncidentServiceStub(channel)
                got = stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id)).incident
            ts_pages = [p for p in got.pages if p.team_id == "technical_support"]
            assert [p.member_id for p in ts_pages] == ["ts-alice", "ts-bob"]
            assert [p.escalated for p in ts_pages] == [True, False]
            bob_posts = [p for p in http.posts("/ts-bob") if p.json()["incident_id"] == incident_id]
            assert len(bob_posts) == 1
            alice_posts = [
                p for p in http.posts("/ts-alice") if p.json()["incident_id"] == incident_id
            ]
            assert len(alice_posts) == 1, "the restart must not page again"
            assert service.terminate() == 0
        finally:
            service.kill()
            nats.stop()
