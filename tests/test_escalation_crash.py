"""kill -9 between a page and its escalation deadline, restart: the escalation happens once."""

from __future__ import annotations

from pathlib import Path

from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from incident.tests.conftest import write_config

from tests.receivers import http_receiver, smtp_receiver
from tests.support import ServiceProcess, eventually_sync, incident_event_types

# ts-alice's step: long enough that the kill (right after her page is recorded) comes before
# it times out, even on a loaded machine. ts-bob's step never times out within the test, so
# "bob is paged, once, and nothing after" needs no waiting to prove.
STEP_SECONDS = 4
NEXT_STEP_SECONDS = 3600
ESCALATED = "careops.incident.v1.PageEscalated"


def recorded(service: ServiceProcess, incident_id: str, member_id: str) -> pb.Incident | None:
    """The incident once every contact of `member_id`'s page has its outcome on the log."""
    with service.channel() as channel:
        stub = incident_pb2_grpc.IncidentServiceStub(channel)
        got = stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id), timeout=5).incident
    page = next((p for p in got.pages if p.member_id == member_id), None)
    if page is None or not page.deliveries:
        return None
    return got if all(d.delivered or d.failed for d in page.deliveries) else None


def test_kill_9_before_the_escalation_deadline_escalates_exactly_once(tmp_path: Path) -> None:
    nats = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port()).start()
    with http_receiver() as http, smtp_receiver() as mail:
        config = write_config(
            tmp_path / "config",
            http,
            mail.port,
            wait_seconds=STEP_SECONDS,
            next_wait_seconds=NEXT_STEP_SECONDS,
        )
        env = {f"CAREOPS_{name.upper()}": value for name, value in config.items()}
        env["CAREOPS_TIMER_INTERVAL_SECONDS"] = "0.1"
        service = ServiceProcess(
            data_dir=tmp_path / "data", nats_url=nats.url, extra_env=env, service="incident"
        )
        (tmp_path / "data").mkdir()
        try:
            service.start()
            with service.channel() as channel:
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
            # "The page is out" means its delivery is on the log: a kill between the POST and
            # that record would (rightly, at least once) send it again after the restart.
            eventually_sync(lambda: recorded(service, incident_id, "ts-alice"))
            service.kill()
            before_restart = incident_event_types(nats.url, incident_id)
            assert ESCALATED not in before_restart, "the kill must come before the deadline"
            service.start()
            got = eventually_sync(
                lambda: recorded(service, incident_id, "ts-bob"),
                timeout=STEP_SECONDS + 30,
            )
            ts_pages = [p for p in got.pages if p.team_id == "technical_support"]
            assert [p.member_id for p in ts_pages] == ["ts-alice", "ts-bob"]
            assert [p.escalated for p in ts_pages] == [True, False]
            assert incident_event_types(nats.url, incident_id).count(ESCALATED) == 1
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
