"""schemathesis against the gateway's /openapi.json with the whole platform up (`careops up`):
no 5xx and no response that violates the document, on every operation but the stream.

Positive mode: the protos declare no validation rules (required ids, lengths), so schemathesis'
negative mode and `positive_data_acceptance` would only report that the services validate more
than the schema says; every response is still checked against the document (status codes,
content types, headers, schemas) and for server errors. `CAREOPS_SCHEMATHESIS_EXAMPLES` raises
the examples per operation (default 10).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from careops_eventstore.nats_embedded import free_port

from tests.support import wait_serving

# The document's checks left out: the protos declare no validation rules, so this one would only
# report that the services check more than the schema says.
EXCLUDED_CHECKS = ("positive_data_acceptance",)
# A stream never ends by itself; WatchAlerts is tested in services/gateway/tests, WatchKpis in
# tests/test_quality_watch.py, WatchCustomer360 in services/customer/tests/test_watch_360.py.
STREAMS = (
    "IncidentService_WatchAlerts",
    "QualityService_WatchKpis",
    "CustomerProfileService_WatchCustomer360",
)
PORTS = [
    f"CAREOPS_{name}_{kind}_PORT"
    for name in ("GATEWAY", "TICKETING", "CUSTOMER", "INCIDENT", "QUALITY")
    for kind in ("GRPC", "METRICS")
]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """Runs `careops up` on free ports; yields the gateway's HTTP port and the data dir."""
    root = tmp_path_factory.mktemp("platform")
    env = {name: str(free_port()) for name in PORTS}
    http_port = free_port()
    env |= {"CAREOPS_GATEWAY_HTTP_PORT": str(http_port)}
    env |= {"CAREOPS_EMBEDDED_NATS_PORT": str(free_port())}
    full = {k: v for k, v in os.environ.items() if k != "CAREOPS_NATS_URL"} | env
    with open(root / "up.log", "wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "careops_cli", "up", "--data-dir", str(root / "var")],
            env=full,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            for name in PORTS[::2]:  # the gRPC ports
                address = f"127.0.0.1:{env[name]}"
                assert wait_serving(address, 90), (root / "up.log").read_text()
            yield http_port, root / "var"
        finally:
            up.send_signal(signal.SIGINT)
            up.wait(60)


@pytest.fixture
def auth_headers(platform: tuple[int, Path]) -> dict[str, str]:
    """Returns the headers that authenticate a test call: a token of the platform's own
    issuer (`careops token issue`), with the roles that together may call every RPC."""
    roles = [arg for role in ("admin", "supervisor", "oncall") for arg in ("--role", role)]
    issued = subprocess.run(
        [sys.executable, "-m", "careops_cli", "token", "issue", *roles, "--subject", "fuzz"]
        + ["--data-dir", str(platform[1])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert issued.returncode == 0, issued.stderr
    headers = {"Authorization": f"Bearer {issued.stdout.strip()}"}
    # The token opens the door (else the run would only meet 401s and prove nothing).
    status = urllib.request.Request(
        f"http://127.0.0.1:{platform[0]}/v1/careops.gateway.v1.GatewayService/GetPlatformStatus",
        data=b"{}",
        headers={**headers, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(status, timeout=30) as reply:
        assert reply.status == 200
    return headers


def command(base: str, headers: dict[str, str], report_dir: Path) -> list[str]:
    """Returns the schemathesis command line for the gateway at `base`."""
    examples = os.environ.get("CAREOPS_SCHEMATHESIS_EXAMPLES", "10")
    return [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{base}/openapi.json",
        "--checks=all",
        f"--exclude-checks={','.join(EXCLUDED_CHECKS)}",
        "--mode=positive",
        "--phases=examples,coverage,fuzzing",
        f"--max-examples={examples}",
        "--request-timeout=20",
        "--seed=11",
        f"--report-dir={report_dir}",
        *[f"--exclude-operation-id={operation}" for operation in STREAMS],
        *[arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")],
    ]


@pytest.mark.timeout(600)
def test_schemathesis_finds_no_server_error_and_no_response_off_the_document(
    platform: tuple[int, Path], auth_headers: dict[str, str], tmp_path: Path
) -> None:
    run = subprocess.run(
        command(f"http://127.0.0.1:{platform[0]}", auth_headers, tmp_path),
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks"},
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-20000:]
    # Every operation but the stream was tested.
    counts = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", run.stdout)
    assert counts is not None, run.stdout[-5000:]
    selected, total, tested = map(int, counts.groups())
    assert selected == tested == total - len(STREAMS) > 40, run.stdout[-5000:]
