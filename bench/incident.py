"""Incident: declare -> page delivered to a local webhook receiver, against a raw webhook call.

The receivers (HTTP, SMTP) and the load generator run in child processes
(bench/paging_processes.py): the measured process hosts only the incident service and the raw
baseline's client. The `…_all` rows run it as one process of its own (`--role all`, as `make
run` does); the `…_split` rows as two processes instead, `--role api`
(the load's DeclareIncident calls) and `--role worker` (projections, the pager, timers), over one
NATS and one SQLite read-model database; the `…_pager` rows as three, the api, a pager worker
(`CAREOPS_WORKER_PARTS=reactions,background`) and a projection worker (`projections`)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from incident.tests.conftest import running_incident_service, write_config

from bench.common import Report, embedded_nats, latency_summary
from bench.paging_processes import Child, child, load_main, receivers_main
from tests.receivers import HttpReceiver
from tests.support import ServiceProcess


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


def declare_to_page(
    load: Child,
    receivers: Child,
    concurrent: int,
    rounds: int,
    settled: Sequence[int] = (),
) -> dict[str, float]:
    """Declares `concurrent` incidents at once (from the load process), `rounds` times;
    measures declare -> first page POST at the receiver (in the receivers' process), and how
    long the DeclareIncident calls themselves took. Each round starts once the processes
    `settled` are idle: a burst declared while the previous one's tail (second channels, the
    down Slack's retries, the records, the projections) still runs measures that tail too."""
    latencies: list[float] = []
    replies: list[float] = []
    for _ in range(rounds):
        quiesce(list(settled))
        started: dict[str, tuple[float, float]] = load.ask("declare", concurrent)
        arrived: dict[str, float] = receivers.ask("arrivals", "/ts-alice", list(started), 30)
        latencies += [arrived[i] - started[i][0] for i in started if i in arrived]
        replies += [replied - begun for begun, replied in started.values()]
    declare = latency_summary(replies)
    return {
        "pages": len(latencies),
        **latency_summary(latencies),
        "declare_p50_ms": declare["p50_ms"],
        "declare_p99_ms": declare["p99_ms"],
    }


async def paging(quick: bool, *, keep_alive: bool) -> dict[str, Any]:
    """Raw baseline, one at a time and 100 at once, against receivers that close every
    connection (HTTP/1.0) or keep them open (HTTP/1.1, as real endpoints do)."""
    results: dict[str, Any] = {}
    with (
        embedded_nats() as server,
        child(receivers_main, keep_alive) as receivers,
        TemporaryDirectory() as directory,
    ):
        http_port, smtp_port = await asyncio.to_thread(receivers.conn.recv)
        http = HttpReceiver(port=http_port)
        config = write_config(Path(directory) / "config", http, smtp_port, wait_seconds=600)
        results["raw_webhook"] = await asyncio.to_thread(raw_webhook, http, 200)
        async with running_incident_service(Path(directory) / "data", server.url, **config) as svc:
            assert svc.server is not None
            address = f"127.0.0.1:{svc.server.port}"
            with child(load_main, address, str(svc.settings.data_dir)) as load:
                ready = await asyncio.to_thread(load.conn.recv)
                assert ready == "ready", ready
                results["alone"] = await asyncio.to_thread(
                    declare_to_page, load, receivers, 1, 20 if quick else 100
                )
                # The service runs in this process, beside nats-server.
                service_pids = [os.getpid(), *([server.process.pid] if server.process else [])]
                results["concurrent_100"] = await asyncio.to_thread(
                    declare_to_page, load, receivers, 100, 1 if quick else 3, service_pids
                )
        for layout in LAYOUTS:
            split = await asyncio.to_thread(
                split_paging, quick, Path(directory), config, receivers, layout
            )
            results.update(split)
    return results


def quiesce(pids: list[int], idle_cpu_s: float = 0.02, timeout: float = 60.0) -> None:
    """Waits until the processes used less than `idle_cpu_s` of CPU in half a second."""
    deadline = time.monotonic() + timeout
    last = sum(pid_cpu_seconds(pid) for pid in pids)
    while pids and time.monotonic() < deadline:
        time.sleep(0.5)  # a benchmark's poll, not a test's wait
        now = sum(pid_cpu_seconds(pid) for pid in pids)
        if now - last < idle_cpu_s:
            return
        last = now


def cpu_seconds(service: ServiceProcess) -> float:
    """User + system CPU the process has used (/proc/<pid>/stat)."""
    assert service.process is not None
    return pid_cpu_seconds(service.process.pid)


def pid_cpu_seconds(pid: int) -> float:
    """User + system CPU process `pid` has used (/proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# How incident-crisis runs in the process rows: (role, CAREOPS_WORKER_PARTS) per process.
LAYOUTS: dict[str, tuple[tuple[str, str], ...]] = {
    # the whole service in one process of its own, as `make run` starts it (its event loop on
    # uvloop, nothing of the benchmark's in it): what the in-process rows measure, deployed
    "all": (("all", ""),),
    # api replicas and one worker doing all the work
    "split": (("api", ""), ("worker", "")),
    # the pager (reactions and timers) in a worker of its own, the projections in another
    "pager": (("api", ""), ("worker", "reactions,background"), ("worker", "projections")),
}


def layout_processes(
    layout: str, nats_url: str, directory: Path, config: dict[str, str]
) -> list[ServiceProcess]:
    """Returns incident-crisis as the processes of `layout` (not started; the api first),
    sharing one SQLite read-model database in `directory`."""
    env = {f"CAREOPS_{name.upper()}": value for name, value in config.items()}
    env["CAREOPS_DATABASE_URL"] = f"sqlite:///{directory / f'{layout}.db'}"
    env["CAREOPS_SHUTDOWN_GRACE_SECONDS"] = "0"
    processes = []
    for index, (role, parts) in enumerate(LAYOUTS[layout]):
        data_dir = directory / f"{layout}-{index}-{role}"
        data_dir.mkdir()
        extra = {"CAREOPS_WORKER_PARTS": parts} if parts else {}
        processes.append(
            ServiceProcess(
                data_dir,
                nats_url,
                extra_env={**env, **extra},
                service="incident",
                args=["--role", role],
            )
        )
    return processes


def split_paging(
    quick: bool,
    directory: Path,
    config: dict[str, str],
    receivers: Child,
    layout: str,
) -> dict[str, Any]:
    """The same loads against incident-crisis run as several processes (LAYOUTS) over one
    NATS and one SQLite read-model database, both fresh: on the earlier rows' log the new
    projection worker would first replay their history while the burst is measured."""
    with embedded_nats() as server:
        return _split_paging(quick, server.url, directory, config, receivers, layout)


def _split_paging(
    quick: bool,
    nats_url: str,
    directory: Path,
    config: dict[str, str],
    receivers: Child,
    layout: str,
) -> dict[str, Any]:
    processes = layout_processes(layout, nats_url, directory, config)
    api = processes[0]
    results: dict[str, Any] = {}
    try:
        for process in processes:
            process.start()  # one after the other: each migrates the shared database
        with child(load_main, api.address, str(api.data_dir)) as load:
            ready = load.conn.recv()
            assert ready == "ready", ready
            results[f"alone_{layout}"] = declare_to_page(load, receivers, 1, 20 if quick else 100)
            before = [cpu_seconds(p) for p in processes]
            pids = [p.process.pid for p in processes if p.process is not None]
            burst = declare_to_page(load, receivers, 100, 1 if quick else 3, pids)
            after = [cpu_seconds(p) for p in processes]
            # Where the burst's CPU went, in seconds: the api process (declarations) and the
            # workers (projections, the pager's deliveries and their records).
            burst["api_cpu_s"] = after[0] - before[0]
            burst["worker_cpu_s"] = sum(after[1:]) - sum(before[1:])
            results[f"concurrent_100_{layout}"] = burst
        for process in processes:
            process.terminate()
    finally:
        for process in processes:
            process.kill()
    return results


async def run(quick: bool) -> dict[str, Any]:
    results = await paging(quick, keep_alive=False)
    kept = await paging(quick, keep_alive=True)
    results["raw_webhook_keepalive"] = kept["raw_webhook"]
    results["alone_keepalive"] = kept["alone"]
    results["concurrent_100_keepalive"] = kept["concurrent_100"]
    for layout in LAYOUTS:
        results[f"alone_keepalive_{layout}"] = kept[f"alone_{layout}"]
        results[f"concurrent_100_keepalive_{layout}"] = kept[f"concurrent_100_{layout}"]
    report = Report(
        "6. Incident paging: declare -> page POSTed to a local webhook receiver "
        "(receivers and load in child processes; keepalive: HTTP/1.1 receivers)"
    )
    raw = results["raw_webhook"]
    report.add(
        measure="raw webhook round trip (baseline)", p50_ms=raw["p50_ms"], p99_ms=raw["p99_ms"]
    )
    names = (
        "alone",
        "concurrent_100",
        "alone_keepalive",
        "concurrent_100_keepalive",
        "alone_all",
        "concurrent_100_all",
        "alone_keepalive_all",
        "concurrent_100_keepalive_all",
        "alone_split",
        "concurrent_100_split",
        "alone_keepalive_split",
        "concurrent_100_keepalive_split",
        "alone_pager",
        "concurrent_100_pager",
        "alone_keepalive_pager",
        "concurrent_100_keepalive_pager",
    )
    for name in names:
        row = results[name]
        report.add(
            measure=f"declare -> page, {name.replace('_', ' ')}",
            pages=row["pages"],
            p50_ms=row["p50_ms"],
            p99_ms=row["p99_ms"],
            declare_reply_p99_ms=row["declare_p99_ms"],
        )
    for name in names:
        p99 = results[name]["p99_ms"]
        report.goal(
            f"declare -> page, {name.replace('_', ' ')}",
            "p99 < 500 ms",
            f"p99 {p99:,.0f} ms",
            p99 < 500,
        )
    report.show()
    return {"report": report.to_json(), **results}
