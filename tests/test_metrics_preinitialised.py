"""Every bounded label combination of every counter is on /metrics at 0 right after start.

A labelled series that appears only at its first increment hides that increment from
`increase()`: the alert on the first burst of breaches or decryption failures would count 0.
The four services run as real processes on a fresh NATS and fresh databases.
"""

from __future__ import annotations

import itertools
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ServiceProcess

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = ("phone", "email", "chat", "social", "app", "web", "store")
PRIORITIES = ("low", "normal", "high", "urgent")
LEVELS = ("A", "B", "C")
HOLD_REASONS = ("waiting_customer", "waiting_third_party", "waiting_internal")
MATRIX = yaml.safe_load((ROOT / "services/incident/matrix_default.yaml").read_text())["types"]
TYPES = tuple(MATRIX)
TEAMS = tuple(sorted({team for spec in MATRIX.values() for team in spec["teams"]}))
# Counters of the shared libraries: gRPC method x status code (most codes are never used)
# and the event store's own (projections, reactions, appends, timers), checked there.
NOT_PREINITIALISED = frozenset(
    {
        "careops_grpc_requests",
        "careops_eventstore_appends",
        "careops_eventstore_aggregate_loads",
        "careops_projection_events",
        "careops_projection_skipped",
        "careops_reaction_messages",
        "careops_timers_fired",
    }
)


def product(*values: Iterable[str]) -> set[tuple[str, ...]]:
    return set(itertools.product(*values))


# service -> counter (without _total) -> (label names, every combination expected at 0)
EXPECTED: dict[str, dict[str, tuple[tuple[str, ...], set[tuple[str, ...]]]]] = {
    "ticketing": {
        "careops_tickets_opened": (("channel", "priority"), product(CHANNELS, PRIORITIES)),
        "careops_sla_events": (
            ("clock", "kind", "channel", "priority"),
            product(("first_response", "resolution"), ("warning", "breach"), CHANNELS, PRIORITIES),
        ),
        "careops_ticket_events": (("event",), {("TicketOpened",), ("SlaBreached",)}),
        "careops_ticketing_decryption_failures": (
            ("reason",),
            product(("missing_key", "wrong_master_key", "corrupt")),
        ),
    },
    "customer": {
        "careops_customer_decryption_failures": (
            ("reason",),
            product(("missing_key", "wrong_master_key", "corrupt")),
        ),
        "careops_customer_erasures": (
            ("reason",),
            product(("customer_request", "consent_withdrawn", "retention_expired", "legal_order")),
        ),
        "careops_customer_segment_changes": (
            ("tier",),
            product(("high_value", "potential", "regular", "low_frequency")),
        ),
        "careops_customer_purchases": (("currency",), product(("EUR", "CNY", "JPY", "USD"))),
    },
    "incident": {
        "careops_incidents_declared": (
            ("level", "type", "drill"),
            product(LEVELS, TYPES, ("true", "false")),
        ),
        "careops_pages": (
            ("team", "outcome"),
            product(TEAMS, ("requested", "delivered", "failed")),
        ),
        "careops_page_escalations": (("team",), product(TEAMS)),
        "careops_page_delayed_contacts": (("team",), product(TEAMS)),
        "careops_incident_response_deadline_missed": (("level",), product(LEVELS)),
    },
    "quality": {
        "careops_quality_tickets_opened": (("channel", "priority"), product(CHANNELS, PRIORITIES)),
        "careops_quality_tickets_resolved": (
            ("channel", "priority"),
            product(CHANNELS, PRIORITIES),
        ),
        "careops_quality_sla_breaches": (("channel", "priority"), product(CHANNELS, PRIORITIES)),
        "careops_quality_surveys": (("channel",), product(CHANNELS)),
        "careops_quality_events": (("event",), {("SurveySubmitted",), ("FollowUpOverdue",)}),
        "careops_quality_decryption_failures": (
            ("reason",),
            product(("missing_key", "wrong_master_key", "corrupt")),
        ),
        "careops_quality_holds": (("reason",), product(HOLD_REASONS)),
        "careops_quality_sla_paused_seconds": (
            ("reason", "clock"),
            product(HOLD_REASONS, ("first_response", "resolution")),
        ),
        "careops_quality_sla_pauses_before_breach": (("reason",), product(HOLD_REASONS)),
    },
}


@pytest.fixture(scope="module")
def scrapes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Starts the four services at once on a fresh log; returns each one's first /metrics."""
    root = tmp_path_factory.mktemp("preinit")
    nats = EmbeddedNats(data_dir=root / "nats", port=free_port())
    nats.start()
    services = {
        name: ServiceProcess(root / name, nats.url, service=name)
        for name in ("ticketing", "customer", "incident", "quality")
    }
    for service in services.values():
        service.data_dir.mkdir()
    try:
        with ThreadPoolExecutor(len(services)) as pool:
            # A generous start timeout: the machine may be busy, and nothing here is timed.
            list(pool.map(lambda service: service.start(timeout=120), services.values()))
        yield {name: scrape(service.metrics_port) for name, service in services.items()}
    finally:
        for service in services.values():
            service.kill()
        nats.stop()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def counters(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Returns counter name (without _total) -> labels -> value of the `_total` samples."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "counter":
            continue
        samples = found.setdefault(family.name, {})
        for sample in family.samples:
            if sample.name.endswith("_total"):
                samples[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@pytest.mark.parametrize("service", sorted(EXPECTED))
def test_every_bounded_label_combination_is_present_at_zero_right_after_start(
    scrapes: dict[str, str], service: str
) -> None:
    found = counters(scrapes[service])
    for name, (labels, combinations) in EXPECTED[service].items():
        assert name in found, f"{service}: {name}_total is not exported"
        for combination in combinations:
            key = tuple(sorted(zip(labels, combination, strict=True)))
            assert found[name].get(key) == 0, f"{service}: {name}_total{dict(key)} is not at 0"
    silent = [name for name, samples in found.items() if not samples]
    assert not set(silent) - NOT_PREINITIALISED, f"{service}: counters without series: {silent}"
