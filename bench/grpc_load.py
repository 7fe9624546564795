"""Closed-loop gRPC load generator, run in a child process so the server under test has the
benchmark process (and its event loop) to itself.

`python -m bench.grpc_load '{"target": ..., "method": ..., "request_hex": ..., ...}'` (or `-`:
the spec on stdin) prints one JSON object: the latencies of the measured calls, the elapsed
time and the errors.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import grpc
from careops_platform.identity import ADMIN, Principal
from careops_platform.internal_identity import InternalSigner

from bench.common import REPO, cpu_seconds, latency_summary, rate

BENCH_PRINCIPAL = Principal("bench", frozenset({ADMIN}), "bench")


@dataclass
class LoadSpec:
    target: str
    method: str
    request_hex: str
    clients: int = 32
    requests: int = 4000
    warmup: int = 200
    idempotency_keys: bool = False
    token: str = ""  # sent as `authorization: Bearer …` when set (the gateway requires one)
    # Set for a service port: calls present the bench principal signed with this data dir's
    # internal key, as the gateway would (services refuse calls without it).
    identity_data_dir: str = ""
    watch_pids: tuple[int, ...] = ()  # CPU of these processes is measured over the window
    # Set: each call sends the next of these (warm-up calls first; at least warmup + requests
    # of them), for commands whose requests must differ (a new customer's email, a purchase's
    # order id); request_hex is then unused.
    requests_hex: tuple[str, ...] = ()
    # Connections the clients are spread over, round robin: more than one lets the kernel
    # spread them over several processes bound to one port (SO_REUSEPORT).
    channels: int = 1


@dataclass
class LoadResult:
    latencies: list[float]
    elapsed: float
    errors: int
    first_error: str = ""
    client_cpu_s: float = 0.0
    watched_cpu_s: tuple[float, ...] = ()

    def cpu_share(self, position: int) -> float:
        """CPU seconds per wall second of the `position`-th watched process."""
        return round(self.watched_cpu_s[position] / self.elapsed, 2) if self.elapsed else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "ops_s": rate(len(self.latencies), self.elapsed),
            "calls": len(self.latencies),
            "errors": self.errors,
            **latency_summary(self.latencies),
            "client_cpu_share": round(self.client_cpu_s / self.elapsed, 2) if self.elapsed else 0,
        }


async def _load(spec: LoadSpec) -> LoadResult:
    request = bytes.fromhex(spec.request_hex) if spec.request_hex else b""
    variants = iter([bytes.fromhex(item) for item in spec.requests_hex])
    latencies: list[float] = []
    errors: list[str] = []
    channels = [own_connection(spec.target) for _ in range(max(1, spec.channels))]
    try:
        calls = [channel.unary_unary(spec.method) for channel in channels]  # bytes in and out

        credentials = (("authorization", f"Bearer {spec.token}"),) if spec.token else ()
        # Per-call metadata rather than a client interceptor: the load generator's own cost
        # stays the same on every path it measures (the signer's token is a cache hit).
        signer = InternalSigner.embedded(spec.identity_data_dir) if spec.identity_data_dir else None

        def metadata() -> tuple[tuple[str, str], ...] | None:
            keys = (("idempotency-key", uuid.uuid4().hex),) if spec.idempotency_keys else ()
            identity = signer.metadata(BENCH_PRINCIPAL) if signer is not None else ()
            return (*credentials, *identity, *keys) or None

        async def caller(number: int, count: int, record: bool) -> None:
            call = calls[number % len(calls)]
            for _ in range(count):
                begun = time.perf_counter()
                body = next(variants) if spec.requests_hex else request
                try:
                    await call(body, metadata=metadata(), timeout=30)
                except grpc.aio.AioRpcError as exc:
                    errors.append(f"{exc.code().name}: {exc.details()}")
                    continue
                if record:
                    latencies.append(time.perf_counter() - begun)

        per_client = max(1, spec.warmup // spec.clients)
        await asyncio.gather(*(caller(n, per_client, False) for n in range(spec.clients)))
        errors.clear()
        per_client = max(1, spec.requests // spec.clients)
        watched = [cpu_seconds(pid) for pid in spec.watch_pids]
        started, cpu = time.perf_counter(), cpu_seconds()
        await asyncio.gather(*(caller(n, per_client, True) for n in range(spec.clients)))
        elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        watched = [
            cpu_seconds(pid) - before for pid, before in zip(spec.watch_pids, watched, strict=True)
        ]
    finally:
        for channel in channels:
            await channel.close()
    return LoadResult(
        latencies, elapsed, len(errors), errors[0] if errors else "", cpu, tuple(watched)
    )


def own_connection(target: str) -> grpc.aio.Channel:
    """A channel with a TCP connection of its own: grpc otherwise shares one subchannel (one
    connection) between the channels of a process that have the same target and options."""
    return grpc.aio.insecure_channel(target, options=(("grpc.use_local_subchannel_pool", 1),))


async def json_child(module: str, spec: dict[str, Any]) -> Any:
    """Runs `python -m <module> -` with `spec` as JSON on its stdin; returns its stdout's JSON.
    (Through stdin: a list of requests outgrows one argument's 128 KiB limit.)"""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        "-",
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate(json.dumps(spec).encode())
    if process.returncode != 0:
        raise RuntimeError(f"{module} failed ({process.returncode}): {stderr.decode()}")
    return json.loads(stdout)


async def load_from_child(spec: LoadSpec) -> LoadResult:
    """Runs the load in a fresh Python process against `spec.target` and returns its result."""
    return LoadResult(**await json_child("bench.grpc_load", asdict(spec)))


def main() -> None:
    raw = sys.stdin.read() if sys.argv[1] == "-" else sys.argv[1]
    fields = json.loads(raw)
    fields["requests_hex"] = tuple(fields.get("requests_hex", ()))
    spec = LoadSpec(**fields)
    result = asyncio.run(_load(spec))
    sys.stdout.write(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
