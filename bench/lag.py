"""Projection lag under a steady command rate, against the in-process TicketingService.

Commands are issued open-loop at a fixed rate (a late scheduler catches up, it does not slow
down): each ticket is opened, then assigned, replied to and reprioritised 0.25 s apart, so a
quarter of the commands are opens. For every command the lag is the time from its append
being acknowledged (execute returned) until the ticket-list projection's position reaches the
command's sequence.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from ticketing.main import TicketingService, TicketingSettings

from bench.common import CpuMeter, Report, embedded_nats, latency_summary, rate
from bench.workload import STEPS, new_ticket_id, step_command

GOAL_P99_MS = 200.0
STEP_SPACING_S = 0.25
WAIT_TIMEOUT_S = 30.0


def schedule(commands_s: int, seconds: float) -> list[tuple[float, int, int]]:
    """(time, ticket, step) of every command: a uniform `commands_s` rate, in waves of W
    tickets (W = commands in STEP_SPACING_S): W opens, then the W first updates, and so on, so
    consecutive commands of one ticket are STEP_SPACING_S apart."""
    width = max(1, round(commands_s * STEP_SPACING_S))
    wave = STEPS * width
    waves = max(1, round(commands_s * seconds / wave))
    slots = []
    for slot in range(waves * wave):
        number, offset = divmod(slot, wave)
        step, column = divmod(offset, width)
        slots.append((slot / commands_s, number * width + column, step))
    return slots


async def steady_load(service: TicketingService, commands_s: int, seconds: float) -> dict[str, Any]:
    """Issues the schedule open-loop against service.app; lag and latency per command."""
    assert service.app is not None
    app = service.app
    runner = service.runners["tickets"]
    slots = schedule(commands_s, seconds)
    tickets = max(index for _at, index, _step in slots) + 1
    ids = [new_ticket_id() for _ in range(tickets)]
    done = [asyncio.Event() for _ in range(tickets * STEPS)]
    command_latency: list[float] = []
    lags: list[float] = []
    visible: list[float] = []
    late: list[float] = []
    errors: list[str] = []
    timeouts = 0

    async def one(index: int, step: int) -> None:
        nonlocal timeouts
        try:
            if step:
                await done[index * STEPS + step - 1].wait()
            begun = time.perf_counter()
            try:
                result = await app.execute(
                    ids[index], step_command(ids[index], step), command_id=uuid.uuid4().hex
                )
            except Exception as exc:  # counted and reported, the load goes on
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            answered = time.perf_counter()
            if not await runner.wait_for(result.sequence, WAIT_TIMEOUT_S):
                timeouts += 1
            applied = time.perf_counter()
            command_latency.append(answered - begun)
            lags.append(applied - answered)
            visible.append(applied - begun)
        finally:
            done[index * STEPS + step].set()

    tasks = []
    started = time.perf_counter()
    for at, index, step in slots:
        delay = started + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        late.append(max(0.0, -delay))
        tasks.append(asyncio.create_task(one(index, step)))
    issued = time.perf_counter() - started
    await asyncio.gather(*tasks)
    total = len(slots)
    return {
        "target_commands_s": commands_s,
        "seconds": round(total / commands_s, 1),
        "commands": total,
        "issued_commands_s": rate(total, issued),
        "scheduler_late": latency_summary(late),
        "command": latency_summary(command_latency),
        "lag": latency_summary(lags),
        "issued_to_visible": latency_summary(visible),
        "lag_timeouts": timeouts,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
    }


async def measure(
    url: str, nats_pid: int | None, data_dir: Path, commands_s: int, seconds: float
) -> dict[str, Any]:
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
        await steady_load(service, 100, 1.0)  # warm-up
        with CpuMeter(nats_pid) as meter:
            figures = await steady_load(service, commands_s, seconds)
        figures["bench_process_cpu_share"] = meter.share()
        figures["nats_server_cpu_share"] = meter.other_share()
    finally:
        await service.stop()
    return figures


async def run(quick: bool) -> dict[str, Any]:
    points = [(500, 10.0)] if quick else [(500, 20.0), (250, 10.0)]
    results: dict[str, Any] = {}
    for commands_s, seconds in points:
        with embedded_nats() as server, TemporaryDirectory(prefix="careops-bench-") as directory:
            pid = server.process.pid if server.process else None
            results[f"at_{commands_s}"] = await measure(
                server.url, pid, Path(directory), commands_s, seconds
            )
    report = Report("4. Projection lag (append acked -> ticket list applied), SQLite read model")
    for row in results.values():
        report.add(
            load=f"{row['target_commands_s']}/s x {row['seconds']:.0f} s",
            issued_s=row["issued_commands_s"],
            cmd_p50=row["command"]["p50_ms"],
            cmd_p99=row["command"]["p99_ms"],
            lag_p50=row["lag"]["p50_ms"],
            lag_p99=row["lag"]["p99_ms"],
            lag_max=row["lag"]["max_ms"],
            visible_p99=row["issued_to_visible"]["p99_ms"],
            cpu_bench=row["bench_process_cpu_share"],
            cpu_nats=row.get("nats_server_cpu_share"),
        )
        report.note(
            f"{row['target_commands_s']}/s: scheduler late p99 {row['scheduler_late']['p99_ms']}"
            f" ms, {row['lag_timeouts']} lag timeouts, {row['errors']} command errors"
            + (f" (first: {row['first_error']})" if row["first_error"] else "")
        )
    report.note(
        "times in ms. cmd: execute() latency; lag: execute() returned -> ticket list position"
        " >= sequence; visible: issued -> applied"
    )
    report.note("cpu_*: CPU seconds per wall second (1.0 = one core busy) during the load")
    main = results["at_500"]
    p99 = main["lag"]["p99_ms"]
    report.goal(
        "projection lag at 500 cmd/s",
        f"p99 < {GOAL_P99_MS:.0f} ms",
        f"p99 {p99:,.0f} ms",
        p99 < GOAL_P99_MS and main["lag_timeouts"] == 0,
    )
    report.show()
    return {"report": report.to_json(), **results}
