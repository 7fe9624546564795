"""Telling customers about an incident across services: incident decides (NotifyCustomers),
customer-profile delivers by e-mail to a real SMTP receiver and records it on the 360, and the
incident shows how the notices went per channel (its projection of customer's events). Both
services run for real (in-process, one NATS, SQLite); they only meet on the log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import grpc
import pytest
from careops.customer.v1 import customer_pb2 as cpb
from careops.customer.v1 import customer_pb2_grpc
from careops.customer.v1 import types_pb2 as ct
from careops.incident.v1 import incident_pb2 as ipb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as it
from careops_eventstore.nats_embedded import EmbeddedNats
from customer.main import CustomerService, CustomerSettings
from incident.main import IncidentService, IncidentSettings
from incident.tests.conftest import write_config

from tests.receivers import MailReceiver, http_receiver, smtp_receiver
from tests.support import channel_to, eventually, field_violations


@dataclass
class Platform:
    incident: incident_pb2_grpc.IncidentServiceStub
    customer: customer_pb2_grpc.CustomerProfileServiceStub
    mail: MailReceiver


@pytest.fixture
def customer_mail() -> Iterator[MailReceiver]:
    with smtp_receiver() as receiver:
        yield receiver


@pytest.fixture
async def platform(
    nats_server: EmbeddedNats, tmp_path: Path, customer_mail: MailReceiver
) -> AsyncIterator[Platform]:
    common: dict[str, Any] = {
        "nats_url": nats_server.url,
        "grpc_port": 0,
        "metrics_port": 0,
        "shutdown_grace_seconds": 0,
    }
    with http_receiver() as pages, smtp_receiver() as pager_mail:
        config: dict[str, Any] = write_config(tmp_path / "incident-config", pages, pager_mail.port)
        services: list[Any] = [
            IncidentService(IncidentSettings(data_dir=str(tmp_path / "i"), **config, **common)),
            CustomerService(
                CustomerSettings(
                    data_dir=str(tmp_path / "c"),
                    segment_initial_delay_seconds=3600,
                    smtp_port=customer_mail.port,
                    notify_backoff_seconds=0,
                    **common,
                )
            ),
        ]
        async with AsyncExitStack() as stack:
            channels = []
            for service in services:
                await service.start()
                stack.push_async_callback(service.stop)
                channel = channel_to(service)
                stack.push_async_callback(channel.close)
                channels.append(channel)
            yield Platform(
                incident=incident_pb2_grpc.IncidentServiceStub(channels[0]),
                customer=customer_pb2_grpc.CustomerProfileServiceStub(channels[1]),
                mail=customer_mail,
            )


async def register(platform: Platform, locale: str) -> tuple[str, str]:
    email = f"c.{uuid.uuid4().hex[:10]}@example.com"
    reply = await platform.customer.RegisterCustomer(
        cpb.RegisterCustomerRequest(
            profile=ct.Profile(name="Wang Fang", email=email, locale=locale)
        )
    )
    return reply.customer.customer_id, email


async def notified(platform: Platform, customer_id: str) -> list[ct.TimelineEntry]:
    request = cpb.GetCustomer360Request(customer_id=customer_id)
    view = (await platform.customer.GetCustomer360(request)).view
    return [entry for entry in view.timeline if entry.kind == "incident_notified"]


def subjects_to(mail: MailReceiver, address: str) -> list[str]:
    return [
        str(message_from_bytes(content, policy=default)["Subject"])
        for _, recipients, content, _ in mail.messages
        if address in recipients
    ]


async def test_notify_customers_reaches_the_linked_and_the_segment_but_never_the_erased(
    platform: Platform,
) -> None:
    chinese, chinese_mail = await register(platform, "zh-CN")
    english, english_mail = await register(platform, "en-US")
    erased, erased_mail = await register(platform, "zh-CN")
    # A customer reached by phone only: an e-mail notice to them fails (no address).
    by_phone = (
        await platform.customer.RegisterCustomer(
            cpb.RegisterCustomerRequest(
                profile=ct.Profile(name="Li Lei", phone=f"+86138{uuid.uuid4().int % 10**8:08d}")
            )
        )
    ).customer.customer_id
    await platform.customer.EraseCustomer(
        cpb.EraseCustomerRequest(customer_id=erased, reason=ct.ERASURE_REASON_CUSTOMER_REQUEST)
    )
    key = (("idempotency-key", uuid.uuid4().hex),)
    declared = await platform.incident.DeclareIncident(
        ipb.DeclareIncidentRequest(
            type="server_crash",
            title="payments-db-3 split brain",
            factors=it.RiskFactors(users_affected=50_000, core_system=1.0, exposure=0.5),
            customer_ids=[chinese, erased, by_phone],
        ),
        metadata=key,
    )
    incident_id = declared.incident.incident_id
    await platform.incident.PublishStatement(
        ipb.PublishStatementRequest(
            incident_id=incident_id,
            headline="部分支付失败",
            text="部分用户的支付暂时失败，我们正在修复。",
            headline_en="Some payments fail",
            text_en="Some payments are failing; we are fixing it.",
        ),
        metadata=(("idempotency-key", uuid.uuid4().hex),),
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await platform.incident.NotifyCustomers(
            ipb.NotifyCustomersRequest(
                incident_id=incident_id, template_id="first_notice", segments=["vip"]
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == ["segments[0]"]

    reply = await platform.incident.NotifyCustomers(
        ipb.NotifyCustomersRequest(
            incident_id=incident_id, template_id="first_notice", segments=["regular"]
        ),
        metadata=(("idempotency-key", uuid.uuid4().hex),),
    )
    assert reply.notification_id == f"{incident_id}-c0"
    assert reply.incident.timeline[-1].kind == "customers_notified"

    # The linked customers first, then the segment's in registration order: the English
    # customer (in the segment only) is the last told.
    await eventually(lambda: notified(platform, english), what="the segment's customer told")
    assert subjects_to(platform.mail, chinese_mail) == ["【服务通知】部分支付失败"]
    assert subjects_to(platform.mail, english_mail) == ["[Service notice] Some payments fail"]
    assert subjects_to(platform.mail, erased_mail) == []
    assert len(platform.mail.messages) == 2
    for customer_id in (chinese, english):
        (entry,) = await notified(platform, customer_id)
        assert entry.summary == f"notified about incident {incident_id} by e-mail"
    assert await notified(platform, erased) == []
    body = message_from_bytes(platform.mail.messages[0][2], policy=default)
    text = body.get_content()  # type: ignore[attr-defined]
    assert "部分用户的支付暂时失败" in text and incident_id in text
    assert "payments-db-3" not in text  # the internal title is never sent

    async def deliveries() -> list[tuple[str, int, int]] | None:
        request = ipb.GetIncidentRequest(incident_id=incident_id)
        incident = (await platform.incident.GetIncident(request)).incident
        found = [(n.channel, n.notified, n.failed) for n in incident.customer_notices]
        return found if sum(n + f for _c, n, f in found) == 3 else None

    # The erased customer is never told, so never counted.
    assert await eventually(deliveries, what="the notices' outcomes on the incident") == [
        ("email", 2, 1)
    ]
