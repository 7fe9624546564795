"""Every service's settings default to the registry's ports, and the gateway to its addresses."""

from __future__ import annotations

import pytest
from careops_platform import registry
from careops_platform.settings import ServiceSettings
from customer.main import CustomerSettings
from gateway.main import GatewaySettings
from incident.main import IncidentSettings
from quality.main import QualitySettings
from ticketing.main import TicketingSettings

SETTINGS: dict[str, type[ServiceSettings]] = {
    "ticketing": TicketingSettings,
    "customer": CustomerSettings,
    "incident": IncidentSettings,
    "quality": QualitySettings,
}


@pytest.mark.parametrize("entry", registry.BACKENDS, ids=lambda entry: entry.name)
def test_the_services_settings_default_to_the_registry(entry: registry.ServiceEntry) -> None:
    fields = SETTINGS[entry.name].model_fields
    assert (fields["grpc_port"].default, fields["metrics_port"].default) == (
        entry.grpc_port,
        entry.metrics_port,
    )
    assert GatewaySettings.model_fields[f"{entry.name}_addr"].default == entry.default_address
