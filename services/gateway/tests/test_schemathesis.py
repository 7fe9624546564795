"""schemathesis against /openapi.json: no 5xx and no response that violates the document.

The CLI runs in a subprocess so that the in-process services keep their event loop. Positive
mode: the protos declare no validation rules (required ids, lengths), so schemathesis' negative
mode and `positive_data_acceptance` would only report that the services validate more than the
schema says; every response is still checked against the document (status codes, content
types, headers, schemas) and for server errors. `CAREOPS_SCHEMATHESIS_EXAMPLES` raises the
examples per operation (default 10).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from gateway.main import GatewayService

# The services running behind the `gateway` fixture; customer-profile's and quality-scoring's
# ports are closed there (every call of theirs is a 503 by design).
RUNNING = (
    "careops.ticketing.v1.TicketingService",
    "careops.incident.v1.IncidentService",
    "careops.gateway.v1.GatewayService",
)
# The document's own exclusions. `ignored_auth`: the gateway checks no credentials yet (issue 11
# item 1 is being built beside this); take it out of this list once it does.
EXCLUDED_CHECKS = ("positive_data_acceptance", "ignored_auth")
# A stream never ends by itself; WatchAlerts is tested in test_gateway.
STREAMS = ("IncidentService_WatchAlerts",)


@pytest.fixture
def auth_headers() -> dict[str, str]:
    """Returns the headers that authenticate a test call: the one place to obtain a token
    (none until the gateway checks credentials)."""
    return {}


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
        *[f"--include-tag={tag}" for tag in RUNNING],
        *[f"--exclude-operation-id={operation}" for operation in STREAMS],
        *[arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")],
    ]


@pytest.mark.timeout(600)
async def test_schemathesis_finds_no_server_error_and_no_response_off_the_document(
    gateway: GatewayService, auth_headers: dict[str, str], tmp_path: Path
) -> None:
    assert gateway.http is not None
    process = await asyncio.create_subprocess_exec(
        *command(f"http://127.0.0.1:{gateway.http.port}", auth_headers, tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={
            **os.environ,
            "NO_COLOR": "1",
            "SCHEMATHESIS_HOOKS": "gateway.tests.schemathesis_hooks",
        },
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")[-20000:]
