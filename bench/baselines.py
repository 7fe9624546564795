"""Raw baselines: bare JetStream publishes from nats-py and a bare grpc.aio unary call.

These are the ceilings the CareOps figures are read against: an OpenTicket is one gRPC call
that appends one JetStream message, so it cannot be faster than either.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import grpc
import nats
from careops.ticketing.v1.ticketing_pb2 import OpenTicketRequest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from nats.js import JetStreamContext, api

from bench.common import CLIENTS, Report, embedded_nats, latency_summary, rate, ratio
from bench.grpc_load import LoadSpec, load_from_child
from bench.workload import OPEN_REQUEST, OPEN_TICKET, sample_batch, sample_open_ticket

HEALTH_CHECK = "/grpc.health.v1.Health/Check"


async def jetstream_publish(url: str, count: int, payload: bytes) -> dict[str, Any]:
    """Publishes `count` messages three ways to a file-storage stream: one at a time awaited,
    by 32 concurrent publishers each awaiting its acks, and pipelined with publish_async."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(
        api.StreamConfig(name="BENCH", subjects=["bench.>"], storage=api.StorageType.FILE)
    )
    awaited = await awaited_publishes(js, "bench", count, payload)

    concurrent_latencies: list[float] = []

    async def publisher(worker: int, n: int) -> None:
        for index in range(n):
            begun = time.perf_counter()
            await js.publish(f"bench.c.{worker}.{index}", payload)
            concurrent_latencies.append(time.perf_counter() - begun)

    started = time.perf_counter()
    await asyncio.gather(*(publisher(w, count // CLIENTS) for w in range(CLIENTS)))
    concurrent = {
        "ops_s": rate(len(concurrent_latencies), time.perf_counter() - started),
        **latency_summary(concurrent_latencies),
    }

    started = time.perf_counter()
    futures = [await js.publish_async(f"bench.p.{index}", payload) for index in range(count)]
    await asyncio.gather(*futures)
    pipelined = {"ops_s": rate(count, time.perf_counter() - started)}
    await nc.close()
    return {"awaited": awaited, "concurrent_32": concurrent, "pipelined": pipelined}


async def awaited_publishes(
    js: JetStreamContext, prefix: str, count: int, payload: bytes
) -> dict[str, Any]:
    """Publishes `count` messages to `prefix`.a.<n>, one at a time, each ack awaited (after 100
    to `prefix`.w.<n> as a warm-up): the floor of commands run one at a time."""
    for index in range(100):
        await js.publish(f"{prefix}.w.{index}", payload)
    latencies: list[float] = []
    started = time.perf_counter()
    for index in range(count):
        begun = time.perf_counter()
        await js.publish(f"{prefix}.a.{index}", payload)
        latencies.append(time.perf_counter() - begun)
    return {"ops_s": rate(count, time.perf_counter() - started), **latency_summary(latencies)}


async def grpc_echo(clients: int, requests: int) -> dict[str, Any]:
    """A bare grpc.aio server (Health/Check, no interceptors) in this process, called by
    `clients` concurrent callers from a child process."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    request = health_pb2.HealthCheckRequest().SerializeToString()
    return await _serve_and_load(
        server, HEALTH_CHECK, request, clients=clients, requests=requests, warmup=500
    )


async def grpc_publish_floor(
    url: str, data_dir: Path, clients: int, requests: int
) -> dict[str, Any]:
    """The floor of an OpenTicket on this stack: a bare grpc.aio server in this process whose
    handler parses a real OpenTicketRequest, publishes a real TicketOpened message to a
    file-storage stream and awaits its ack (nats-py's `publish`, as the event store does),
    and returns a real OpenTicketResponse's bytes; no interceptors, no domain code. The
    load is the OpenTicket benchmarks' own: idempotency keys and the internal identity signed
    with `data_dir`'s key (sent, not checked)."""
    payload, reply = await sample_open_ticket()
    nc = await nats.connect(url, name="bench-floor")
    js = nc.jetstream()
    await js.add_stream(
        api.StreamConfig(name="FLOOR", subjects=["floor.>"], storage=api.StorageType.FILE)
    )

    async def open_ticket(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        OpenTicketRequest.FromString(request)
        await js.publish(f"floor.{uuid.uuid4().hex}", payload, stream="FLOOR")
        return reply

    server = grpc.aio.server()
    service, method = OPEN_TICKET.strip("/").split("/")
    handlers = {method: grpc.unary_unary_rpc_method_handler(open_ticket)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    try:
        figures = await _serve_and_load(
            server,
            OPEN_TICKET,
            OPEN_REQUEST.SerializeToString(),
            clients=clients,
            requests=requests,
            warmup=320,
            idempotency_keys=True,
            identity_data_dir=str(data_dir),
        )
    finally:
        await nc.close()
    return {**figures, "request_bytes": OPEN_REQUEST.ByteSize(), "reply_bytes": len(reply)}


async def _serve_and_load(
    server: grpc.aio.Server, method: str, request: bytes, **load: Any
) -> dict[str, Any]:
    """Starts `server` on a free port, calls `method` with `request` from a child process
    (`load`: the rest of its LoadSpec) and returns its figures with this process's CPU."""
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        result = await load_from_child(
            LoadSpec(
                target=f"127.0.0.1:{port}",
                method=method,
                request_hex=request.hex(),
                watch_pids=(os.getpid(),),
                **load,
            )
        )
    finally:
        await server.stop(0)
    calls = len(result.latencies)
    return {
        **result.summary(),
        "server_cpu_share": result.cpu_share(0),
        "server_cpu_ms_per_call": round(result.watched_cpu_s[0] / calls * 1000, 3),
    }


async def run(quick: bool) -> dict[str, Any]:
    count = 2000 if quick else 6000
    payload = await sample_batch()
    with embedded_nats() as server:
        always = await jetstream_publish(server.url, count, payload)
    with embedded_nats(fsync_always=False) as server:
        default = await jetstream_publish(server.url, count, payload)
    echo = await grpc_echo(CLIENTS, 3000 if quick else 12000)
    with embedded_nats() as server, TemporaryDirectory(prefix="careops-bench-") as directory:
        floor = await grpc_publish_floor(
            server.url, Path(directory), CLIENTS, 1600 if quick else 6400
        )

    report = Report("1. Raw baselines")
    for label, figures in (("sync_interval: always", always), ("default sync (2 min)", default)):
        for mode, title in (
            ("awaited", "awaited one at a time"),
            ("concurrent_32", "32 concurrent publishers"),
            ("pipelined", "pipelined (publish_async)"),
        ):
            row = figures[mode]
            report.add(
                baseline=f"JetStream publish {len(payload)} B, {title}, {label}",
                ops_s=row["ops_s"],
                p50_ms=row.get("p50_ms"),
                p99_ms=row.get("p99_ms"),
            )
    report.add(
        baseline=f"grpc.aio unary Health/Check, {CLIENTS} clients (client in a child process)",
        ops_s=echo["ops_s"],
        p50_ms=echo["p50_ms"],
        p99_ms=echo["p99_ms"],
    )
    report.add(
        baseline=(
            f"grpc.aio OpenTicket floor: parse, one awaited JetStream publish (always), a real "
            f"{floor['reply_bytes']} B reply; {CLIENTS} clients"
        ),
        ops_s=floor["ops_s"],
        p50_ms=floor["p50_ms"],
        p99_ms=floor["p99_ms"],
    )
    report.note(
        f"grpc echo: server {echo['server_cpu_ms_per_call']} ms CPU per call, server process "
        f"{echo['server_cpu_share']} cores, client process {echo['client_cpu_share']} cores"
    )
    report.note(
        f"OpenTicket floor (what any OpenTicket costs on grpc.aio + nats-py, before our code): "
        f"server {floor['server_cpu_ms_per_call']} ms CPU per call, "
        f"{floor['server_cpu_share']} cores"
    )
    fsync_cost = {mode: ratio(always[mode]["ops_s"], default[mode]["ops_s"]) for mode in always}
    report.note(
        "durability cost (fsync on every write / default sync), throughput ratio: "
        + ", ".join(f"{mode} {value}" for mode, value in fsync_cost.items())
    )
    report.show()
    return {
        "report": report.to_json(),
        "payload_bytes": len(payload),
        "jetstream_sync_always": always,
        "jetstream_default_sync": default,
        "fsync_throughput_ratio": fsync_cost,
        "grpc_echo": echo,
        "grpc_publish_floor": floor,
    }
