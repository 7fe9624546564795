"""The gateway's alert intake routes in front of the real incident service: Alertmanager's
webhook, PagerDuty Events v2 (`/v2/enqueue`, answered as PagerDuty answers), the generic
webhook; integration keys (API keys of role `integration`) and their refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from careops.incident.v1 import incident_pb2 as ipb
from careops.incident.v1 import incident_pb2_grpc
from careops_platform import permissions
from careops_platform.api_keys import ApiKeyStore
from incident.main import IncidentService
from prometheus_client import REGISTRY

from gateway.main import GatewayService
from gateway.tests.conftest import address, running_gateway
from gateway.tests.issuer import shared_issuer
from tests.support import channel_to

RULES = {
    "version": "gateway-intake-1",
    "default": {"default": {"type": "server_crash"}},
    "integrations": {
        "hook": {
            "kind": "webhook",
            "default": {"type": "server_crash"},
            "mapping": {"dedup_key": "$.id", "summary": "$.title", "action": "$.state"},
        }
    },
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> ApiKeyStore:
    return ApiKeyStore(tmp_path_factory.mktemp("intake-keys") / "keys.json")


@pytest.fixture(scope="module")
async def intake_gateway(
    incident: IncidentService, keys: ApiKeyStore
) -> AsyncIterator[GatewayService]:
    async with channel_to(incident) as channel:
        await incident_pb2_grpc.IncidentServiceStub(channel).PutIntegrationPolicy(
            ipb.PutIntegrationPolicyRequest(document=yaml.safe_dump(RULES))
        )
    settings = {"auth_api_keys_file": str(keys.path)}
    async with running_gateway(settings, incident=address(incident)) as gateway:
        yield gateway


@pytest.fixture(scope="module")
async def client(intake_gateway: GatewayService) -> AsyncIterator[aiohttp.ClientSession]:
    assert intake_gateway.http is not None
    async with aiohttp.ClientSession(f"http://127.0.0.1:{intake_gateway.http.port}") as session:
        yield session


def key(keys: ApiKeyStore, subject: str, role: str = "integration") -> str:
    value, _ = keys.create(subject=subject, roles=[role])
    return value


def alertmanager_payload(status: str, *fingerprints: str) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="DiskFull"}',
        "status": status,
        "receiver": "careops",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "DiskFull", "instance": fp, "severity": "critical"},
                "annotations": {"summary": f"Disk full on {fp}"},
                "startsAt": "2026-12-01T22:00:00.123456789Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": fp,
            }
            for fp in fingerprints
        ],
    }


def pagerduty(routing_key: str, action: str, dedup_key: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action}
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    if action == "trigger":
        event["payload"] = {
            "summary": "Payment API 5xx above 5%",
            "source": "grafana",
            "severity": "critical",
            "custom_details": {"rate": 0.07, "region": "eu"},
        }
    return event


async def post(
    client: aiohttp.ClientSession, path: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with client.post(path, json=body, headers=headers) as response:
        return response.status, await response.json()


async def test_alertmanager_webhook_opens_one_incident_for_the_group_and_resolves_it(
    client: aiohttp.ClientSession, keys: ApiKeyStore
) -> None:
    bearer = {"Authorization": f"Bearer {key(keys, 'prom-a')}"}
    path = "/v1/integrations/alertmanager"
    status, body = await post(client, path, alertmanager_payload("firing", "f1", "f2"), bearer)
    assert status == 200, body
    assert [a["outcome"] for a in body["alerts"]] == ["opened", "grouped"]
    incident_id = body["alerts"][0]["incident_id"]
    status, body = await post(
        client, path, alertmanager_payload("firing", "f1", "f2", "f3"), bearer
    )
    assert [a["outcome"] for a in body["alerts"]] == ["duplicate", "duplicate", "grouped"]
    assert {a["incident_id"] for a in body["alerts"]} == {incident_id}
    status, body = await post(
        client, path, alertmanager_payload("resolved", "f1", "f2", "f3"), bearer
    )
    assert [a["outcome"] for a in body["alerts"]] == ["resolved"] * 3


async def test_alertmanager_without_or_with_an_unknown_key_is_401(
    client: aiohttp.ClientSession, keys: ApiKeyStore
) -> None:
    path = "/v1/integrations/alertmanager"
    payload = alertmanager_payload("firing", "x")
    for headers in (None, {"Authorization": "Bearer cok_deadbeef_nope"}):
        status, body = await post(client, path, payload, headers)
        assert status == 401 and "integration key refused" in body["message"]
    # A valid key of another role is no integration key.
    oncall = {"Authorization": f"Bearer {key(keys, 'someone', 'oncall')}"}
    status, body = await post(client, path, payload, oncall)
    assert status == 401 and "no integration key" in body["message"]
    # A JWT of the trusted issuer is not an integration key either.
    jwt = {"Authorization": f"Bearer {shared_issuer().token()}"}
    status, _ = await post(client, path, payload, jwt)
    assert status == 401


async def test_an_alertmanager_payload_of_another_version_is_400_naming_the_field(
    client: aiohttp.ClientSession, keys: ApiKeyStore
) -> None:
    bearer = {"Authorization": f"Bearer {key(keys, 'prom-b')}"}
    payload = alertmanager_payload("firing", "x") | {"version": "3"}
    status, body = await post(client, "/v1/integrations/alertmanager", payload, bearer)
    assert status == 400
    assert body["details"][0]["fieldViolations"][0]["field"] == "version"


async def test_pagerduty_events_are_answered_as_pagerduty_answers(
    client: aiohttp.ClientSession, keys: ApiKeyStore
) -> None:
    routing_key = key(keys, "grafana")
    counted = {"route": "/v2/enqueue", "code": "202"}
    before = REGISTRY.get_sample_value("careops_http_requests_total", counted) or 0.0
    status, body = await post(client, "/v2/enqueue", pagerduty(routing_key, "trigger", "pay-1"))
    assert REGISTRY.get_sample_value("careops_http_requests_total", counted) == before + 1
    assert (status, body) == (
        202,
        {"status": "success", "message": "Event processed", "dedup_key": "pay-1"},
    )
    again = await post(client, "/v2/enqueue", pagerduty(routing_key, "trigger", "pay-1"))
    assert again == (202, body)
    for action in ("acknowledge", "resolve"):
        status, answer = await post(client, "/v2/enqueue", pagerduty(routing_key, action, "pay-1"))
        assert (status, answer["dedup_key"]) == (202, "pay-1")
    # A trigger without a dedup_key gets one, as PagerDuty generates it.
    status, body = await post(client, "/v2/enqueue", pagerduty(routing_key, "trigger"))
    assert status == 202 and len(body["dedup_key"]) == 32


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"event_action": "trigger"}, "'routing_key' is missing or blank"),
        ({"routing_key": "cok_x_y", "event_action": "trigger"}, "'routing_key' is not a valid"),
        ("VALID", "'event_action' is invalid"),
        ("NO_DEDUP", "'dedup_key' is required for event_action resolve"),
        ("BAD_SEVERITY", "'payload.severity' is invalid"),
    ],
)
async def test_an_invalid_pagerduty_event_is_400_invalid_event(
    client: aiohttp.ClientSession, keys: ApiKeyStore, event: Any, error: str
) -> None:
    routing_key = key(keys, "grafana-bad")
    if event == "VALID":
        event = pagerduty(routing_key, "trigger") | {"event_action": "explode"}
    elif event == "NO_DEDUP":
        event = pagerduty(routing_key, "resolve")
    elif event == "BAD_SEVERITY":
        event = pagerduty(routing_key, "trigger")
        event["payload"]["severity"] = "disaster"
    status, body = await post(client, "/v2/enqueue", event)
    assert status == 400
    assert body["status"] == "invalid event" and body["message"] == "Event object is invalid"
    assert any(e.startswith(error) for e in body["errors"]), body


async def test_pagerduty_over_the_rate_is_429(
    incident: IncidentService, keys: ApiKeyStore, tmp_path: Path
) -> None:
    routing_key = key(keys, "noisy")
    settings = {
        "auth_api_keys_file": str(keys.path),
        "rate_limit_per_second": 0.001,
        "rate_limit_burst": 1,
    }
    async with running_gateway(settings, incident=address(incident)) as gateway:
        assert gateway.http is not None
        async with aiohttp.ClientSession(f"http://127.0.0.1:{gateway.http.port}") as session:
            first, _ = await post(session, "/v2/enqueue", pagerduty(routing_key, "trigger", "n1"))
            async with session.post(
                "/v2/enqueue", json=pagerduty(routing_key, "trigger", "n1")
            ) as response:
                assert (first, response.status) == (202, 429)
                assert int(response.headers["Retry-After"]) >= 1


async def test_a_generic_webhook_is_mapped_by_its_integration(
    client: aiohttp.ClientSession, keys: ApiKeyStore
) -> None:
    bearer = {"Authorization": f"Bearer {key(keys, 'hook')}"}
    path = "/v1/integrations/webhook/hook"
    status, body = await post(client, path, {"id": "c-1", "title": "API down"}, bearer)
    assert status == 202 and body["alerts"][0]["outcome"] == "opened", body
    status, body = await post(client, path, {"id": "c-1", "state": "resolved"}, bearer)
    assert body["alerts"][0]["outcome"] == "resolved"
    status, body = await post(client, path, {"title": "no id"}, bearer)
    assert status == 400
    assert body["details"][0]["fieldViolations"][0]["field"] == "alerts[0].dedup_key"
    # Another integration's path with this key: refused.
    status, body = await post(client, "/v1/integrations/webhook/other", {"id": "x"}, bearer)
    assert status == 403


async def test_the_permission_table_decides_as_for_every_rpc(
    incident: IncidentService, keys: ApiKeyStore, tmp_path: Path
) -> None:
    """A table that takes IngestAlerts from the integration role: its key is refused 403."""
    table = (Path(permissions.__file__).parent / "permissions.yaml").read_text()
    rule = (
        "{rpc: IngestAlerts, permission: incident.alerts.ingest,\n"
        "         roles: [admin, integration]}"
    )
    assert rule in table
    narrowed = tmp_path / "permissions.yaml"
    narrowed.write_text(table.replace(rule, rule.replace("[admin, integration]", "[admin]")))
    settings = {"auth_api_keys_file": str(keys.path), "auth_permissions_file": str(narrowed)}
    routing_key = key(keys, "narrowed")
    async with running_gateway(settings, incident=address(incident)) as gateway:
        assert gateway.http is not None
        async with aiohttp.ClientSession(f"http://127.0.0.1:{gateway.http.port}") as session:
            status, body = await post(session, "/v2/enqueue", pagerduty(routing_key, "trigger"))
            assert status == 403 and "incident.alerts.ingest" in body["message"]
            bearer = {"Authorization": f"Bearer {routing_key}"}
            payload = alertmanager_payload("firing", "x")
            status, _ = await post(session, "/v1/integrations/alertmanager", payload, bearer)
            assert status == 403
