"""Incident: declare -> page delivered to a local webhook receiver, against a raw webhook call."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from incident.tests.conftest import running_incident_service, write_config

from bench.common import Report, embedded_nats, latency_summary
from tests.receivers import HttpReceiver, http_receiver, smtp_receiver
from tests.support import channel_to

SEVERE = t.RiskFactors(users_affected=100_000, core_system=1.0, elapsed_minutes=60, exposure=0.5)


def raw_webhook(receiver: HttpReceiver, count: int) -> dict[str, float]:
    """The bare round trip: one JSON POST to the same receiver, awaited, `count` times."""
    latencies = []
    for _ in range(count):
        body = json.dumps({"incident_id": "raw", "title": "x" * 100}).encode()
        request = urllib.request.Request(receiver.url("/raw"), data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        begun = time.perf_counter()
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
        latencies.append(time.perf_counter() - begun)
    return latency_summary(latencies)


async def declare_to_page(
    stub: incident_pb2_grpc.IncidentServiceStub,
    receiver: HttpReceiver,
    concurrent: int,
    rounds: int,
) -> dict[str, float]:
    """Declares `concurrent` incidents at once, `rounds` times; measures declare -> page POST."""
    latencies: list[float] = []
    for _ in range(rounds):
        started: dict[str, float] = {}

        async def one(started: dict[str, float] = started) -> None:
            begun = time.monotonic()
            response = await stub.DeclareIncident(
                pb.DeclareIncidentRequest(
                    type="server_crash", title=f"bench {uuid.uuid4().hex[:6]}", factors=SEVERE
                ),
                metadata=(("idempotency-key", uuid.uuid4().hex),),
            )
            started[response.incident.incident_id] = begun

        await asyncio.gather(*(one() for _ in range(concurrent)))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            arrived = {
                post.json()["incident_id"]: post.at
                for post in receiver.posts("/ts-alice")
                if post.json()["incident_id"] in started
            }
            if len(arrived) == len(started):
                break
            await asyncio.sleep(0.005)
        latencies += [arrived[i] - started[i] for i in started if i in arrived]
    return {"pages": len(latencies), **latency_summary(latencies)}


async def run(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with (
        embedded_nats() as server,
        http_receiver() as http,
        smtp_receiver() as mail,
        TemporaryDirectory() as directory,
    ):
        config = write_config(Path(directory) / "config", http, mail.port, wait_seconds=600)
        results["raw_webhook"] = await asyncio.to_thread(raw_webhook, http, 200)
        async with running_incident_service(Path(directory) / "data", server.url, **config) as svc:
            assert svc.server is not None
            async with channel_to(svc) as channel:
                stub = incident_pb2_grpc.IncidentServiceStub(channel)
                results["alone"] = await declare_to_page(stub, http, 1, 20 if quick else 100)
                results["concurrent_100"] = await declare_to_page(
                    stub, http, 100, 1 if quick else 3
                )
    report = Report("6. Incident paging: declare -> page POSTed to a local webhook receiver")
    raw = results["raw_webhook"]
    report.add(
        measure="raw webhook round trip (baseline)", p50_ms=raw["p50_ms"], p99_ms=raw["p99_ms"]
    )
    for name in ("alone", "concurrent_100"):
        row = results[name]
        report.add(
            measure=f"declare -> page, {name.replace('_', ' ')}",
            pages=row["pages"],
            p50_ms=row["p50_ms"],
            p99_ms=row["p99_ms"],
        )
    for name in ("alone", "concurrent_100"):
        p99 = results[name]["p99_ms"]
        report.goal(
            f"declare -> page, {name.replace('_', ' ')}",
            "p99 < 500 ms",
            f"p99 {p99:,.0f} ms",
            p99 < 500,
        )
    report.show()
    return {"report": report.to_json(), **results}
