"""`careops up` as a supervisor: its services never outlive it, Ctrl-C is honoured at once,
and NATS is the last to stop."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from careops_cli.platform import SERVICES
from careops_eventstore.nats_embedded import free_port

from tests.support import eventually_sync

STARTED = re.compile(r"(\w+) started, pid (\d+)")
SERVICE_NAMES = {spec.name for spec in SERVICES}


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Up:
    """One `careops up` process in its own session (as a terminal would run it)."""

    process: subprocess.Popen[bytes]
    log: Path
    ports: list[int]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        return {name: int(pid) for name, pid in STARTED.findall(self.output())}

    def wait_for_output(self, text: str, timeout: float = 150.0) -> None:
        assert eventually_sync(lambda: text in self.output(), timeout=timeout), self.output()


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Up]]:
    """Starts `careops up` on free ports; kills whatever is left of it afterwards."""
    started: list[Up] = []

    def start(extra_env: dict[str, str]) -> Up:
        ports: dict[str, int] = {}
        for spec in SERVICES:
            ports[spec.port_env] = free_port()
            ports[spec.metrics_env] = free_port()
        ports["CAREOPS_GATEWAY_HTTP_PORT"] = free_port()
        ports["CAREOPS_EMBEDDED_NATS_PORT"] = free_port()
        env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "COLUMNS": "200"}
        env.pop("CAREOPS_NATS_URL", None)
        env.update(extra_env)
        log = tmp_path / f"up-{len(started)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "careops_cli", "up", "--data-dir", str(tmp_path / "var")],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        up = Up(process, log, list(ports.values()))
        started.append(up)
        return up

    yield start
    for up in started:
        for pid in up.pids().values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if up.process.poll() is None:
            up.process.kill()
            up.process.wait()


# Each test starts the whole platform (five services and NATS): allow for a busy machine.
pytestmark = pytest.mark.timeout(300)


def test_kill_9_of_careops_up_takes_every_service_and_nats_with_it(
    start_up: Callable[[dict[str, str]], Up],
) -> None:
    up = start_up({})
    up.wait_for_output("CareOps is up.")
    pids = up.pids()
    assert set(pids) == SERVICE_NAMES | {"nats"}, up.output()

    up.process.send_signal(signal.SIGKILL)
    up.process.wait(10)

    assert eventually_sync(lambda: not any(alive(pid) for pid in pids.values())), {
        name: pid for name, pid in pids.items() if alive(pid)
    }
    assert eventually_sync(lambda: not any(listening(port) for port in up.ports)), [
        port for port in up.ports if listening(port)
    ]


def test_ctrl_c_during_start_up_stops_everything_at_once(
    start_up: Callable[[dict[str, str]], Up],
) -> None:
    # No NATS answers there: the services wait for it forever and never become healthy.
    up = start_up({"CAREOPS_NATS_URL": f"nats://127.0.0.1:{free_port()}"})
    assert eventually_sync(lambda: set(up.pids()) == SERVICE_NAMES), up.output()
    pids = up.pids()

    up.process.send_signal(signal.SIGINT)  # to the supervisor alone: it must stop the rest
    # Far below one 60 s health wait: the waits are cancelled, not sat out.
    code = up.process.wait(45)

    assert code == 0, up.output()
    assert not any(alive(pid) for pid in pids.values()), up.output()


def test_ctrl_c_stops_the_services_first_and_nats_last(
    start_up: Callable[[dict[str, str]], Up], tmp_path: Path
) -> None:
    up = start_up({})
    up.wait_for_output("CareOps is up.")
    pids = up.pids()
    nats = pids.pop("nats")
    nats_outlived_services = True

    def exited() -> bool:
        nonlocal nats_outlived_services
        services_running = any(alive(pid) for pid in pids.values())
        if services_running and not alive(nats):
            nats_outlived_services = False
        return up.process.poll() is not None

    running_output = len(up.output())
    os.killpg(up.process.pid, signal.SIGINT)  # Ctrl-C at a terminal: the foreground group
    assert eventually_sync(exited), up.output()

    output = up.output()
    assert up.process.returncode == 0, output
    assert nats_outlived_services, output
    last_service = max(output.index(f"{name} exited with") for name in SERVICE_NAMES)
    assert output.index("nats stopping") > last_service, output
    stopping_output = output[running_output:]
    assert "Traceback" not in stopping_output, stopping_output  # no service lost NATS under it
    # NATS was stopped by the supervisor (SIGTERM), not by the terminal's SIGINT.
    nats_log = (tmp_path / "var" / "nats" / "nats.log").read_text()
    assert 'Trapped "terminated" signal' in nats_log, nats_log
    assert 'Trapped "interrupt" signal' not in nats_log, nats_log
