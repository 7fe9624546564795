"""Scale-out on one machine (issue 16, item 5): ticketing as one process (`--role all`), as an
api and a worker, and as two api replicas bound to one port (grpc sets SO_REUSEPORT on Linux)
and a worker, all over one NATS and one SQLite database.

Each layout gets two loads from child processes, over several connections so the kernel
spreads them over the replicas: a closed loop of OpenTicket (32 in flight: throughput, CPU per
call of every process), then a steady open-loop mix of four commands (bench.steady: command
latency and projection lag, the ticket list's SQL checkpoint sampled every 20 ms, and CPU per
command at that rate). Both replicas are shown to take calls by their own request counters
(their /metrics). From the measured CPU per call of the api, the worker and nats-server, a
model says what more cores should give (printed as a second table; docs/benchmarks.md §17).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from careops_cli.platform import wait_serving
from careops_eventstore.nats_embedded import free_port
from ticketing.projections import TicketListProjection

from bench.common import (
    CLIENTS,
    Report,
    cpu_seconds,
    embedded_nats,
    latency_summary,
    rate,
    ratio,
)
from bench.grpc_load import load_from_child
from bench.open_ticket import open_ticket_load
from bench.steady import CheckpointPoller, SteadyResult, SteadySpec, steady_from_child
from bench.workload import OPEN_TICKET
from tests.support import metric_sum

CHANNELS = CLIENTS  # a connection per client: the kernel spreads them over the replicas
STEADY_COMMANDS_S = 200
GOAL_LAG_P99_MS = 200.0  # the lag goal of docs/benchmarks.md §4
GOAL_REPLICA_SHARE = 0.25  # each of two replicas answers at least this share of the calls
START_TIMEOUT_S = 60.0
SERVING_LINE = "ticketing serving"  # the skeleton's log line once health is SERVING
CORES_MODELLED = (2, 4, 8, 16)


@dataclass(frozen=True)
class Layout:
    name: str
    api_replicas: int  # 0: one process with --role all


LAYOUTS = (
    Layout("one process (all)", 0),
    Layout("api + worker", 1),
    Layout("two api replicas on one port + worker", 2),
)


@dataclass
class Member:
    """One service process of a layout: its role, its /metrics port and its log."""

    role: str
    process: subprocess.Popen[bytes]
    metrics_port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def serving(self) -> bool:
        """Whether its log says health turned SERVING (replicas share one address, so the
        address cannot tell which of them answers health)."""
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            code = self.process.returncode
            raise RuntimeError(f"{self.role} exited {code}, its log ends:\n{tail}")
        return SERVING_LINE in self.log.read_text(errors="replace")

    def requests(self, method: str) -> float:
        """Its `careops_grpc_requests_total` of the full `method` (every status code)."""
        return metric_sum(self.metrics_port, "careops_grpc_requests_total", method=method)


@dataclass
class Deployment:
    address: str  # the api's port (shared by the replicas)
    data_dir: Path
    members: list[Member]

    @property
    def apis(self) -> list[Member]:
        return [member for member in self.members if member.role in ("api", "all")]

    @property
    def worker(self) -> Member | None:
        return next((member for member in self.members if member.role == "worker"), None)

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'ticketing.db'}"


def _launch(role: str, env: dict[str, str], grpc_port: int, data_dir: Path, n: int) -> Member:
    metrics_port = free_port()
    log = data_dir / f"{role}-{n}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "ticketing.main", "--role", role],
        env={
            **os.environ,
            **env,
            "CAREOPS_TICKETING_GRPC_PORT": str(grpc_port),
            "CAREOPS_TICKETING_METRICS_PORT": str(metrics_port),
        },
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    return Member(role, process, metrics_port, log)


def _wait_serving(member: Member) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not member.serving():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{member.role} did not report serving: {member.log}")
        time.sleep(0.1)  # a start-up wait in a benchmark, not a test's synchronisation


@contextmanager
def deploy(nats_url: str, data_dir: Path, api_replicas: int) -> Iterator[Deployment]:
    """Starts the layout's processes one after the other (the first migrates the database and
    creates the keys the others read); stops them (SIGTERM) when the block ends."""
    env = {
        "CAREOPS_NATS_URL": nats_url,
        "CAREOPS_DATA_DIR": str(data_dir),
        "CAREOPS_LOG_LEVEL": "INFO",  # the serving line; nothing is logged per call
        "CAREOPS_AUTO_ROUTE": "false",  # the router would assign the tickets the load assigns
    }
    api_port = free_port()
    plan = [("all", api_port)] if api_replicas == 0 else [("worker", free_port())]
    plan += [("api", api_port)] * api_replicas
    members: list[Member] = []
    try:
        for n, (role, port) in enumerate(plan):
            member = _launch(role, env, port, data_dir, n)
            members.append(member)
            _wait_serving(member)
        if not wait_serving(f"127.0.0.1:{api_port}", START_TIMEOUT_S):
            raise RuntimeError(f"nothing serves 127.0.0.1:{api_port}")
        yield Deployment(f"127.0.0.1:{api_port}", data_dir, members)
    finally:
        for member in members:
            member.process.terminate()
        for member in members:
            member.process.wait(30)


def _cpu(pids: Sequence[int]) -> list[float]:
    return [cpu_seconds(pid) for pid in pids]


def _per_call_ms(seconds: float, calls: int) -> float:
    return round(seconds / max(1, calls) * 1000, 3)


async def closed_loop(deployment: Deployment, nats_pid: int, requests: int) -> dict[str, Any]:
    """OpenTicket, CLIENTS in flight over CHANNELS connections: throughput and CPU per call of
    the apis, the worker and nats-server, and each api's share of the calls."""
    apis, worker = deployment.apis, deployment.worker
    pids = [*(api.pid for api in apis), *([worker.pid] if worker else []), nats_pid]
    before = [api.requests(OPEN_TICKET) for api in apis]
    result = await load_from_child(
        open_ticket_load(
            deployment.address,
            requests,
            identity_data_dir=str(deployment.data_dir),
            watch_pids=tuple(pids),
            channels=CHANNELS,
        )
    )
    answered = [api.requests(OPEN_TICKET) - was for api, was in zip(apis, before, strict=True)]
    calls = len(result.latencies)
    cpu = list(result.watched_cpu_s)
    api_cpu, worker_cpu, nats_cpu = sum(cpu[: len(apis)]), sum(cpu[len(apis) : -1]), cpu[-1]
    return {
        **result.summary(),
        "cpu_ms_per_call": _per_call_ms(api_cpu + worker_cpu, calls),
        "api_cpu_ms_per_call": _per_call_ms(api_cpu, calls),
        "worker_cpu_ms_per_call": _per_call_ms(worker_cpu, calls),
        "nats_cpu_ms_per_call": _per_call_ms(nats_cpu, calls),
        "client_cpu_ms_per_call": _per_call_ms(result.client_cpu_s, calls),
        "api_cpu_shares": [round(seconds / result.elapsed, 2) for seconds in cpu[: len(apis)]],
        "replica_call_shares": [round(n / max(1.0, sum(answered)), 3) for n in answered],
        "first_error": result.first_error,
    }


async def steady_mix(
    deployment: Deployment, commands_s: int, seconds: float
) -> tuple[SteadyResult, CheckpointPoller]:
    """The steady mix from a child process over CHANNELS connections, with the ticket list's
    checkpoint sampled throughout and until it reached the last command (at most 60 s more)."""
    poller = CheckpointPoller(deployment.database_url, TicketListProjection.name)
    poller.start()
    result = await steady_from_child(
        SteadySpec(
            target=deployment.address,
            identity_data_dir=str(deployment.data_dir),
            commands_s=commands_s,
            seconds=seconds,
            channels=CHANNELS,
        )
    )
    await poller.stop_at(max((call[3] for call in result.calls), default=0), 60)
    return result, poller


async def steady(
    deployment: Deployment, nats_pid: int, commands_s: int, seconds: float
) -> dict[str, Any]:
    """The steady mix at `commands_s`: command latency, projection lag and CPU per command
    (the projections' catching up after the last answer included)."""
    apis, worker = deployment.apis, deployment.worker
    pids = [*(api.pid for api in apis), *([worker.pid] if worker else []), nats_pid]
    cpu = _cpu(pids)
    result, poller = await steady_mix(deployment, commands_s, seconds)
    cpu = [after - was for after, was in zip(_cpu(pids), cpu, strict=True)]
    lags, missed = poller.lags(result.calls)
    calls = len(result.calls)
    api_cpu, worker_cpu = sum(cpu[: len(apis)]), sum(cpu[len(apis) : -1])
    return {
        "commands_s": commands_s,
        "issued_s": rate(calls + result.errors, result.elapsed),
        "calls": calls,
        "errors": result.errors,
        "first_error": result.first_error,
        "scheduler_late_p99_ms": latency_summary(result.late)["p99_ms"],
        "command": result.command_latency(),
        "lag": latency_summary(lags),
        "lag_never_reached": missed,
        "cpu_ms_per_command": _per_call_ms(api_cpu + worker_cpu, calls),
        "api_cpu_ms_per_command": _per_call_ms(api_cpu, calls),
        "worker_cpu_ms_per_command": _per_call_ms(worker_cpu, calls),
        "nats_cpu_ms_per_command": _per_call_ms(cpu[-1], calls),
    }


def model(split: dict[str, Any], whole: dict[str, Any], cores: int) -> dict[str, Any]:
    """Commands/s on `cores` cores, CPU-bound, with the load generator elsewhere, from the
    closed loop's CPU per call. api replicas + one worker (`split`): cores - 1 replicas, each
    at most one core (a Python process runs its commands on one), one worker (the ticketing
    stream's projections are one leased group: one process, one core) and nats-server (threads
    on any core); the smallest bound wins. One process (`whole`): at most one core."""
    api, worker, nats = (
        split["api_cpu_ms_per_call"] / 1000,
        split["worker_cpu_ms_per_call"] / 1000,
        split["nats_cpu_ms_per_call"] / 1000,
    )
    replicas = max(1, cores - 1)
    bounds = {
        "all cores": cores / (api + worker + nats),
        "api replicas": replicas / api,
        "one worker": 1 / worker if worker else float("inf"),
    }
    limit = min(bounds, key=lambda name: bounds[name])
    alone, alone_nats = whole["api_cpu_ms_per_call"] / 1000, whole["nats_cpu_ms_per_call"] / 1000
    return {
        "cores": cores,
        "one_process_s": round(min(1 / alone, cores / (alone + alone_nats))),
        "api_replicas": replicas,
        "split_s": round(bounds[limit]),
        "bound_by": limit,
        **{f"bound_{name.replace(' ', '_')}": round(value) for name, value in bounds.items()},
    }


async def measure(layout: Layout, requests: int, seconds: float) -> dict[str, Any]:
    """One layout on a fresh NATS and database: the closed loop, then the steady mix."""
    with ExitStack() as stack:
        server = stack.enter_context(embedded_nats())
        directory = Path(stack.enter_context(TemporaryDirectory(prefix="careops-bench-")))
        deployment = stack.enter_context(deploy(server.url, directory, layout.api_replicas))
        assert server.process is not None
        nats_pid = server.process.pid
        return {
            "closed_loop": await closed_loop(deployment, nats_pid, requests),
            "steady": await steady(deployment, nats_pid, STEADY_COMMANDS_S, seconds),
        }


def _report(results: dict[str, Any]) -> Report:
    report = Report(
        f"17. Scale-out on {os.cpu_count()} cores: OpenTicket closed loop ({CLIENTS} in flight, "
        f"{CHANNELS} connections), then a steady {STEADY_COMMANDS_S}/s command mix"
    )
    for name, row in results.items():
        closed, mix = row["closed_loop"], row["steady"]
        report.add(
            layout=name,
            ops_s=closed["ops_s"],
            p99_ms=closed["p99_ms"],
            cpu_ms=closed["cpu_ms_per_call"],
            api_ms=closed["api_cpu_ms_per_call"],
            worker_ms=closed["worker_cpu_ms_per_call"],
            nats_ms=closed["nats_cpu_ms_per_call"],
            replica_shares="/".join(f"{share:.2f}" for share in closed["replica_call_shares"]),
            mix_cmd_p99=mix["command"]["p99_ms"],
            mix_lag_p50=mix["lag"]["p50_ms"],
            mix_lag_p99=mix["lag"]["p99_ms"],
            mix_cpu_ms=mix["cpu_ms_per_command"],
        )
        errors = closed["errors"] + mix["errors"]
        if errors or mix["lag_never_reached"]:
            report.note(
                f"{name}: {errors} errors (first: {closed['first_error'] or mix['first_error']}),"
                f" {mix['lag_never_reached']} commands the projection never reached"
            )
    report.note(
        "cpu_ms: CPU of all service processes (apis + worker) per call; api_ms / worker_ms / "
        "nats_ms: each part's; replica_shares: each api's share of the calls (its own "
        "careops_grpc_requests_total); mix_*: the steady mix (ms; lag: answer -> ticket list "
        "checkpoint, sampled every 20 ms)"
    )
    report.note("a shared machine: wall-clock rates are noisy, the CPU per call is the figure")
    return report


def _goals(report: Report, results: dict[str, Any]) -> None:
    one, replicas = results[LAYOUTS[0].name], results[LAYOUTS[2].name]
    shares = replicas["closed_loop"]["replica_call_shares"]
    report.goal(
        "both api replicas take calls (one port)",
        f"each >= {GOAL_REPLICA_SHARE} of the calls",
        "/".join(f"{share:.2f}" for share in shares),
        len(shares) == 2 and min(shares) >= GOAL_REPLICA_SHARE,
    )
    p99 = replicas["steady"]["lag"]["p99_ms"]
    report.goal(
        f"projection lag at {STEADY_COMMANDS_S}/s, two replicas + worker",
        f"p99 < {GOAL_LAG_P99_MS:.0f} ms",
        f"p99 {p99:,.0f} ms",
        p99 < GOAL_LAG_P99_MS and replicas["steady"]["lag_never_reached"] == 0,
    )
    throughput = ratio(replicas["closed_loop"]["ops_s"], one["closed_loop"]["ops_s"])
    report.goal(
        "throughput, two replicas + worker vs one process",
        "a ratio (2 cores: bound by all cores, see the model)",
        f"{throughput}",
        None,
    )


async def run(quick: bool) -> dict[str, Any]:
    requests, seconds = (1600, 10.0) if quick else (6400, 30.0)
    results = {layout.name: await measure(layout, requests, seconds) for layout in LAYOUTS}
    report = _report(results)
    _goals(report, results)
    report.show()
    whole = results[LAYOUTS[0].name]["closed_loop"]
    split = results[LAYOUTS[1].name]["closed_loop"]
    projection = Report(
        "17b. Model: OpenTicket/s on more cores, CPU-bound, from the closed loop's CPU per call "
        f"(one process {whole['api_cpu_ms_per_call']} ms; api + worker: api "
        f"{split['api_cpu_ms_per_call']} ms, worker {split['worker_cpu_ms_per_call']} ms, nats "
        f"{split['nats_cpu_ms_per_call']} ms)"
    )
    for cores in CORES_MODELLED:
        projection.add(**model(split, whole, cores))
    projection.note("the load generator is assumed elsewhere; on this machine it shares the cores")
    projection.show()
    return {
        "report": report.to_json(),
        "model": projection.to_json(),
        "layouts": results,
    }
