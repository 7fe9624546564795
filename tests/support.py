"""Helpers for cross-process tests: run a service as a real OS process, compare read models."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from careops_cli.platform import wait_serving
from careops_eventstore.nats_embedded import free_port
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from ticketing.readmodels import tickets


@dataclass
class ServiceProcess:
    """`python -m <service>.main` with its own ports and data directory."""

    data_dir: Path
    nats_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    service: str = "ticketing"
    grpc_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        env = {
            **os.environ,
            "CAREOPS_NATS_URL": self.nats_url,
            "CAREOPS_DATA_DIR": str(self.data_dir),
            f"CAREOPS_{self.service.upper()}_GRPC_PORT": str(self.grpc_port),
            f"CAREOPS_{self.service.upper()}_METRICS_PORT": str(self.metrics_port),
            **self.extra_env,
        }
        log = open(self.data_dir / "service.log", "ab")  # noqa: SIM115
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"{self.service}.main"], env=env, stdout=log, stderr=log
        )
        if not wait_serving(self.address, timeout):
            self.kill()
            raise RuntimeError(f"service did not become healthy: see {self.data_dir}/service.log")
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(20)


def ticket_rows(engine: Engine) -> list[dict[str, Any]]:
    """Returns the ticket read model as comparable dicts, ordered by id."""
    with Session(engine) as session:
        rows = session.execute(select(tickets).order_by(tickets.c.ticket_id)).mappings().all()
    return [dict(row) for row in rows]
