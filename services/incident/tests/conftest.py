"""Fixtures: the incident service in-process on a real NATS, with real local receivers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from careops.incident.v1 import incident_pb2_grpc
from careops_eventstore.nats_embedded import EmbeddedNats, free_port

from incident.main import IncidentService, IncidentSettings
from tests.receivers import DOWN, HttpReceiver, MailReceiver, http_receiver, smtp_receiver
from tests.support import FakeClock, channel_to

SIGNING_KEY = "test-signing-key"
CS_SLACK = DOWN + "slack-cs"  # customer service's Slack is down: it always answers 503


def oncall(
    http: HttpReceiver, mail_port: int, *, wait_seconds: int = 1, next_wait_seconds: int = 0
) -> dict[str, Any]:
    """Three teams whose members are reachable on the local receivers; technical support
    escalates on-call -> next after `wait_seconds`, then after `next_wait_seconds` (default the
    same)."""
    forever = {
        "handoff": "09:00",
        "time_zone": "Asia/Shanghai",
        "shift_days": 3650,
        "start_date": "2026-01-01",
    }
    return {
        "teams": {
            "technical_support": {
                "manager": "ts-lead",
                "members": [
                    {
                        "id": "ts-alice",
                        "contacts": [
                            {"kind": "webhook", "address": http.url("/ts-alice")},
                            {"kind": "pagerduty", "address": "rk-technical-support"},
                        ],
                    },
                    {
                        "id": "ts-bob",
                        "contacts": [
                            {"kind": "webhook", "address": http.url("/ts-bob")},
                        ],
                    },
                    {
                        "id": "ts-lead",
                        "contacts": [
                            {"kind": "webhook", "address": http.url("/ts-lead")},
                        ],
                    },
                ],
                "rotation": {"members": ["ts-alice", "ts-bob"], **forever},
                "escalation": {
                    "steps": [
                        {"target": "oncall", "wait_seconds": wait_seconds},
                        {"target": "next", "wait_seconds": next_wait_seconds or wait_seconds},
                    ],
                    "repeat": 1,
                },
            },
            "customer_service": {
                "members": [
                    {
                        "id": "cs-carol",
                        "contacts": [
                            {"kind": "slack", "address": http.url(CS_SLACK)},
                            {"kind": "email", "address": "carol@example.test"},
                        ],
                    },
                ],
                "escalation": {"steps": [{"target": "oncall", "wait_seconds": 300}], "repeat": 1},
            },
            "brand_pr": {
                "members": [
                    {
                        "id": "pr-erin",
                        "contacts": [
                            {"kind": "slack", "address": http.url("/slack-pr")},
                            {"kind": "pagerduty", "address": "rk-brand-pr"},
                        ],
                    },
                ],
            },
        }
    }


MATRIX = {
    "types": {
        "server_crash": {
            "title": "Server crash",
            "teams": {"technical_support": "red", "customer_service": "yellow", "brand_pr": "grey"},
        },
        "complaint_surge": {
            "title": "Complaint surge",
            "teams": {"customer_service": "red", "technical_support": "yellow"},
        },
    }
}


def write_config(
    directory: Path, http: HttpReceiver, mail_port: int, **kwargs: Any
) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "oncall.yaml").write_text(yaml.safe_dump(oncall(http, mail_port, **kwargs)))
    (directory / "matrix.yaml").write_text(yaml.safe_dump(MATRIX))
    return {
        "oncall_file": str(directory / "oncall.yaml"),
        "response_matrix_file": str(directory / "matrix.yaml"),
        "webhook_signing_key": SIGNING_KEY,
        "pagerduty_events_url": http.url("/pagerduty"),
        "pagerduty_change_url": http.url("/pagerduty-change"),
        "smtp_port": str(mail_port),
        "notify_backoff_seconds": "0.2",
    }


@asynccontextmanager
async def running_incident_service(
    data_dir: Path, nats_url: str, **overrides: Any
) -> AsyncIterator[IncidentService]:
    """Starts IncidentService on free ports (real clock); stops it afterwards."""
    async with incident_service_on(None, data_dir, nats_url, **overrides) as service:
        yield service


@asynccontextmanager
async def incident_service_on(
    clock: FakeClock | None, data_dir: Path, nats_url: str, **overrides: Any
) -> AsyncIterator[IncidentService]:
    """Starts IncidentService on free ports on `clock` (None: the real one)."""
    settings = IncidentSettings(
        nats_url=nats_url,
        data_dir=str(data_dir),
        grpc_port=0,
        metrics_port=0,
        timer_interval_seconds=0.1,
        shutdown_grace_seconds=0,
        **overrides,
    )
    service = IncidentService(settings, clock=clock) if clock else IncidentService(settings)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture(scope="module")
def receivers(service_database_url: str) -> Iterator[tuple[HttpReceiver, MailReceiver]]:
    """Local webhook and SMTP receivers (fresh for each database pass)."""
    with http_receiver() as http, smtp_receiver() as mail:
        yield http, mail


@pytest.fixture(scope="module")
def incident_nats(
    tmp_path_factory: pytest.TempPathFactory, service_database_url: str
) -> Iterator[EmbeddedNats]:
    """A NATS server of this test module's own (of each database pass of a module marked
    both_databases)."""
    server = EmbeddedNats(data_dir=tmp_path_factory.mktemp("nats"), port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def incident_clock(service_database_url: str) -> FakeClock:
    """The module service's clock (fresh for each database pass): page timers fire only when a
    test advances it."""
    return FakeClock()


@pytest.fixture(scope="module")
async def incident_service(
    tmp_path_factory: pytest.TempPathFactory,
    incident_nats: EmbeddedNats,
    receivers: tuple[HttpReceiver, MailReceiver],
    incident_clock: FakeClock | None,
    service_database_url: str,
) -> AsyncIterator[IncidentService]:
    http, mail = receivers
    directory = tmp_path_factory.mktemp("incident")
    config = write_config(directory, http, mail.port)
    config["database_url"] = service_database_url
    async with incident_service_on(
        incident_clock, directory / "data", incident_nats.url, **config
    ) as svc:
        yield svc


@pytest.fixture(scope="module")
async def incident_stub(
    incident_service: IncidentService,
) -> AsyncIterator[incident_pb2_grpc.IncidentServiceStub]:
    assert incident_service.server is not None
    async with channel_to(incident_service) as channel:
        yield incident_pb2_grpc.IncidentServiceStub(channel)
