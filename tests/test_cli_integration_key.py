"""An operator's integration key end to end (docs/incidents.md "Alert intake"): `careops apikey
create --role integration --subject <integration id>` writes the key into the data dir the
gateway reads, and one PagerDuty Events v2 trigger with that key as its routing_key opens the
integration's incident in the real incident service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from careops_cli.main import app
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from careops_platform.api_keys import ApiKeyStore
from gateway.main import GatewayService
from gateway.tests.conftest import address, running_gateway
from incident.domain import intake
from incident.main import IncidentService
from incident.tests.conftest import incident_service, receivers
from typer.testing import CliRunner

from tests.support import channel_to, shared_internal_key

__all__ = ["incident_service", "receivers"]

INTEGRATION = "grafana-payments"
RULES = (
    "version: cli-key-test-1\n"
    "default:\n  default: {type: server_crash}\n"
    f"integrations:\n  {INTEGRATION}: {{kind: pagerduty, default: {{type: server_crash}}}}\n"
)


@pytest.fixture(scope="module", autouse=True)
def internal_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with shared_internal_key(tmp_path_factory.mktemp("internal-key")) as signing:
        yield signing


@pytest.fixture(scope="module")
def incident_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(data_dir=tmp_path_factory.mktemp("nats"), port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def incident_clock() -> None:
    return None


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
async def gateway(
    incident_service: IncidentService, data_dir: Path
) -> AsyncIterator[GatewayService]:
    """The gateway reading the data dir's API keys (no auth_api_keys_file: `careops up`'s)."""
    async with channel_to(incident_service) as channel:
        await incident_pb2_grpc.IncidentServiceStub(channel).PutIntegrationPolicy(
            pb.PutIntegrationPolicyRequest(document=RULES, reason="cli key test")
        )
    settings = {"data_dir": str(data_dir), "auth_api_keys_file": ""}
    async with running_gateway(settings, incident=address(incident_service)) as gw:
        yield gw


async def test_a_key_created_with_the_cli_posts_a_pagerduty_event_that_opens_an_incident(
    gateway: GatewayService, incident_service: IncidentService, data_dir: Path
) -> None:
    args = ["apikey", "create", "--role", "integration", "--subject", INTEGRATION]
    args += ["--name", "Grafana payments", "--data-dir", str(data_dir)]
    created = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert created.exit_code == 0, created.output
    routing_key = created.stdout.strip()
    principal = ApiKeyStore.of(data_dir).verify(routing_key)
    assert (principal.subject, set(principal.roles)) == (INTEGRATION, {"integration"})
    event = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": "pay-api-5xx",
        "payload": {"summary": "Payment API 5xx", "source": "grafana", "severity": "critical"},
    }
    assert gateway.http is not None
    base = f"http://127.0.0.1:{gateway.http.port}"
    async with (
        aiohttp.ClientSession(base) as session,
        session.post("/v2/enqueue", json=event) as response,
    ):
        assert response.status == 202, await response.text()
        assert (await response.json())["dedup_key"] == "pay-api-5xx"
    incident_id = intake.incident_id_of(INTEGRATION, "pay-api-5xx", 1)
    async with channel_to(incident_service) as channel:
        stub = incident_pb2_grpc.IncidentServiceStub(channel)
        got = await stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))
    assert got.incident.title == "Payment API 5xx"
    assert got.incident.source == t.INCIDENT_SOURCE_MONITORING
