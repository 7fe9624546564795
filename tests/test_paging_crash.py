"""kill -9 while a page is being sent, restart: the page decided on the log is delivered, and
what is sent again says so (same idempotency key and dedup_key, X-CareOps-Retry: 1)."""

from __future__ import annotations

from pathlib import Path

from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from incident.tests.conftest import write_config

from tests.receivers import http_receiver, smtp_receiver
from tests.support import ServiceProcess, eventually_sync, incident_event_types

PAGE_REQUESTED = "careops.incident.v1.PageRequested"
# The reaction's ack wait, short here (the default is 5 s): the page's message comes back to
# the restarted pager after it. Not shorter: the held send is kept in progress every quarter of
# it, and a late keep-alive on a loaded machine would send the page twice before the kill.
REDELIVERY_SECONDS = 2


def alice_page(service: ServiceProcess, incident_id: str) -> pb.Page | None:
    """ts-alice's page once every one of its contacts has its outcome on the log."""
    with service.channel() as channel:
        stub = incident_pb2_grpc.IncidentServiceStub(channel)
        got = stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id), timeout=5).incident
    page = next((p for p in got.pages if p.member_id == "ts-alice"), None)
    if page is None or len(page.deliveries) < 2:
        return None
    return page


def test_a_page_in_flight_at_kill_9_is_sent_after_the_restart_marked_as_a_retry(
    tmp_path: Path,
) -> None:
    nats = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port()).start()
    with http_receiver() as http, smtp_receiver() as mail:
        # No escalation within the test: only the page itself is sent.
        config = write_config(tmp_path / "config", http, mail.port, wait_seconds=3600)
        env = {f"CAREOPS_{name.upper()}": value for name, value in config.items()}
        env["CAREOPS_REACTION_ACK_WAIT_SECONDS"] = str(REDELIVERY_SECONDS)
        service = ServiceProcess(
            data_dir=tmp_path / "data", nats_url=nats.url, extra_env=env, service="incident"
        )
        (tmp_path / "data").mkdir()
        try:
            service.start()
            # ts-alice's webhook hangs: the pager is inside the send when the process dies, so
            # no outcome of her page is on the log (the page itself is).
            with http.hold("/ts-alice"):
                with service.channel() as channel:
                    stub = incident_pb2_grpc.IncidentServiceStub(channel)
                    declared = stub.DeclareIncident(
                        pb.DeclareIncidentRequest(
                            type="server_crash",
                            title="Payments cluster lost",
                            factors=t.RiskFactors(users_affected=50_000, core_system=1.0),
                        ),
                        metadata=(("idempotency-key", "paging-crash-test"),),
                    )
                incident_id = declared.incident.incident_id
                [first] = http.wait_for("/ts-alice", 1)
                service.kill()
            types = incident_event_types(nats.url, incident_id)
            assert PAGE_REQUESTED in types
            pages = [p for p in declared.incident.pages if p.member_id == "ts-alice"]
            assert len(pages) == 1
            assert first.json()["notice_id"] == pages[0].page_id
            assert "x-careops-retry" not in first.headers

            service.start()
            page = eventually_sync(
                lambda: alice_page(service, incident_id), timeout=REDELIVERY_SECONDS + 30
            )
            assert {d.kind for d in page.deliveries if d.delivered} == {
                t.CONTACT_KIND_WEBHOOK,
                t.CONTACT_KIND_PAGERDUTY,
            }
            alice = [p for p in http.posts("/ts-alice") if p.json()["incident_id"] == incident_id]
            assert len(alice) == 2, "sent once before the kill, once after"
            again = alice[1]
            assert again.headers["x-careops-retry"] == "1"
            assert again.headers["idempotency-key"] == first.headers["idempotency-key"]
            assert again.headers["idempotency-key"] == f"{page.page_id}-webhook"
            assert again.body == first.body
            # PagerDuty got the page before the kill and again after: one alert (dedup_key).
            triggers = [
                p.json() for p in http.posts("/pagerduty") if incident_id in p.json()["dedup_key"]
            ]
            alice_triggers = [
                p for p in triggers if p["payload"]["custom_details"]["member_id"] == "ts-alice"
            ]
            assert len({p["dedup_key"] for p in alice_triggers}) == 1
            # Each channel's outcome recorded once, though it was sent twice.
            assert sorted(d.kind for d in page.deliveries) == sorted(
                {t.CONTACT_KIND_WEBHOOK, t.CONTACT_KIND_PAGERDUTY}
            )
            assert service.terminate() == 0
        finally:
            service.kill()
            nats.stop()
