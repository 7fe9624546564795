"""`careops up`: embedded NATS plus every service as its own process, health-checked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from careops_eventstore.nats_embedded import EmbeddedNats
from careops_platform import registry
from careops_platform.parent import SUPERVISOR_PID_ENV, die_with_parent
from careops_platform.registry import ServiceEntry
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console

console = Console(stderr=True)


# How to start each service and where it answers: the one registry (gateway last).
ServiceSpec = ServiceEntry
SERVICES = registry.SERVICES
GATEWAY_HTTP_PORT_ENV = registry.service("gateway").http_port_env
COLORS = ("cyan", "magenta", "green", "yellow", "blue")


# The users the console's sign-in page offers under `careops up` (docs/console.md): the seeded
# agents (services/ticketing/agents_default.yaml) and on-call members (oncall_default.yaml).
DEV_CONSOLE_USERS = ",".join(
    [
        "agent-li:agent",
        "agent-wang:agent",
        "agent-zhang:agent+senior_agent",
        "supervisor-zhou:supervisor",
        "ts-alice:oncall",
        "admin:admin",
    ]
)


def grpc_port(spec: ServiceSpec) -> int:
    return int(os.environ.get(spec.port_env, spec.grpc_port))


def wait_serving(address: str, timeout: float, abort: Callable[[], bool] | None = None) -> bool:
    """Polls grpc.health.v1 at `address` until it reports SERVING, the timeout passes or
    `abort()` turns true (checked at least every 1.2 s)."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and not (abort and abort()):
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    return False


def _pump(name: str, color: str, stream: object) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        line = raw.decode(errors="replace").rstrip()
        console.print(
            f"[{color}]{name:>10} |[/] {line}", markup=True, highlight=False, soft_wrap=True
        )


def _spawn(spec: ServiceSpec, env: dict[str, str], color: str) -> subprocess.Popen[bytes]:
    # Same process group as the supervisor (a closed terminal's hang-up reaches them too);
    # CAREOPS_SUPERVISOR_PID in `env` makes each die with the supervisor (runtime.py).
    process = subprocess.Popen(
        [sys.executable, "-m", spec.module],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    console.print(f"[bold]{spec.name}[/] started, pid {process.pid}")
    threading.Thread(target=_pump, args=(spec.name, color, process.stdout), daemon=True).start()
    return process


def run_platform(data_dir: Path, *, nats_port: int = 14222, startup_timeout: float = 60.0) -> int:
    """Runs NATS and the services until Ctrl-C / SIGTERM / SIGHUP; returns the exit code.

    The services die with this process even on kill -9 (parent-death signal); on a stop they
    get SIGTERM first and NATS, in its own process group so Ctrl-C does not reach it, stops
    only after they have exited.
    """
    stopping = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("CAREOPS_DATA_DIR", str(data_dir.resolve()))
    env[SUPERVISOR_PID_ENV] = str(os.getpid())
    # The gateway finds the services where this run starts them (CAREOPS_<NAME>_ADDR).
    for spec in registry.BACKENDS:
        env.setdefault(spec.addr_env, f"127.0.0.1:{grpc_port(spec)}")
    if not env.get("CAREOPS_AUTH_ISSUER"):  # the console's sign-in: embedded issuer only
        env.setdefault("CAREOPS_CONSOLE_USERS", DEV_CONSOLE_USERS)
    nats: EmbeddedNats | None = None
    children: dict[str, subprocess.Popen[bytes]] = {}
    code = 0
    try:
        if "CAREOPS_NATS_URL" not in os.environ:
            nats = _start_nats(data_dir, nats_port, stopping)
            env["CAREOPS_NATS_URL"] = nats.url
        for index, spec in enumerate(SERVICES):
            children[spec.name] = _spawn(spec, env, COLORS[index % len(COLORS)])
        if not _wait_all_serving(children, stopping, startup_timeout):
            return 0 if stopping.is_set() else 1
        http_port = env.get(GATEWAY_HTTP_PORT_ENV, str(registry.service("gateway").http_port))
        console.print(f"[bold green]gateway[/] HTTP/JSON on http://127.0.0.1:{http_port}/v1/")
        console.print(f"[bold green]console[/] on http://127.0.0.1:{http_port}/")
        console.print("[bold]CareOps is up.[/] Ctrl-C stops everything.")
        grpc_address = f"127.0.0.1:{grpc_port(registry.service('gateway'))}"
        console.print(f"The CLI calls the gateway at {grpc_address}: `careops login` first.")
        while not stopping.wait(0.5):
            for name, child in children.items():
                if child.poll() is not None:
                    console.print(f"[red]{name} exited with {child.returncode}; stopping[/]")
                    code = 1
                    stopping.set()
    except InterruptedError:
        pass  # Ctrl-C while NATS was starting
    finally:
        _stop_all(children)
        if nats is not None:
            console.print("[bold]nats[/] stopping (every service has exited)")
            nats.stop()
        console.print("[bold]stopped[/]")
    return code


def _start_nats(data_dir: Path, port: int, stopping: threading.Event) -> EmbeddedNats:
    """Starts the embedded NATS tied to this process (it dies with it, even on kill -9)."""
    supervisor = os.getpid()
    nats = EmbeddedNats(data_dir=data_dir / "nats", port=port)
    nats.start(
        log_file=data_dir / "nats" / "nats.log",
        preexec_fn=lambda: die_with_parent(supervisor),
        cancel=stopping,
    )
    pid = nats.process.pid if nats.process else 0
    console.print(f"[bold]nats[/] started, pid {pid}: JetStream at {nats.url} (in {nats.data_dir})")
    return nats


def _wait_all_serving(
    children: dict[str, subprocess.Popen[bytes]], stopping: threading.Event, timeout: float
) -> bool:
    """Waits for each service's health; False at once on a stop request or a dead child."""
    by_name = {spec.name: spec for spec in SERVICES}
    for name, child in children.items():
        address = f"127.0.0.1:{grpc_port(by_name[name])}"

        def abort(child: subprocess.Popen[bytes] = child) -> bool:
            return stopping.is_set() or child.poll() is not None

        if not wait_serving(address, timeout, abort):
            if not stopping.is_set():
                console.print(f"[red]{name} did not become healthy on {address}[/]")
            return False
        console.print(f"[bold green]{name}[/] SERVING on {address}")
    return True


def _stop_all(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every service, then waits for each (SIGKILL after 15 s)."""
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        console.print(f"[bold]{name}[/] exited with {child.returncode}")
