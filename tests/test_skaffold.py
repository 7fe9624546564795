"""skaffold.yaml builds, deploys and forwards every service that `careops up` runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from careops_cli.platform import SERVICES, ServiceSpec

from tests.test_chart import CHART, CHART_SERVICES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def skaffold() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    return config


def release(config: dict[str, Any], name: str) -> dict[str, Any]:
    releases: list[dict[str, Any]] = config["deploy"]["helm"]["releases"]
    return next(r for r in releases if r["name"] == name)


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
def test_every_service_has_an_artifact_image_values_and_a_port_forward(
    skaffold: dict[str, Any], spec: ServiceSpec
) -> None:
    key, _ = CHART_SERVICES[spec.name]
    values_key = "".join(part.capitalize() for part in key.split("-"))
    values_key = values_key[0].lower() + values_key[1:]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values[values_key]["enabled"] is True, f"{values_key} is not enabled in the chart"

    image = f"careops-{spec.name}"
    artifacts = {a["image"]: a for a in skaffold["build"]["artifacts"]}
    assert artifacts[image]["docker"]["buildArgs"] == {"SERVICE": spec.name}

    templates = release(skaffold, "careops")["setValueTemplates"]
    variable = image.replace("-", "_")
    assert templates[f"{values_key}.image.repository"] == f"{{{{.IMAGE_REPO_{variable}}}}}"
    assert templates[f"{values_key}.image.tag"] == f"{{{{.IMAGE_TAG_{variable}}}}}"

    forwards = {(f["resourceName"], f["port"]) for f in skaffold["portForward"]}
    assert (f"careops-{key}", spec.grpc_port) in forwards

    dev = next(p for p in skaffold["profiles"] if p["name"] == "dev")
    dev_values = next(
        patch["value"] for patch in dev["patches"] if patch["path"].endswith("/1/setValues")
    )
    assert dev_values[f"{values_key}.replicas"] == "1"


def test_nats_runs_jetstream_with_fsync_on_every_write(skaffold: dict[str, Any]) -> None:
    nats = release(skaffold, "nats")
    assert nats["remoteChart"] == "nats"
    jetstream = nats["overrides"]["config"]["jetstream"]
    assert jetstream["enabled"] and jetstream["fileStore"]["enabled"]
    assert jetstream["merge"]["sync_interval"] == "always"
    assert nats["overrides"]["config"]["cluster"]["replicas"] == 3
