"""The registry holds the contract's names and numbers (ARCHITECTURE §5)."""

from __future__ import annotations

import pytest
from careops_eventstore import StreamSpec

from careops_platform import registry


def test_default_ports_are_the_contract() -> None:
    ports = {e.name: (e.grpc_port, e.metrics_port, e.http_port) for e in registry.SERVICES}
    assert ports == {
        "ticketing": (50051, 9101, None),
        "customer": (50052, 9102, None),
        "incident": (50053, 9103, None),
        "quality": (50054, 9104, None),
        "gateway": (50050, 9105, 8080),
    }
    assert registry.SERVICES[-1].name == "gateway"  # started last, in front of the others


def test_variables_and_components_keep_their_names() -> None:
    customer = registry.service("customer")
    assert (customer.port_env, customer.metrics_env, customer.addr_env) == (
        "CAREOPS_CUSTOMER_GRPC_PORT",
        "CAREOPS_CUSTOMER_METRICS_PORT",
        "CAREOPS_CUSTOMER_ADDR",
    )
    assert registry.service("gateway").http_port_env == "CAREOPS_GATEWAY_HTTP_PORT"
    components = [entry.component for entry in registry.SERVICES]
    assert components == [
        "ticketing",
        "customer-profile",
        "incident-crisis",
        "quality-scoring",
        "gateway",
    ]


def test_each_context_owns_one_stream_over_its_subjects() -> None:
    assert registry.stream("ticketing").spec(replicas=3) == StreamSpec(
        "CAREOPS_TICKETING", ("careops.ticketing.>",), replicas=3
    )
    incident = registry.stream("incident")
    assert incident.prefix("incident") == "careops.incident.incident"
    assert incident.filter("incident") == "careops.incident.incident.>"
    assert incident.filter() == "careops.incident.>"
    assert [entry.name for entry in registry.BACKENDS] == [
        "ticketing",
        "customer",
        "incident",
        "quality",
    ]
    with pytest.raises(KeyError, match="owns no stream"):
        registry.stream("gateway")
    with pytest.raises(KeyError, match="known: ticketing"):
        registry.service("billing")
