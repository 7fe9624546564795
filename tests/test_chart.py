"""charts/careops agrees with the services: ports, probes, CAREOPS_* variables, security."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from careops_cli.platform import SERVICES, ServiceSpec
from careops_platform import registry
from careops_platform.identity import Principal
from careops_sla import load_policy
from customer.main import CustomerSettings
from gateway.main import GatewaySettings
from gateway.tests.certificates import make_pair
from incident.application import load_matrix, load_teams
from incident.main import IncidentSettings
from pydantic import AliasChoices
from pydantic_settings import BaseSettings
from quality.main import QualitySettings
from ticketing.main import TicketingSettings

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "careops"
HELM = ROOT / ".tools" / "helm"
RELEASE = "careops"
SETTINGS: dict[str, type[BaseSettings]] = {
    "ticketing": TicketingSettings,
    "customer": CustomerSettings,
    "incident": IncidentSettings,
    "quality": QualitySettings,
    "gateway": GatewaySettings,
}
# careops_cli.platform.SERVICES name -> (chart component, settings class the process reads).
CHART_SERVICES: dict[str, tuple[str, type[BaseSettings]]] = {
    entry.name: (entry.component, SETTINGS[entry.name]) for entry in registry.SERVICES
}
# Policy files in the chart -> the service defaults they copy, and the loader that must accept them.
POLICY_FILES: dict[str, tuple[Path, Callable[[str | None], object]]] = {
    "sla.yaml": (ROOT / "libs" / "careops_sla" / "sla_default.yaml", load_policy),
    "response-matrix.yaml": (ROOT / "services" / "incident" / "matrix_default.yaml", load_matrix),
    "oncall.yaml": (ROOT / "services" / "incident" / "oncall_default.yaml", load_teams),
}
VARIANTS = {
    "default": [],
    "production": ["-f", str(CHART / "values-production.yaml")],
}

Manifest = dict[str, Any]


# The internal identity's key files (a Secret, not policies): the gateway's and the services'.
INTERNAL_KEY_VARIABLES = ("CAREOPS_INTERNAL_SIGNING_KEY_FILE", "CAREOPS_INTERNAL_VERIFY_KEY_FILE")


def internal_key_pair(directory: Path) -> dict[str, Path]:
    """Returns the internal identity's variables -> a key pair made in `directory` with the
    openssl commands docs/deploy.md gives."""
    signing, verify = directory / "signing-key.pem", directory / "verify-key.pem"
    for command in (
        ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", signing],
        ["pkey", "-in", signing, "-pubout", "-out", verify],
    ):
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return dict(zip(INTERNAL_KEY_VARIABLES, (signing, verify), strict=True))


def helm_binary() -> Path:
    """Returns .tools/helm, fetched by scripts/chart-check.sh when missing."""
    if not HELM.exists():
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "chart-check.sh"), "fetch-helm"],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
    return HELM


def helm_template(*args: str) -> subprocess.CompletedProcess[str]:
    """Returns the finished `helm template` of the chart with `args`."""
    command = [str(helm_binary()), "template", RELEASE, str(CHART), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60)


def render(*args: str) -> list[Manifest]:
    """Returns the chart's objects rendered with `args`."""
    result = helm_template(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    """Returns the object of `kind` called `name`."""
    for doc in manifests:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name} in the rendered chart")


def env_names(settings: type[BaseSettings]) -> set[str]:
    """Returns every environment variable that sets a field of `settings`."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field, info in settings.model_fields.items():
        names.add((prefix + field).upper())
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(c for c in alias.choices if isinstance(c, str) and c.startswith(prefix))
        elif isinstance(alias, str):
            names.add(alias)
    return names


def container_of(deployment: Manifest) -> Manifest:
    containers: list[Manifest] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {entry["name"]: entry for entry in container["env"]}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def manifests(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(*VARIANTS[request.param])


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
def test_ports_and_probes_match_the_services(manifests: list[Manifest], spec: ServiceSpec) -> None:
    assert spec.name in CHART_SERVICES, f"{spec.name} runs in `careops up` but not in the chart"
    component, _ = CHART_SERVICES[spec.name]
    name = f"{RELEASE}-{component}"
    container = container_of(find(manifests, "Deployment", name))
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    http = {"http": spec.http_port} if spec.http_port else {}  # the gateway's HTTP/JSON edge
    assert ports == {"grpc": spec.grpc_port, "metrics": spec.metrics_port, **http}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == spec.grpc_port, probe
    env = env_of(container)
    assert env[spec.port_env]["value"] == str(spec.grpc_port)
    assert env[spec.metrics_env]["value"] == str(spec.metrics_port)
    service = find(manifests, "Service", name)
    service_ports = {port["name"]: port["port"] for port in service["spec"]["ports"]}
    assert service_ports == {"grpc": spec.grpc_port, "metrics": spec.metrics_port, **http}
    policy = find(manifests, "NetworkPolicy", name)
    ingress_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports == {spec.grpc_port, spec.metrics_port, *http.values()}


@pytest.mark.parametrize("service", sorted(CHART_SERVICES))
def test_every_careops_variable_is_a_real_setting(
    manifests: list[Manifest], service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    component, settings = CHART_SERVICES[service]
    env = env_of(container_of(find(manifests, "Deployment", f"{RELEASE}-{component}")))
    unknown = sorted(set(env) - env_names(settings))
    assert not unknown, f"{component} sets variables {settings.__name__} does not read: {unknown}"
    assert env["CAREOPS_GRPC_HOST"]["value"] == "0.0.0.0"
    assert env["CAREOPS_NATS_URL"]["value"].startswith("nats://")
    assert env["CAREOPS_DATA_DIR"]["value"].startswith("/tmp/")
    database = env["CAREOPS_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert database == {"name": "careops-database", "key": "url"}
    # The process, given exactly the chart's environment, validates it and reads every value.
    for name in [name for name in os.environ if name.startswith("CAREOPS_")]:
        monkeypatch.delenv(name)
    # The internal identity's key files are read at start: a real pair where the Secret would be.
    keys = internal_key_pair(tmp_path)
    for name, entry in env.items():
        value = str(keys[name]) if name in keys else entry.get("value", f"secret-{name.lower()}")
        monkeypatch.setenv(name, value)
    loaded = settings()
    for field in ("grpc_host", "grpc_port", "metrics_port", "nats_url", "stream_replicas"):
        assert str(getattr(loaded, field)) in {entry.get("value") for entry in env.values()}


def test_production_runs_three_stream_replicas() -> None:
    production = render(*VARIANTS["production"])
    for component, _ in CHART_SERVICES.values():
        name = f"{RELEASE}-{component}"
        env = env_of(container_of(find(production, "Deployment", name)))
        assert env["CAREOPS_STREAM_REPLICAS"]["value"] == "3"
        hpa = find(production, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["minReplicas"] >= 3
        assert find(production, "PodDisruptionBudget", name)["spec"]["maxUnavailable"] == 1


def test_policy_files_are_the_service_defaults_and_mounted(manifests: list[Manifest]) -> None:
    config = find(manifests, "ConfigMap", f"{RELEASE}-policies")["data"]
    for key, (source, loader) in POLICY_FILES.items():
        assert (CHART / "files" / key).read_text() == source.read_text(), f"files/{key} drifted"
        assert config[key] == source.read_text()
        loader(str(CHART / "files" / key))
    for component, _ in CHART_SERVICES.values():
        container = container_of(find(manifests, "Deployment", f"{RELEASE}-{component}"))
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        for entry in env_of(container).values():
            if entry["name"].endswith("_FILE") and entry["name"] not in INTERNAL_KEY_VARIABLES:
                directory, key = entry["value"].rsplit("/", 1)
                assert directory == mounts["policies"] and key in config, entry


def test_every_container_is_locked_down(manifests: list[Manifest]) -> None:
    deployments = [doc for doc in manifests if doc["kind"] == "Deployment"]
    assert len(deployments) == len(CHART_SERVICES)
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["topologySpreadConstraints"]
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        assert "emptyDir" in volumes["tmp"]
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True
            assert context["runAsUser"] == 10001  # the Dockerfile's user
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_schema_rejects_negative_replicas() -> None:
    result = helm_template("--set", "ticketing.replicas=-1")
    assert result.returncode != 0
    assert "/ticketing/replicas" in result.stderr


def test_the_gateway_finds_every_service_by_its_service_name(manifests: list[Manifest]) -> None:
    env = env_of(container_of(find(manifests, "Deployment", f"{RELEASE}-gateway")))
    addresses = {
        "CAREOPS_TICKETING_ADDR": f"{RELEASE}-ticketing:50051",
        "CAREOPS_CUSTOMER_ADDR": f"{RELEASE}-customer-profile:50052",
        "CAREOPS_INCIDENT_ADDR": f"{RELEASE}-incident-crisis:50053",
        "CAREOPS_QUALITY_ADDR": f"{RELEASE}-quality-scoring:50054",
    }
    assert {name: env[name]["value"] for name in addresses} == addresses
    assert env["CAREOPS_GATEWAY_HTTP_PORT"]["value"] == "8080"
    fields: dict[str, Any] = {
        name.removeprefix("CAREOPS_").lower(): value for name, value in addresses.items()
    }
    settings = GatewaySettings(**fields)
    assert [backend.address for backend in settings.backends()] == list(addresses.values())


TLS_SECRET = "careops-gateway-tls"
EDGE = [
    *("--set", f"gateway.tls.secretName={TLS_SECRET}"),
    *("--set", "gateway.ingress.enabled=true"),
    *("--set", "gateway.ingress.host=careops.example.com"),
]


def test_gateway_tls_and_ingress_are_off_by_default(manifests: list[Manifest]) -> None:
    assert not [doc for doc in manifests if doc["kind"] in {"Ingress", "HTTPRoute"}]
    gateway = find(manifests, "Deployment", f"{RELEASE}-gateway")
    assert "tls" not in {
        volume["name"] for volume in gateway["spec"]["template"]["spec"]["volumes"]
    }
    assert not {"CAREOPS_TLS_CERT_FILE", "CAREOPS_TLS_KEY_FILE"} & set(
        env_of(container_of(gateway))
    )


def test_gateway_tls_mounts_the_secret_the_settings_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = find(render(*EDGE), "Deployment", f"{RELEASE}-gateway")
    pod = deployment["spec"]["template"]["spec"]
    container = container_of(deployment)
    volume = {v["name"]: v for v in pod["volumes"]}["tls"]["secret"]
    assert volume["secretName"] == TLS_SECRET
    mount = {m["name"]: m for m in container["volumeMounts"]}["tls"]
    assert mount["readOnly"] is True
    env = env_of(container)
    files = {name: env[name]["value"] for name in ("CAREOPS_TLS_CERT_FILE", "CAREOPS_TLS_KEY_FILE")}
    # A kubernetes.io/tls Secret's keys, in the mounted directory.
    assert files == {
        "CAREOPS_TLS_CERT_FILE": f"{mount['mountPath']}/tls.crt",
        "CAREOPS_TLS_KEY_FILE": f"{mount['mountPath']}/tls.key",
    }
    assert set(files) <= env_names(GatewaySettings)
    # The kubelet's gRPC probe cannot speak TLS: the probes ask GET /healthz over HTTPS.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {
            "path": "/healthz",
            "port": "http",
            "scheme": "HTTPS",
        }
    # The settings accept the variables with a real pair where the Secret would be mounted.
    pair = make_pair(tmp_path, "tls")
    monkeypatch.setenv("CAREOPS_TLS_CERT_FILE", str(pair.cert))
    monkeypatch.setenv("CAREOPS_TLS_KEY_FILE", str(pair.key))
    assert GatewaySettings().tls() is not None


def test_the_ingress_routes_the_gateway_http_port_with_tls() -> None:
    manifests = render(*EDGE)
    name = f"{RELEASE}-gateway"
    spec = find(manifests, "Ingress", name)["spec"]
    assert spec["tls"] == [{"hosts": ["careops.example.com"], "secretName": TLS_SECRET}]
    [rule] = spec["rules"]
    assert rule["host"] == "careops.example.com"
    [path] = rule["http"]["paths"]
    assert path["path"] == "/" and path["pathType"] == "Prefix"
    assert path["backend"]["service"] == {"name": name, "port": {"name": "http"}}
    ports = {port["name"] for port in find(manifests, "Service", name)["spec"]["ports"]}
    assert "http" in ports
    own = render(*EDGE, "--set", "gateway.ingress.tlsSecretName=edge-tls")
    assert find(own, "Ingress", name)["spec"]["tls"][0]["secretName"] == "edge-tls"


def test_the_httproute_attaches_to_its_gateway() -> None:
    route = [
        *("--set", "gateway.ingress.enabled=true"),
        *("--set", "gateway.ingress.host=careops.example.com"),
        *("--set", "gateway.ingress.kind=HTTPRoute"),
        *("--set", "gateway.ingress.parentRefs[0].name=edge"),
        *("--set", "gateway.ingress.parentRefs[0].sectionName=https"),
    ]
    manifests = render(*route)
    name = f"{RELEASE}-gateway"
    document = find(manifests, "HTTPRoute", name)
    assert document["apiVersion"] == "gateway.networking.k8s.io/v1"
    spec = document["spec"]
    assert spec["parentRefs"] == [{"name": "edge", "sectionName": "https"}]
    assert spec["hostnames"] == ["careops.example.com"]
    [rule] = spec["rules"]
    assert rule["backendRefs"] == [{"name": name, "port": 8080}]
    assert not [doc for doc in manifests if doc["kind"] == "Ingress"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["gateway.ingress.enabled=true"], "/gateway/ingress/host"),
        (
            ["gateway.ingress.enabled=true", "gateway.ingress.host=careops.example.com"],
            "gateway.ingress.tlsSecretName or gateway.tls.secretName",
        ),
        (
            [
                "gateway.ingress.enabled=true",
                "gateway.ingress.host=careops.example.com",
                "gateway.ingress.kind=HTTPRoute",
            ],
            "gateway.ingress.parentRefs",
        ),
        (["gateway.ingress.kind=Route"], "/gateway/ingress/kind"),
    ],
)
def test_an_incomplete_edge_fails_with_the_value_named(values: list[str], message: str) -> None:
    result = helm_template(*(arg for value in values for arg in ("--set", value)))
    assert result.returncode != 0
    assert message in result.stderr


IDENTITY_SECRET = "careops-internal-identity"


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
def test_the_internal_identity_secret_gives_each_pod_only_its_half(
    manifests: list[Manifest], spec: ServiceSpec
) -> None:
    """The gateway mounts the private key and signs; a service mounts only the public key."""
    component, settings = CHART_SERVICES[spec.name]
    deployment = find(manifests, "Deployment", f"{RELEASE}-{component}")
    pod = deployment["spec"]["template"]["spec"]
    container = container_of(deployment)
    volume = {v["name"]: v for v in pod["volumes"]}["internal-identity"]["secret"]
    mount = {m["name"]: m for m in container["volumeMounts"]}["internal-identity"]
    is_gateway = spec.name == "gateway"
    half = "signing-key.pem" if is_gateway else "verify-key.pem"
    assert volume["secretName"] == IDENTITY_SECRET
    assert volume["items"] == [{"key": half, "path": half}], "only its own half of the pair"
    assert mount["readOnly"] is True
    variable = (
        "CAREOPS_INTERNAL_SIGNING_KEY_FILE" if is_gateway else "CAREOPS_INTERNAL_VERIFY_KEY_FILE"
    )
    env = env_of(container)
    assert env[variable]["value"] == f"{mount['mountPath']}/{half}"
    assert variable in env_names(settings)
    other = {"CAREOPS_INTERNAL_SIGNING_KEY_FILE", "CAREOPS_INTERNAL_VERIFY_KEY_FILE"} - {variable}
    assert not other & set(env)


def test_the_documented_openssl_commands_make_a_pair_the_settings_accept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, path in internal_key_pair(tmp_path).items():
        monkeypatch.setenv(name, str(path))
    principal = Principal("ann", frozenset({"agent"}))
    token = GatewaySettings().internal_signer().token(principal)
    assert TicketingSettings().internal_verifier().verify(token) == principal


def test_the_chart_refuses_to_render_without_the_internal_identity_secret() -> None:
    result = helm_template("--set", "internalIdentity.existingSecret=")
    assert result.returncode != 0
    assert "internalIdentity.existingSecret is required" in result.stderr


SPLIT = [
    *("--set", "ticketing.role=split"),
    *("--set", "ticketing.autoscaling.enabled=true"),
    *("--set", "ticketing.worker.replicas=3"),
]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_split_roles_run_api_pods_behind_the_service_and_an_hpa_and_workers_apart() -> None:
    manifests = render(*SPLIT)
    api_name, worker_name = f"{RELEASE}-ticketing", f"{RELEASE}-ticketing-worker"
    api, worker = (find(manifests, "Deployment", name) for name in (api_name, worker_name))
    api_env, worker_env = env_of(container_of(api)), env_of(container_of(worker))
    assert api_env["CAREOPS_ROLE"]["value"] == "api"
    assert worker_env["CAREOPS_ROLE"]["value"] == "worker"
    assert worker_env["CAREOPS_LEASE_SECONDS"]["value"] == "4"
    assert set(api_env) | set(worker_env) <= env_names(TicketingSettings)
    assert "replicas" not in api["spec"], "the HPA sets the api's replicas"
    assert worker["spec"]["replicas"] == 3
    hpa = find(manifests, "HorizontalPodAutoscaler", api_name)["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": api_name,
    }
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    assert not [
        doc
        for doc in manifests
        if doc["kind"] == "HorizontalPodAutoscaler" and doc["metadata"]["name"] == worker_name
    ]
    # The gateway's address (the Service) reaches api pods only; the worker's PDB its own pods.
    api_labels = api["spec"]["template"]["metadata"]["labels"]
    worker_labels = worker["spec"]["template"]["metadata"]["labels"]
    selector = find(manifests, "Service", api_name)["spec"]["selector"]
    assert matches(selector, api_labels) and not matches(selector, worker_labels)
    pdb = find(manifests, "PodDisruptionBudget", worker_name)["spec"]["selector"]["matchLabels"]
    assert matches(pdb, worker_labels) and not matches(pdb, api_labels)
    # A worker serves health and /metrics only: nothing may call its gRPC port.
    policy = find(manifests, "NetworkPolicy", worker_name)["spec"]
    assert {p["port"] for rule in policy["ingress"] for p in rule["ports"]} == {9101}
    # The other services stay in one Deployment of `--role all` pods.
    customer = env_of(container_of(find(manifests, "Deployment", f"{RELEASE}-customer-profile")))
    assert "CAREOPS_ROLE" not in customer
    deployments = [doc for doc in manifests if doc["kind"] == "Deployment"]
    assert len(deployments) == len(CHART_SERVICES) + 1


def test_split_roles_need_a_shared_database() -> None:
    result = helm_template(*SPLIT, "--set", "database.existingSecret=")
    assert result.returncode != 0
    assert "ticketing.role split needs database.existingSecret" in result.stderr
