"""The must-holds of issue 14 item 1: a real Prometheus whose rule fires three alerts of one
group, a real Alertmanager (Debian `prometheus-alertmanager`) sending them to the gateway —
through `webhook_configs`, and through its own `pagerduty_configs` pointed at `/v2/enqueue` —
and the incident service behind it: ONE incident for the group, resolved when the alerts
resolve; a repeated PagerDuty trigger with the same dedup_key appends nothing.

The alerts resolve through Prometheus's own evaluation: the rule file is rewritten (firing:
`vector(1)` under three label sets; resolved: an expression with no result) and Prometheus
reloads it on SIGHUP.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops_eventstore.codec import from_timestamp
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from careops_platform.api_keys import ApiKeyStore
from gateway.main import GatewayService
from gateway.tests.conftest import address, running_gateway
from incident import application
from incident.domain import intake
from incident.main import IncidentService
from incident.tests.conftest import incident_service, receivers

from tests.support import channel_to, eventually, read_log, shared_internal_key

PROMETHEUS = "/usr/bin/prometheus"  # Debian package `prometheus` (scripts/system-deps.sh)
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"  # Debian `prometheus-alertmanager`
INSTANCES = ("web-1", "web-2", "web-3")
RULE = "CareOpsCheckoutDown"
SUMMARY = "Checkout is down on {{ $labels.instance }}"
WAIT = 45.0  # a bound on waiting for the external processes, never a timing assertion

__all__ = ["incident_service", "receivers"]


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
    """The real clock: Alertmanager and Prometheus run on it."""
    return None


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys") / "api-keys.json"


@pytest.fixture(scope="module")
async def gateway(
    incident_service: IncidentService, keys_file: Path
) -> AsyncIterator[GatewayService]:
    async with running_gateway(
        {"auth_api_keys_file": str(keys_file)}, incident=address(incident_service)
    ) as gw:
        yield gw


@pytest.fixture(scope="module")
async def rules(incident_service: IncidentService) -> None:
    """The integrations' rules: Prometheus's alerts are server crashes (the test matrix)."""
    document = (
        "version: intake-test-1\n"
        "default:\n  default: {type: server_crash}\n"
        "integrations:\n"
        "  prom-webhook: {kind: alertmanager, default: {type: server_crash}}\n"
        "  prom-pagerduty:\n    kind: pagerduty\n"
        "    default: {type: server_crash, factors: {users_affected: 5000, core_system: 1}}\n"
    )
    async with channel_to(incident_service) as channel:
        await incident_pb2_grpc.IncidentServiceStub(channel).PutIntegrationPolicy(
            pb.PutIntegrationPolicyRequest(document=document, reason="intake test")
        )


@dataclass
class Prometheus:
    rules: Path
    process: subprocess.Popen[bytes]

    def fire(self) -> None:
        """Three alerts of one rule (one group in Alertmanager), `for: 0s`."""
        expression = " or ".join(
            f'label_replace(vector(1), "instance", "{name}", "", "")' for name in INSTANCES
        )
        self._write(expression)

    def resolve(self) -> None:
        self._write("vector(1) == 0")

    def _write(self, expression: str) -> None:
        group = {
            "groups": [
                {
                    "name": "careops-intake",
                    "interval": "1s",
                    "rules": [
                        {
                            "alert": RULE,
                            "expr": expression,
                            "for": "0s",
                            "labels": {"severity": "critical"},
                            "annotations": {
                                "summary": "Checkout is down on {{ $labels.instance }}"
                            },
                        }
                    ],
                }
            ]
        }
        self.rules.write_text(json.dumps(group))
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)  # reload the rule file


@dataclass
class Alertmanager:
    port: int
    process: subprocess.Popen[bytes]


def _start_alertmanager(directory: Path, receiver: Mapping[str, object]) -> Alertmanager:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "global": {"resolve_timeout": "5s"},
        "route": {
            "receiver": "careops",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "2s",
        },
        "receivers": [{"name": "careops", **receiver}],
    }
    (directory / "alertmanager.yml").write_text(json.dumps(config))
    log = open(directory / "alertmanager.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={directory / 'alertmanager.yml'}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ],
        stdout=log,
        stderr=log,
    )
    log.close()
    return Alertmanager(port, process)


def _start_prometheus(directory: Path, alertmanager: Alertmanager) -> Prometheus:
    directory.mkdir(parents=True, exist_ok=True)
    rules = directory / "rules.json"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager.port}"]}]}]
        },
    }
    (directory / "prometheus.yml").write_text(json.dumps(config))
    prometheus = Prometheus(rules, subprocess.Popen(["true"]))  # rule file first, no reload
    prometheus.process.wait()
    prometheus.fire()
    log = open(directory / "prometheus.log", "wb")  # noqa: SIM115
    prometheus.process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{free_port()}",
            # Alerts evaluated before Alertmanager is discovered (~5 s) are sent again 1 s
            # later, not after the default minute.
            "--rules.alert.resend-delay=1s",
        ],
        stdout=log,
        stderr=log,
    )
    log.close()
    return prometheus


def _stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(20)


@contextlib.contextmanager
def monitoring(directory: Path, receiver: Mapping[str, object]) -> Iterator[Prometheus]:
    """Alertmanager with `receiver`, Prometheus feeding it; both stopped afterwards."""
    alertmanager = _start_alertmanager(directory / "alertmanager", receiver)
    prometheus = _start_prometheus(directory / "prometheus", alertmanager)
    try:
        yield prometheus
    finally:
        _stop(prometheus.process, alertmanager.process)


def _key(keys_file: Path, integration_id: str) -> str:
    key, _ = ApiKeyStore(keys_file).create(subject=integration_id, roles=["integration"])
    return key


def _gateway_url(gateway: GatewayService, path: str) -> str:
    assert gateway.http is not None
    return f"http://127.0.0.1:{gateway.http.port}{path}"


async def _groups(nats_url: str, integration_id: str) -> list[intake.AlertGroup]:
    """The integration's alert groups as their events on the log make them."""
    subject = application.ALERT_GROUP.subject_prefix + ".>"
    states: dict[str, intake.AlertGroup] = {}
    for batch in await read_log(nats_url, application.STREAM.name, subject):
        gid = batch.subject.rsplit(".", 1)[-1]
        state = states.get(gid, intake.initial_group(gid))
        for envelope in batch.batch.events:
            event = application.CODEC.decode(envelope)
            state = intake.evolve_group(state, event, from_timestamp(envelope.occurred_at))
        states[gid] = state
    return [s for s in states.values() if s.integration_id == integration_id]


async def _group_events(nats_url: str) -> int:
    subject = application.ALERT_GROUP.subject_prefix + ".>"
    return len(await read_log(nats_url, application.STREAM.name, subject))


async def _incident(service: IncidentService, incident_id: str) -> pb.Incident:
    async with channel_to(service) as channel:
        stub = incident_pb2_grpc.IncidentServiceStub(channel)
        reply = await stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))
    return reply.incident


async def _one_open_group(nats_url: str, integration_id: str) -> intake.AlertGroup | None:
    groups = await _groups(nats_url, integration_id)
    assert len(groups) <= 1, groups
    return groups[0] if groups and groups[0].open else None


def received(source: str, outcome: str) -> float:
    value: float = application.ALERTS_RECEIVED.labels(source, outcome)._value.get()
    return value


async def test_alertmanager_webhook_opens_one_incident_for_three_alerts_and_resolves_it(
    tmp_path: Path,
    gateway: GatewayService,
    incident_service: IncidentService,
    incident_nats: EmbeddedNats,
    keys_file: Path,
    rules: None,
) -> None:
    key = _key(keys_file, "prom-webhook")
    receiver = {
        "webhook_configs": [
            {
                "url": _gateway_url(gateway, "/v1/integrations/alertmanager"),
                "send_resolved": True,
                "http_config": {"authorization": {"type": "Bearer", "credentials": key}},
            }
        ]
    }
    with monitoring(tmp_path, receiver) as prometheus:
        group = await eventually(
            lambda: _one_open_group(incident_nats.url, "prom-webhook"),
            timeout=WAIT,
            what="Alertmanager's group opens an incident",
        )
        # All three alerts of the group, in the one incident (however Alertmanager batched them).
        group = await eventually(
            lambda: _full_group(incident_nats.url, "prom-webhook"),
            timeout=WAIT,
            what="the three alerts join the group",
        )
        incident = await eventually(
            lambda: _incident(incident_service, group.incident_id), what="the incident"
        )
        assert incident.type == "server_crash"
        assert incident.title.startswith("Checkout is down on web-")
        assert incident.resolved_at.seconds == 0
        prometheus.resolve()
        await eventually(
            lambda: _resolved(incident_service, group.incident_id),
            timeout=WAIT,
            what="the incident resolves when the alerts resolve",
        )
    groups = await _groups(incident_nats.url, "prom-webhook")
    assert len(groups) == 1 and groups[0].episode == 1  # one group, one incident
    assert groups[0].last_resolved == group.incident_id


async def _full_group(nats_url: str, integration_id: str) -> intake.AlertGroup | None:
    group = await _one_open_group(nats_url, integration_id)
    return group if group is not None and len(group.firing) == len(INSTANCES) else None


async def _resolved(service: IncidentService, incident_id: str) -> bool:
    incident = await _incident(service, incident_id)
    return incident.resolved_at.seconds > 0


async def test_alertmanager_pagerduty_configs_trigger_and_resolve_the_same_incident(
    tmp_path: Path,
    gateway: GatewayService,
    incident_service: IncidentService,
    incident_nats: EmbeddedNats,
    keys_file: Path,
    rules: None,
) -> None:
    key = _key(keys_file, "prom-pagerduty")
    receiver = {
        "pagerduty_configs": [
            {
                "url": _gateway_url(gateway, "/v2/enqueue"),
                "routing_key": key,
                "send_resolved": True,
            }
        ]
    }
    with monitoring(tmp_path, receiver) as prometheus:
        group = await eventually(
            lambda: _one_open_group(incident_nats.url, "prom-pagerduty"),
            timeout=WAIT,
            what="Alertmanager's PagerDuty trigger opens an incident",
        )
        incident = await eventually(
            lambda: _incident(incident_service, group.incident_id), what="the incident"
        )
        assert incident.type == "server_crash"
        # Alertmanager repeats the trigger (repeat_interval 2s) with the same dedup_key: the
        # intake counts it a duplicate and appends nothing, to the group or to the incident.
        events_before = await _group_events(incident_nats.url)
        incident_before = await _integration_events(incident_nats.url, group.incident_id)
        assert any(kind.endswith("IncidentDeclared") for kind in incident_before)
        duplicates = received("pagerduty", "duplicate")
        await eventually(
            lambda: received("pagerduty", "duplicate") > duplicates,
            timeout=WAIT,
            what="a repeated trigger",
        )
        assert await _group_events(incident_nats.url) == events_before
        # The incident goes on paging and escalating (its timers), but nothing as the
        # integration: the repeated trigger added no event.
        assert await _integration_events(incident_nats.url, group.incident_id) == incident_before
        prometheus.resolve()
        await eventually(
            lambda: _resolved(incident_service, group.incident_id),
            timeout=WAIT,
            what="Alertmanager's PagerDuty resolve resolves the same incident",
        )
    groups = await _groups(incident_nats.url, "prom-pagerduty")
    assert len(groups) == 1 and groups[0].episode == 1
    assert groups[0].last_resolved == group.incident_id


async def _integration_events(nats_url: str, incident_id: str) -> list[str]:
    """The incident's events appended as the integration (the intake's commands)."""
    subject = f"{application.INCIDENT_SUBJECTS}.{incident_id}"
    batches = await read_log(nats_url, application.STREAM.name, subject)
    return [e.type for b in batches for e in b.batch.events if e.actor == "prom-pagerduty"]
