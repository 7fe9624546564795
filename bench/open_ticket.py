"""OpenTicket through gRPC against a running TicketingService, 32 concurrent clients.

Besides the headline figure, the same command is measured layer by layer (event-store append,
application layer, application inside the running service, full gRPC call), all with 32
commands in flight, so the table shows where the time goes.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from careops.events.v1.envelope_pb2 import EventBatch
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from careops_sla import default_policy
from ticketing.application import STREAM, SUBJECT_PREFIX, TicketingApp
from ticketing.main import TicketingService, TicketingSettings

from bench.common import (
    CLIENTS,
    CpuMeter,
    Report,
    embedded_nats,
    latency_summary,
    rate,
    ratio,
    service_process,
)
from bench.grpc_load import LoadSpec, load_from_child
from bench.workload import (
    OPEN_REQUEST,
    OPEN_TICKET,
    new_ticket_id,
    open_command,
    sample_batch,
)

# Issue 16 item 3: CPU per OpenTicket in an API process whose projections run in a worker.
GOAL_API_CPU_MS = 0.75
GOAL_ECHO_RATIO = 0.5


def open_ticket_load(target: str, requests: int, **fields: Any) -> LoadSpec:
    """The OpenTicket load every OpenTicket benchmark sends from its child process: CLIENTS in
    flight, 320 warm-up calls, an idempotency key per call; `fields`: the rest of the spec."""
    return LoadSpec(
        target=target,
        method=OPEN_TICKET,
        request_hex=OPEN_REQUEST.SerializeToString().hex(),
        clients=CLIENTS,
        requests=requests,
        warmup=320,
        idempotency_keys=True,
        **fields,
    )


async def concurrently(
    operation: Callable[[], Awaitable[Any]], total: int, nats_pid: int | None = None
) -> dict[str, Any]:
    """Runs `operation` `total` times, CLIENTS at a time (closed loop); throughput, latency and
    the CPU this process (and nats-server) spent per operation."""
    latencies: list[float] = []

    async def worker(n: int) -> None:
        for _ in range(n):
            begun = time.perf_counter()
            await operation()
            latencies.append(time.perf_counter() - begun)

    with CpuMeter(nats_pid) as meter:
        await asyncio.gather(*(worker(total // CLIENTS) for _ in range(CLIENTS)))
    calls = len(latencies)
    return {
        "ops_s": rate(calls, meter.wall),
        **latency_summary(latencies),
        "cpu_ms_per_op": round(meter.cpu / calls * 1000, 3),
        "process_cpu_share": meter.share(),
        "nats_cpu_share": meter.other_share(),
    }


async def store_and_app_layers(url: str, nats_pid: int | None, total: int) -> dict[str, Any]:
    """JetStreamEventStore.append of a real OpenTicket batch, then TicketingApp.execute."""
    nc = await connect(url, name="bench-layers")
    store = JetStreamEventStore(nc)
    app = TicketingApp(store=store, policy=default_policy())
    await app.provision()
    batch = EventBatch()
    batch.ParseFromString(await sample_batch())

    async def append() -> None:
        await store.append(
            stream=STREAM.name,
            subject=f"{SUBJECT_PREFIX}.{new_ticket_id()}",
            batch=batch,
            expected_sequence=0,
            message_id=uuid.uuid4().hex,
        )

    async def execute() -> None:
        ticket_id = new_ticket_id()
        await app.execute(ticket_id, open_command(ticket_id), command_id=uuid.uuid4().hex)

    await concurrently(append, 320)  # warm-up
    layers = {
        "store_append": await concurrently(append, total, nats_pid),
        "app_execute": await concurrently(execute, total, nats_pid),
    }
    await nc.close()
    return layers


async def caught_up(service: TicketingService, timeout: float = 120) -> None:
    """Waits until every projection has applied the whole of its own stream (the customer
    directory follows customer-profile's stream, not ticketing's)."""
    assert service.store is not None
    for runner in service.runners.values():
        last = await service.store.last_sequence(runner.stream)
        if not await runner.wait_for(last, timeout):
            raise TimeoutError(f"{runner.projection.name} did not reach {runner.stream}:{last}")


async def service_layers(
    url: str, nats_pid: int | None, data_dir: Path, total: int, grpc_total: int
) -> dict[str, Any]:
    """The running service (SQLite read models, projections live): in-process execute, then
    OpenTicket over gRPC from a child process."""
    service = TicketingService(
        TicketingSettings(
            nats_url=url,
            data_dir=str(data_dir),
            grpc_port=0,
            metrics_port=0,
            shutdown_grace_seconds=0,
        )
    )
    await service.start()
    try:
        assert service.app is not None and service.server is not None
        app = service.app

        async def execute() -> None:
            ticket_id = new_ticket_id()
            await app.execute(ticket_id, open_command(ticket_id), command_id=uuid.uuid4().hex)

        await concurrently(execute, 320)  # warm-up
        await caught_up(service)
        in_service = await concurrently(execute, total, nats_pid)
        await caught_up(service)
        result = await load_from_child(
            open_ticket_load(
                f"127.0.0.1:{service.server.port}",
                grpc_total,
                identity_data_dir=str(data_dir),
                watch_pids=(os.getpid(), nats_pid or os.getpid()),
            )
        )
        started = time.perf_counter()
        await caught_up(service)
        drain = time.perf_counter() - started
    finally:
        await service.stop()
    calls = len(result.latencies)
    return {
        "app_execute_in_service": in_service,
        "grpc": {
            **result.summary(),
            "cpu_ms_per_op": round(result.watched_cpu_s[0] / calls * 1000, 3),
            "process_cpu_share": result.cpu_share(0),
            "nats_cpu_share": result.cpu_share(1),
        },
        "projection_drain_after_grpc_s": round(drain, 3),
        "first_error": result.first_error,
    }


async def split_roles(url: str, nats_pid: int | None, data_dir: Path, total: int) -> dict[str, Any]:
    """OpenTicket over gRPC against `ticketing.main --role api`, its projections, reactions and
    timers in a `--role worker` process on the same log and database (issue 16's layout); the
    CPU of the API process, the worker and nats-server over the measured window."""
    api_port, worker_port = free_port(), free_port()
    env = {
        "CAREOPS_NATS_URL": url,
        "CAREOPS_DATA_DIR": str(data_dir),
        "CAREOPS_LOG_LEVEL": "WARNING",
        "CAREOPS_TICKETING_METRICS_PORT": "0",
    }
    api_address, worker_address = f"127.0.0.1:{api_port}", f"127.0.0.1:{worker_port}"
    with (
        service_process(
            "ticketing.main",
            {**env, "CAREOPS_TICKETING_GRPC_PORT": str(worker_port)},
            worker_address,
            ("--role", "worker"),
        ) as worker_pid,
        service_process(
            "ticketing.main",
            {**env, "CAREOPS_TICKETING_GRPC_PORT": str(api_port)},
            api_address,
            ("--role", "api"),
        ) as api_pid,
    ):
        result = await load_from_child(
            open_ticket_load(
                api_address,
                total,
                identity_data_dir=str(data_dir),
                watch_pids=(api_pid, worker_pid, nats_pid or api_pid),
            )
        )
    calls = max(1, len(result.latencies))
    return {
        **result.summary(),
        "cpu_ms_per_op": round(result.watched_cpu_s[0] / calls * 1000, 3),
        "worker_cpu_ms_per_op": round(result.watched_cpu_s[1] / calls * 1000, 3),
        "process_cpu_share": result.cpu_share(0),
        "worker_cpu_share": result.cpu_share(1),
        "nats_cpu_share": result.cpu_share(2),
        "first_error": result.first_error,
    }


def _pid(server: EmbeddedNats) -> int | None:
    return server.process.pid if server.process else None


async def run(quick: bool, baselines: dict[str, Any]) -> dict[str, Any]:
    layer_total = 1280 if quick else 4000
    grpc_total = 1600 if quick else 6400
    with embedded_nats() as server:
        layers = await store_and_app_layers(server.url, _pid(server), layer_total)
    with embedded_nats() as server, TemporaryDirectory(prefix="careops-bench-") as directory:
        layers |= await service_layers(
            server.url, _pid(server), Path(directory), layer_total, grpc_total
        )
    with embedded_nats() as server, TemporaryDirectory(prefix="careops-bench-") as directory:
        layers["grpc_api_role"] = await split_roles(
            server.url, _pid(server), Path(directory), grpc_total
        )
    grpc_figures = layers["grpc"]

    echo = baselines["grpc_echo"]["ops_s"]
    js_concurrent = baselines["jetstream_sync_always"]["concurrent_32"]["ops_s"]
    js_awaited = baselines["jetstream_sync_always"]["awaited"]["ops_s"]
    smaller = min(echo, js_concurrent)
    smaller_name = "grpc echo" if echo <= js_concurrent else "JetStream 32 concurrent publishers"
    headline = ratio(grpc_figures["ops_s"], smaller)

    report = Report(f"2. OpenTicket, {CLIENTS} commands in flight (SQLite read models)")
    raw_echo = baselines["grpc_echo"]
    report.add(
        layer="raw: grpc.aio echo (baseline)",
        ops_s=echo,
        p50_ms=raw_echo["p50_ms"],
        p99_ms=raw_echo["p99_ms"],
        cpu_ms_per_op=raw_echo["server_cpu_ms_per_call"],
        cpu_bench=raw_echo["server_cpu_share"],
    )
    floor = baselines["grpc_publish_floor"]
    report.add(
        layer="raw: grpc.aio + one awaited JetStream publish, real bytes (the floor, baseline)",
        ops_s=floor["ops_s"],
        p50_ms=floor["p50_ms"],
        p99_ms=floor["p99_ms"],
        cpu_ms_per_op=floor["server_cpu_ms_per_call"],
        cpu_bench=floor["server_cpu_share"],
    )
    raw_js = baselines["jetstream_sync_always"]["concurrent_32"]
    report.add(
        layer="raw: JetStream publish, 32 publishers (baseline)",
        ops_s=js_concurrent,
        p50_ms=raw_js["p50_ms"],
        p99_ms=raw_js["p99_ms"],
    )
    names = {
        "store_append": "JetStreamEventStore.append (headers, expected seq)",
        "app_execute": "TicketingApp.execute(OpenTicket), no projections",
        "app_execute_in_service": "TicketingApp.execute inside the running service",
        "grpc": "OpenTicket over gRPC, client in a child process",
        "grpc_api_role": "OpenTicket over gRPC to --role api (projections in a --role worker)",
    }
    for key, label in names.items():
        row = layers[key]
        report.add(
            layer=label,
            ops_s=row["ops_s"],
            p50_ms=row["p50_ms"],
            p99_ms=row["p99_ms"],
            cpu_ms_per_op=row["cpu_ms_per_op"],
            cpu_bench=row["process_cpu_share"],
            cpu_nats=row["nats_cpu_share"],
        )
    if grpc_figures["errors"]:
        report.note(f"{grpc_figures['errors']} gRPC errors, first: {layers['first_error']}")
    split = layers["grpc_api_role"]
    if split["errors"]:
        report.note(f"{split['errors']} gRPC errors (--role api), first: {split['first_error']}")
    report.note(
        "cpu_ms_per_op: CPU of the benchmark process (which hosts the service) per operation; "
        "cpu_bench / cpu_nats: cores busy (CPU seconds per wall second); the --role api row: "
        f"the API process's CPU; its worker spent {split['worker_cpu_ms_per_op']} ms per "
        f"command ({split['worker_cpu_share']} cores)"
    )
    report.note(
        f"projections needed {layers['projection_drain_after_grpc_s']} s after the last "
        "gRPC reply to apply everything"
    )
    above = above_the_floor(split["cpu_ms_per_op"], floor["server_cpu_ms_per_call"])
    report.note(
        f"--role api over the floor (grpc.aio + one awaited publish, same bytes): "
        f"{above['ours_ms']} ms CPU per call is CareOps' own (interceptors, decide, encode, "
        f"the event store, the reply); the API process spends {above['ratio']} x the floor"
    )
    report.note(
        f"ratio to the JetStream awaited-one-at-a-time baseline: "
        f"{ratio(grpc_figures['ops_s'], js_awaited)}"
    )
    report.goal(
        "OpenTicket throughput",
        f">= 0.5 x smaller raw baseline ({smaller_name}, {smaller:,.0f}/s)",
        f"{grpc_figures['ops_s']:,.0f}/s = {headline}",
        headline is not None and headline >= 0.5,
    )
    api_echo = ratio(split["ops_s"], echo)
    report.goal(
        "OpenTicket CPU per call, --role api (issue 16)",
        f"<= {GOAL_API_CPU_MS} ms in the API process, projections in a worker",
        f"{split['cpu_ms_per_op']} ms = {ratio(split['cpu_ms_per_op'], GOAL_API_CPU_MS)} x target",
        0 < split["cpu_ms_per_op"] <= GOAL_API_CPU_MS,
    )
    report.goal(
        "OpenTicket throughput, --role api (issue 16)",
        f">= {GOAL_ECHO_RATIO} x grpc echo ({echo:,.0f}/s)",
        f"{split['ops_s']:,.0f}/s = {api_echo}",
        api_echo is not None and api_echo >= GOAL_ECHO_RATIO,
    )
    report.show()
    return {
        "report": report.to_json(),
        "layers": layers,
        "ratio_to_smaller_raw_baseline": headline,
        "smaller_raw_baseline": {"name": smaller_name, "ops_s": smaller},
        "ratio_to_jetstream_awaited": ratio(grpc_figures["ops_s"], js_awaited),
        "api_above_floor": above,
    }


def above_the_floor(api_cpu_ms: float, floor_cpu_ms: float) -> dict[str, float | None]:
    """What the API process spends per OpenTicket beyond the floor baseline's grpc.aio call
    and awaited publish (`ours_ms`), and its CPU as a multiple of the floor's (`ratio`)."""
    return {
        "ours_ms": round(api_cpu_ms - floor_cpu_ms, 3),
        "ratio": ratio(api_cpu_ms, floor_cpu_ms),
    }
