"""OpenTicket through the gateway vs directly to ticketing, 32 concurrent clients.

Ticketing and the gateway run as their own processes (`python -m <service>.main`, as `careops up`
starts them) on an embedded NATS; the load comes from a child process. The same request bytes
go to ticketing's port and to the gateway's, which forwards them unchanged; the ratio is the
throughput the edge keeps. On a small machine the gateway competes for the same cores as
ticketing, NATS and the load generator, so the ratio includes that contention.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from careops_eventstore.nats_embedded import free_port
from careops_platform.identity import ADMIN
from careops_platform.local_issuer import LocalIssuer

from bench.common import CLIENTS, Report, embedded_nats, ratio, service_process
from bench.grpc_load import load_from_child
from bench.open_ticket import open_ticket_load


async def _measure(
    target: str, total: int, pids: tuple[int, ...], token: str, identity_data_dir: str = ""
) -> dict[str, Any]:
    result = await load_from_child(
        open_ticket_load(
            target,
            total,
            token=token,
            identity_data_dir=identity_data_dir,
            watch_pids=pids,
        )
    )
    calls = max(1, len(result.latencies))
    return {
        **result.summary(),
        "cpu_ms_per_op": [round(cpu / calls * 1000, 3) for cpu in result.watched_cpu_s],
        "first_error": result.first_error,
    }


async def run(quick: bool) -> dict[str, Any]:
    total = 960 if quick else 4000
    ticketing_port, gateway_port = free_port(), free_port()
    with embedded_nats() as server, TemporaryDirectory(prefix="careops-bench-") as directory:
        env = {
            "CAREOPS_NATS_URL": server.url,
            "CAREOPS_DATA_DIR": str(Path(directory)),
            "CAREOPS_LOG_LEVEL": "WARNING",
            "CAREOPS_TICKETING_GRPC_PORT": str(ticketing_port),
            "CAREOPS_TICKETING_METRICS_PORT": str(free_port()),
            "CAREOPS_TICKETING_ADDR": f"127.0.0.1:{ticketing_port}",
            "CAREOPS_GATEWAY_GRPC_PORT": str(gateway_port),
            "CAREOPS_GATEWAY_HTTP_PORT": str(free_port()),
            "CAREOPS_GATEWAY_METRICS_PORT": str(free_port()),
            # One principal makes every call: the per-principal rate limit would refuse most
            # of them (RESOURCE_EXHAUSTED), and forwarding, not limiting, is what is measured.
            "CAREOPS_RATE_LIMIT_PER_SECOND": "0",
        }
        ticketing_address = f"127.0.0.1:{ticketing_port}"
        gateway_address = f"127.0.0.1:{gateway_port}"
        with (
            service_process("ticketing.main", env, ticketing_address) as ticketing_pid,
            service_process("gateway.main", env, gateway_address) as gateway_pid,
        ):
            pids = (ticketing_pid, gateway_pid)
            # A token of the embedded issuer the gateway trusts (its key in the data dir); the
            # direct calls carry it too, so both sides send the same bytes.
            token = LocalIssuer(directory).issue(
                subject="bench", roles=[ADMIN], ttl=timedelta(hours=1)
            )
            # The direct calls also present the internal identity the gateway would forward.
            direct = await _measure(ticketing_address, total, pids, token, directory)
            through = await _measure(gateway_address, total, pids, token)
    kept = ratio(through["ops_s"], direct["ops_s"])
    report = Report(f"OpenTicket through the gateway, {CLIENTS} clients")
    for name, figures in (("direct to ticketing", direct), ("through the gateway", through)):
        report.add(
            path=name,
            ops_s=figures["ops_s"],
            p50_ms=figures["p50_ms"],
            p99_ms=figures["p99_ms"],
            errors=figures["errors"],
            ticketing_cpu_ms_per_op=figures["cpu_ms_per_op"][0],
            gateway_cpu_ms_per_op=figures["cpu_ms_per_op"][1],
        )
    report.add(path="ratio gateway / direct", ops_s=kept)
    report.note(
        "Same request bytes; the gateway checks the caller's ES256 token (verified once, then "
        "from memory until it expires), then forwards the bytes without decoding (generic "
        "handler) with its signed internal identity (cached per principal; the service "
        "verifies it once per token). Both paths present that identity to ticketing. "
        "Processes share the machine's cores with NATS and the load generator."
    )
    report.show()
    return {
        "direct": direct,
        "through_gateway": through,
        "ratio": kept,
        "report": report.to_json(),
    }
