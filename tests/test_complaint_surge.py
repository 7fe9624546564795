"""A surge of complaint tickets on one channel declares an incident from ticketing's events."""

from __future__ import annotations

import uuid
from pathlib import Path

from careops.incident.v1 import incident_pb2 as ipb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as it
from careops.ticketing.v1 import ticketing_pb2 as tpb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as tt
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from incident.tests.conftest import running_incident_service, write_config
from ticketing.tests.conftest import running_service

from tests.receivers import http_receiver, smtp_receiver
from tests.support import channel_to, eventually

THRESHOLD = 3


async def open_complaint(stub: ticketing_pb2_grpc.TicketingServiceStub, customer: str) -> str:
    response = await stub.OpenTicket(
        tpb.OpenTicketRequest(
            customer_id=customer,
            channel=tt.CHANNEL_SOCIAL,
            type=tt.TICKET_TYPE_COMPLAINT,
            priority=tt.PRIORITY_HIGH,
            subject="Your app charged me twice",
            product="Wallet",
        ),
        metadata=(("idempotency-key", uuid.uuid4().hex),),
    )
    return str(response.ticket.ticket_id)


async def surge_incidents(stub: incident_pb2_grpc.IncidentServiceStub) -> list[ipb.Incident]:
    listed = await stub.ListIncidents(ipb.ListIncidentsRequest(open_only=True))
    found = []
    for item in listed.incidents:
        got = await stub.GetIncident(ipb.GetIncidentRequest(incident_id=item.incident_id))
        if got.incident.source == it.INCIDENT_SOURCE_TICKET_SURGE:
            found.append(got.incident)
    return found


async def test_complaint_surge_declares_one_incident_and_links_later_tickets(
    tmp_path: Path,
) -> None:
    nats = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port()).start()
    try:
        with http_receiver() as http, smtp_receiver() as mail:
            config = write_config(tmp_path / "config", http, mail.port)
            async with (
                running_service(tmp_path / "ticketing", nats.url) as ticketing,
                running_incident_service(
                    tmp_path / "incident",
                    nats.url,
                    surge_threshold=THRESHOLD,
                    surge_window_minutes=10,
                    **config,
                ) as incident,
            ):
                assert ticketing.server and incident.server
                async with (
                    channel_to(ticketing) as t_channel,
                    channel_to(incident) as i_channel,
                ):
                    tickets = ticketing_pb2_grpc.TicketingServiceStub(t_channel)
                    incidents = incident_pb2_grpc.IncidentServiceStub(i_channel)
                    opened = [await open_complaint(tickets, f"C-{i}") for i in range(THRESHOLD)]

                    async def both_surges() -> list[ipb.Incident] | None:
                        found = await surge_incidents(incidents)
                        return found if len(found) >= 2 else None

                    found = await eventually(both_surges, what="two surge incidents")
                    # One incident per key: the channel and the product both surged.
                    assert sorted(i.title.split(":")[0] for i in found) == [
                        "Complaint surge on channel social",
                        "Complaint surge on product wallet",
                    ]
                    for surge in found:
                        assert sorted(surge.ticket_ids) == sorted(opened)
                        assert sorted(surge.customer_ids) == ["C-0", "C-1", "C-2"]
                        assert surge.type == "complaint_surge"
                    later = await open_complaint(tickets, "C-late")

                    async def linked() -> list[ipb.Incident] | None:
                        found = await surge_incidents(incidents)
                        return found if all(later in i.ticket_ids for i in found) else None

                    found = await eventually(linked, what="the later complaint linked")
                    assert len(found) == 2
                    assert all(later in i.ticket_ids for i in found)
    finally:
        nats.stop()
