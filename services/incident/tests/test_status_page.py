"""Public statements and the status page's facts over real gRPC and NATS: published versions,
drills and unpublished incidents left off, history by the service's clock, nothing internal."""

from __future__ import annotations

import uuid
from datetime import timedelta

import grpc
import pytest
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from google.protobuf import json_format

from incident import domain as d
from incident.application import CODEC, INCIDENT_SUBJECTS, STREAM
from incident.main import IncidentService
from incident.projections import StatusPageProjection
from tests.support import FakeClock, field_violations, projected

# The module's service runs on SQLite, then on PostgreSQL (conftest.py).
pytestmark = pytest.mark.both_databases

Stub = incident_pb2_grpc.IncidentServiceStub
SEVERE = t.RiskFactors(
    users_affected=200_000,
    core_system=1.0,
    elapsed_minutes=30,
    average_handling_minutes=30,
    exposure=0.6,
)
INTERNAL_UPDATE = "internal: failing over db-primary-7, ts-alice on it"
TITLE = "Core DB primary db-primary-7 down"
# What the public must never see: members, teams, pages, the internal title and update, the
# author of a statement, risk.
INTERNAL = (
    "ts-alice",
    "ts-bob",
    "cs-carol",
    "pr-erin",
    "technical_support",
    "customer_service",
    "brand_pr",
    "db-primary-7",
    "tester",
    "risk",
    "-p0",
)


def key() -> tuple[tuple[str, str], ...]:
    return (("idempotency-key", uuid.uuid4().hex),)


async def declare(stub: Stub, *, drill: bool = False) -> str:
    reply = await stub.DeclareIncident(
        pb.DeclareIncidentRequest(type="server_crash", title=TITLE, factors=SEVERE, drill=drill),
        metadata=key(),
    )
    return reply.incident.incident_id


async def publish(stub: Stub, incident_id: str, headline: str, text: str, **en: str) -> None:
    request = pb.PublishStatementRequest(
        incident_id=incident_id, headline=headline, text=text, **en
    )
    await stub.PublishStatement(request, metadata=key())


async def page(stub: Stub, service: IncidentService, days: int = 0) -> pb.GetStatusPageResponse:
    await projected(service, StatusPageProjection.name)
    reply: pb.GetStatusPageResponse = await stub.GetStatusPage(
        pb.GetStatusPageRequest(history_days=days)
    )
    return reply


def assert_public_only(reply: pb.GetStatusPageResponse) -> None:
    text = json_format.MessageToJson(reply, ensure_ascii=False)
    for word in INTERNAL:
        assert word not in text, word


async def test_the_status_page_shows_published_statements_newest_first_and_nothing_internal(
    incident_stub: Stub, incident_service: IncidentService, incident_clock: FakeClock
) -> None:
    incident_id = await declare(incident_stub)
    await incident_stub.AddUpdate(
        pb.AddUpdateRequest(incident_id=incident_id, message=INTERNAL_UPDATE), metadata=key()
    )
    await incident_stub.AssignRole(
        pb.AssignRoleRequest(
            incident_id=incident_id, role="communications_lead", member_id="cs-carol"
        ),
        metadata=key(),
    )
    await publish(
        incident_stub,
        incident_id,
        "部分用户无法下单",
        "我们正在处理下单失败的问题。",
        headline_en="Some orders fail",
        text_en="We are working on failing orders.",
    )
    incident_clock.advance(timedelta(minutes=10))
    await publish(incident_stub, incident_id, "下单已部分恢复", "大部分订单已可正常提交。")
    unpublished = await declare(incident_stub)
    drill = await declare(incident_stub, drill=True)
    await publish(incident_stub, drill, "演练", "这是一次演练。")

    reply = await page(incident_stub, incident_service)
    shown = {item.incident_id: item for item in reply.open}
    assert incident_id in shown and unpublished not in shown and drill not in shown
    item = shown[incident_id]
    assert item.state == pb.PUBLIC_INCIDENT_STATE_OPEN
    assert [u.version for u in item.updates] == [2, 1]
    assert item.updates[0].headline == "下单已部分恢复"
    assert item.updates[1].text_en == "We are working on failing orders."
    assert item.updates[0].published_at.ToDatetime() > item.updates[1].published_at.ToDatetime()
    assert not item.HasField("resolved_at")
    assert_public_only(reply)

    # The incident itself keeps who published each version.
    got = await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))
    assert [(s.version, s.published_by) for s in got.incident.statements] == [
        (1, "tester"),
        (2, "tester"),
    ]


async def test_a_resolved_incident_stays_in_the_history_for_its_days(
    incident_stub: Stub, incident_service: IncidentService, incident_clock: FakeClock
) -> None:
    incident_id = await declare(incident_stub)
    await publish(incident_stub, incident_id, "支付延迟", "部分支付处理延迟。")
    await incident_stub.ResolveIncident(
        pb.ResolveIncidentRequest(incident_id=incident_id, summary="ts-bob restarted db-primary-7"),
        metadata=key(),
    )
    reply = await page(incident_stub, incident_service)
    assert incident_id not in {item.incident_id for item in reply.open}
    resolved = {item.incident_id: item for item in reply.resolved}
    assert resolved[incident_id].state == pb.PUBLIC_INCIDENT_STATE_RESOLVED
    assert resolved[incident_id].HasField("resolved_at")
    assert reply.history_days == 7
    assert_public_only(reply)

    incident_clock.advance(timedelta(days=8))
    later = await page(incident_stub, incident_service)
    assert incident_id not in {item.incident_id for item in later.resolved}
    longer = await page(incident_stub, incident_service, days=30)
    assert incident_id in {item.incident_id for item in longer.resolved}


async def test_bad_statements_and_windows_are_refused_with_their_fields(
    incident_stub: Stub,
) -> None:
    incident_id = await declare(incident_stub)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await publish(incident_stub, incident_id, "", "")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == ["headline", "text"]
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await publish(incident_stub, "I-nope", "h", "t")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as window:
        await incident_stub.GetStatusPage(pb.GetStatusPageRequest(history_days=91))
    assert window.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(window.value) == ["history_days"]


APOLOGY = """\
version: notices-test.2
templates:
  apology:
    subject: "致歉：{headline}"
    body: "{statement}（{incident_id}）"
    subject_en: "Apology: {headline}"
    body_en: "{statement} ({incident_id})"
"""


async def test_the_templates_are_versioned_data_that_notify_customers_uses(
    incident_stub: Stub, incident_service: IncidentService
) -> None:
    seeded = await incident_stub.GetNoticeTemplates(pb.GetNoticeTemplatesRequest(revision=1))
    assert seeded.policy.version == "notices-2026.1" and "first_notice" in seeded.policy.document
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await incident_stub.PutNoticeTemplates(
            pb.PutNoticeTemplatesRequest(document=APOLOGY.replace("{statement}", "{who}")),
            metadata=key(),
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == ["document.templates.apology.body"]
    put = await incident_stub.PutNoticeTemplates(
        pb.PutNoticeTemplatesRequest(document=APOLOGY, reason="an apology"), metadata=key()
    )
    assert put.policy.version == "notices-test.2" and put.policy.current

    reply = await incident_stub.DeclareIncident(
        pb.DeclareIncidentRequest(
            type="server_crash", title=TITLE, factors=SEVERE, customer_ids=["C-42"]
        ),
        metadata=key(),
    )
    incident_id = reply.incident.incident_id
    await publish(incident_stub, incident_id, "退款延迟", "部分退款延迟到账。")
    with pytest.raises(grpc.aio.AioRpcError) as gone:  # no longer in force
        await incident_stub.NotifyCustomers(
            pb.NotifyCustomersRequest(incident_id=incident_id, template_id="first_notice")
        )
    assert field_violations(gone.value) == ["template_id"]
    notified = await incident_stub.NotifyCustomers(
        pb.NotifyCustomersRequest(incident_id=incident_id, template_id="apology"), metadata=key()
    )
    assert notified.notification_id == f"{incident_id}-c0"
    assert incident_service.store is not None
    messages = await incident_service.store.read_subject(
        stream=STREAM.name, subject=f"{INCIDENT_SUBJECTS}.{incident_id}"
    )
    decided = [
        item.event
        for message in messages
        for item in CODEC.decode_batch(message.batch)
        if isinstance(item.event, d.CustomersNotificationDecided)
    ]
    assert [(e.templates_version, e.subject, e.customer_ids) for e in decided] == [
        ("notices-test.2", "致歉：退款延迟", ("C-42",))
    ]
    assert decided[0].body == f"部分退款延迟到账。（{incident_id}）"
