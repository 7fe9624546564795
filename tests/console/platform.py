"""The console's test platform: `careops up` (what `make run` runs) as a real process tree on
free ports in a temporary data dir, its gateway serving the console at `/`; the API calls a test
makes to set the scene go through the same gateway (HTTP/JSON, a token of the embedded issuer).
One platform and one headless Chromium for all the console's tests (tests/console/conftest.py):
each test sets its own scene (its own customers, tickets, incidents) and puts back a policy it
changes. The incident service's clock is an OffsetClock the tests move past a deadline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from careops_eventstore.application import OffsetClock
from careops_eventstore.nats_embedded import free_port
from careops_platform.local_issuer import LocalIssuer
from playwright.async_api import Page, expect

from tests.support import eventually_sync, wait_serving

CAREOPS = [sys.executable, "-m", "careops_cli"]
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package: scripts/system-deps.sh installs it
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
SERVICES = ("ticketing", "customer", "incident", "quality", "gateway")


class ApiFailure(Exception):
    """A call the test made through the gateway was refused: the status and the body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class ConsolePlatform:
    """A running `careops up`."""

    data_dir: Path
    http_port: int
    grpc_port: int
    process: subprocess.Popen[bytes]
    log: Path
    # The incident service's clock (CAREOPS_CLOCK_OFFSET_FILE): `advance` it past a deadline.
    incident_clock: OffsetClock

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def token(self, subject: str, *roles: str) -> str:
        """A token of the platform's embedded issuer (what `careops token issue` mints)."""
        return LocalIssuer(self.data_dir).issue(subject=subject, roles=roles or ("admin",))

    def call(
        self, method: str, body: dict[str, Any], token: str, *, key: str = ""
    ) -> dict[str, Any]:
        """POSTs `body` to /v1/<method> (`careops.ticketing.v1.TicketingService/OpenTicket`)."""
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        if key:
            headers["Idempotency-Key"] = key
        request = urllib.request.Request(
            f"{self.url}/v1/{method}", data=json.dumps(body).encode(), headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as error:
            raise ApiFailure(error.code, json.loads(error.read() or b"{}")) from error

    def screenshot_path(self, view: str) -> Path:
        """Where a view's screenshot goes (docs/console/<view>.png, shown in the README)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS / f"{view}.png"


def _environment(data_dir: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CAREOPS_")}
    for name in SERVICES:
        env[f"CAREOPS_{name.upper()}_GRPC_PORT"] = str(ports[f"{name}_grpc"])
        env[f"CAREOPS_{name.upper()}_METRICS_PORT"] = str(ports[f"{name}_metrics"])
    env["CAREOPS_GATEWAY_HTTP_PORT"] = str(ports["gateway_http"])
    env["CAREOPS_EMBEDDED_NATS_PORT"] = str(ports["nats"])
    env["CAREOPS_DATA_DIR"] = str(data_dir)
    return env


@contextmanager
def console_platform(
    directory: Path, extra_env: dict[str, str] | None = None
) -> Iterator[ConsolePlatform]:
    """Runs `careops up` in `directory` until the block ends (then Ctrl-C, as a user would)."""
    names = [f"{name}_{port}" for name in SERVICES for port in ("grpc", "metrics")]
    ports = {name: free_port() for name in [*names, "gateway_http", "nats"]}
    data_dir = directory / "var"
    incident_clock = OffsetClock(directory / "incident-clock-offset")
    env = {
        **_environment(data_dir, ports),
        "CAREOPS_CLOCK_OFFSET_FILE": str(incident_clock.path),
        **(extra_env or {}),
    }
    log = directory / "up.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [*CAREOPS, "up", "--data-dir", str(data_dir)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    platform = ConsolePlatform(
        data_dir, ports["gateway_http"], ports["gateway_grpc"], process, log, incident_clock
    )
    try:
        for name in SERVICES:
            address = f"127.0.0.1:{ports[f'{name}_grpc']}"
            assert wait_serving(address, 90), log.read_text()
        eventually_sync(
            lambda: _answers(f"{platform.url}/healthz"), timeout=60, what="the HTTP edge"
        )
        yield platform
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def sign_in(page: Page, platform: ConsolePlatform, subject: str, view: str = "") -> None:
    """Opens the console and signs in as `subject` (one of `careops up`'s console users) on
    the sign-in page, as a user would; then opens `#/<view>` if given."""
    await page.goto(f"{platform.url}/console/" + (f"#/{view}" if view else ""))
    await page.locator("#signin-user").select_option(subject)
    await page.locator("form.signin button[type=submit]").click()
    await expect(page.locator("#who-am-i")).to_contain_text(subject)
    if view:
        await expect(page.locator("body")).to_have_attribute("data-view", view)
