"""The five images `make images` builds, each run in podman as the chart runs its pod.

Every container's flags come from the chart's rendered Deployment (`helm template`): its env, its
securityContext (uid 10001, read-only root filesystem, no privilege escalation, capabilities
dropped) and its volumes (an emptyDir at /tmp becomes a tmpfs, the policies ConfigMap the chart's
files, the internal identity Secret a key pair made here). Only what a cluster would resolve is
replaced: host networking on 127.0.0.1 with free ports, the session's real NATS, the Secrets'
values. Not part of `make test` (building images takes minutes): `make images-test` runs it.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import eventually_sync
from tests.test_chart import CHART, ROOT, Manifest, find, internal_key_pair, render

CONTAINERS_CONF = ROOT / "scripts" / "containers.conf"
RUN_AS = 10001
# Container start-up: five Python processes importing at once on a shared 2-core machine.
START_TIMEOUT = 90.0
PORT_SUFFIXES = ("_GRPC_PORT", "_METRICS_PORT", "_HTTP_PORT")
# Secret keys with no test value: the database URL, so the read models are SQLite in /tmp.
UNSET_SECRET_KEYS = {"url"}
# (Secret name, key) -> the value a cluster's Secret would hold.
SecretValues = Callable[[str, str], str]


@dataclass
class Pod:
    """One chart Deployment run as a podman container."""

    service: str  # the image's SERVICE: ticketing, customer, incident, quality, gateway
    component: str  # the chart's name for it: careops-ticketing, careops-customer-profile, ...
    image: str
    grpc_port: int
    container: Manifest
    pod_spec: Manifest
    env: dict[str, str] = field(default_factory=dict)
    name: str = ""


def podman(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Runs podman with the project's containers.conf (runc, ulimits, no systemd)."""
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {result.stderr.strip()}")
    return result


def pods_of(manifests: list[Manifest]) -> dict[str, Pod]:
    """Returns the chart's Deployments by image SERVICE, each with a free gRPC port."""
    pods: dict[str, Pod] = {}
    for doc in manifests:
        if doc["kind"] != "Deployment":
            continue
        spec = doc["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        repository, _, tag = container["image"].partition(":")
        service = repository.removeprefix("careops-")
        pods[service] = Pod(
            service=service,
            component=doc["metadata"]["name"],
            image=f"localhost/{repository}:{tag}",
            grpc_port=free_port(),
            container=container,
            pod_spec=spec,
        )
    return pods


def resolve_env(pod: Pod, pods: dict[str, Pod], nats_url: str, secret_values: SecretValues) -> None:
    """Sets `pod.env` from the chart's env: addresses, ports and Secrets as a cluster would."""
    by_component = {other.component: other for other in pods.values()}
    for item in pod.container["env"]:
        name = item["name"]
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            if ref["key"] not in UNSET_SECRET_KEYS:
                pod.env[name] = secret_values(ref["name"], ref["key"])
            continue
        value = str(item["value"])
        if name == "CAREOPS_GRPC_HOST":
            value = "127.0.0.1"
        elif name == "CAREOPS_NATS_URL":
            value = nats_url
        elif name.endswith("_GRPC_PORT") and name != "CAREOPS_GRPC_PORT":
            value = str(pod.grpc_port)
        elif name.endswith(PORT_SUFFIXES):
            value = str(free_port())
        elif name.endswith("_ADDR"):
            value = f"127.0.0.1:{by_component[value.partition(':')[0]].grpc_port}"
        pod.env[name] = value


def security_flags(container: Manifest) -> list[str]:
    """Returns the podman flags of a container's securityContext."""
    context = container["securityContext"]
    flags = [f"--user={context['runAsUser']}:{context['runAsGroup']}"]
    if context.get("readOnlyRootFilesystem"):
        # Only the chart's volumes are writable: no tmpfs of podman's own on /tmp, /run.
        flags += ["--read-only", "--read-only-tmpfs=false"]
    if context.get("allowPrivilegeEscalation") is False:
        flags.append("--security-opt=no-new-privileges")
    flags += [f"--cap-drop={cap}" for cap in context.get("capabilities", {}).get("drop", [])]
    # seccompProfile RuntimeDefault is podman's default profile.
    return flags


def volume_flags(pod: Pod, secret_dirs: dict[str, Path]) -> list[str]:
    """Returns the podman flags of a pod's volumes: emptyDir -> tmpfs, ConfigMap -> the chart's
    files, Secret -> a directory made by the test holding the items the pod selects."""
    volumes = {volume["name"]: volume for volume in pod.pod_spec["volumes"]}
    flags: list[str] = []
    for mount in pod.container["volumeMounts"]:
        volume = volumes[mount["name"]]
        target = mount["mountPath"]
        if "emptyDir" in volume:
            size = volume["emptyDir"].get("sizeLimit", "64Mi").replace("Mi", "m")
            flags.append(f"--tmpfs={target}:rw,size={size},mode=1777")
        elif "configMap" in volume:
            flags.append(f"--volume={CHART / 'files'}:{target}:ro")
        elif "secret" in volume:
            source = secret_dirs[volume["secret"]["secretName"]]
            items = [item["path"] for item in volume["secret"].get("items", [])]
            selected = source.parent / f"{source.name}-{pod.service}"
            selected.mkdir(mode=0o755)
            for item in items or [path.name for path in source.iterdir()]:
                (selected / item).write_bytes((source / item).read_bytes())
                (selected / item).chmod(0o444)  # the Secret's 0440 with fsGroup 10001
            flags.append(f"--volume={selected}:{target}:ro")
        else:
            raise AssertionError(f"{pod.component}: volume {mount['name']} not translated")
    return flags


def run(pod: Pod, secret_dirs: dict[str, Path]) -> None:
    """Starts the pod's container in the background, with host networking."""
    pod.name = f"careops-images-test-{pod.service}-{os.getpid()}"
    env_flags = [f"--env={name}={value}" for name, value in pod.env.items()]
    podman(
        "run",
        "--detach",
        "--pull=never",
        "--network=host",
        f"--name={pod.name}",
        *security_flags(pod.container),
        *volume_flags(pod, secret_dirs),
        *env_flags,
        pod.image,
    )


def logs(pod: Pod) -> str:
    """Returns the container's output, for a failure message."""
    result = podman("logs", "--tail=40", pod.name, check=False)
    return (result.stdout + result.stderr)[-4000:]


def health_status(port: int) -> int:
    """Returns the grpc.health.v1 status of the server on 127.0.0.1:`port` (service "")."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status)


def secret_value_factory() -> SecretValues:
    """Returns a function giving each (Secret, key) one random base64 32-byte value."""
    values: dict[tuple[str, str], str] = {}

    def value(secret: str, key: str) -> str:
        return values.setdefault((secret, key), base64.b64encode(secrets.token_bytes(32)).decode())

    return value


@pytest.fixture(scope="module")
def pods(
    nats_server: EmbeddedNats, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Pod]]:
    """The chart's five Deployments running as containers against the session's NATS."""
    manifests = render("--namespace", "careops")
    identity = find(manifests, "Deployment", "careops-gateway")["spec"]["template"]["spec"]
    identity_secret = next(
        volume["secret"]["secretName"]
        for volume in identity["volumes"]
        if volume["name"] == "internal-identity"
    )
    keys_dir = tmp_path_factory.mktemp("identity")
    internal_key_pair(keys_dir)
    secret_dirs = {identity_secret: keys_dir}
    started = pods_of(manifests)
    assert sorted(started) == ["customer", "gateway", "incident", "quality", "ticketing"]
    missing = [
        pod.image
        for pod in started.values()
        if podman("image", "exists", pod.image, check=False).returncode
    ]
    assert not missing, f"images not built (make images): {missing}"
    values = secret_value_factory()
    try:
        for pod in started.values():
            resolve_env(pod, started, nats_server.url, values)
            run(pod, secret_dirs)
        yield started
    finally:
        for pod in started.values():
            if pod.name:
                podman("rm", "--force", "--time=5", pod.name, check=False)


SERVICES = ["ticketing", "customer", "incident", "quality", "gateway"]


@pytest.mark.parametrize("service", SERVICES)
def test_answers_health_serving(pods: dict[str, Pod], service: str) -> None:
    pod = pods[service]
    try:
        eventually_sync(
            lambda: health_status(pod.grpc_port) == health_pb2.HealthCheckResponse.SERVING,
            timeout=START_TIMEOUT,
            interval=0.5,
            what=f"{pod.image} SERVING on {pod.grpc_port}",
        )
    except Exception as exc:
        raise AssertionError(f"{exc}\n--- {pod.name} logs ---\n{logs(pod)}") from exc


@pytest.mark.parametrize("service", SERVICES)
def test_service_process_runs_as_10001(pods: dict[str, Pod], service: str) -> None:
    pod = pods[service]
    pid = podman("inspect", "--format={{.State.Pid}}", pod.name).stdout.strip()
    assert pid and pid != "0", f"{pod.name} is not running:\n{logs(pod)}"
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    gids = next(line for line in status.splitlines() if line.startswith("Gid:")).split()[1:]
    assert uids == [str(RUN_AS)] * 4 and gids == [str(RUN_AS)] * 4, (uids, gids)
    # PID 1 is the service itself (the image's CMD execs it), so it gets SIGTERM on stop.
    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert command[1:3] == [b"-m", f"{service}.main".encode()], command


@pytest.mark.parametrize("service", SERVICES)
def test_root_filesystem_is_read_only(pods: dict[str, Pod], service: str) -> None:
    pod = pods[service]
    # Even root inside the container cannot write to /: the mount is read-only, not only
    # owned by someone else.
    as_root = podman("exec", "--user=0", pod.name, "touch", "/careops-probe", check=False)
    assert as_root.returncode != 0
    assert "Read-only file system" in as_root.stderr, as_root.stderr
    # The emptyDir at /tmp is what the service writes to (CAREOPS_DATA_DIR=/tmp/careops).
    podman("exec", pod.name, "touch", "/tmp/careops-probe")
    data_dir = podman("exec", pod.name, "ls", "/tmp/careops").stdout.split()
    assert data_dir, f"{pod.name} wrote nothing to its data dir"
