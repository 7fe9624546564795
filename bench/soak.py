"""The soak (issue 16, item 5): ticketing as two api replicas on one port and a worker (or
another layout of bench.scale_out) under a steady open-loop command mix (bench.steady: open,
assign, reply, reprioritise) for a configurable time, default 20 minutes at 200 commands/s.

`make soak` (not part of `make test`; SOAK_SECONDS=… to shorten it) or
`python -m bench.soak --seconds 1200 --rate 200`. Every `--interval` seconds (5) it samples the
RSS and CPU of each process (the apis, the worker, nats-server); each window also gets the
p99 command latency and projection lag of the commands answered in it (lag: answer -> the ticket
list's SQL checkpoint at or past the command's sequence). It writes the samples to a CSV and a
plot to a PNG (default docs/soak.csv, docs/soak.png; matplotlib comes from
requirements-bench.lock, installed by `make soak` only), fits a least-squares slope to every
series over the second half of the run and says which, if any, grew without bound.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import csv
import logging
import os
import statistics
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench.common import REPO, console, cpu_seconds, embedded_nats, machine, percentile
from bench.scale_out import LAYOUTS, Deployment, Member, deploy, steady_mix
from bench.steady import CheckpointPoller, SteadyResult
from tests.support import metric_sum

REQUESTS = "careops_grpc_requests_total"
# The service did not keep up when, over the second half, it answered less than this share of
# the rate or the median window's p99 command latency passed OVERLOAD_P99_MS: an open loop's
# queue then grows by design, and the growth verdict says nothing about leaks.
KEPT_UP = 0.9
OVERLOAD_P99_MS = 1000.0


@dataclass(frozen=True)
class Tolerance:
    """A series grows without bound when its second-half slope, over the length of that half,
    exceeds both `relative` of its mean and `absolute` (noise floors)."""

    relative: float
    absolute: float


TOLERANCES = {
    "rss_mb": Tolerance(0.10, 5.0),
    "cpu_cores": Tolerance(0.20, 0.05),
    "ms": Tolerance(0.50, 20.0),
}


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs (0 for fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if not spread:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def grows(xs: Sequence[float], ys: Sequence[float], tolerance: Tolerance) -> dict[str, Any]:
    """The second half's slope (per minute) and whether it is growth beyond the tolerance."""
    half = len(xs) // 2
    tail_x, tail_y = xs[half:], ys[half:]
    per_second = slope(tail_x, tail_y)
    span = (tail_x[-1] - tail_x[0]) if len(tail_x) > 1 else 0.0
    rise = per_second * span
    mean = statistics.fmean(tail_y) if tail_y else 0.0
    return {
        "slope_per_min": round(per_second * 60, 4),
        "rise_over_half": round(rise, 3),
        "mean": round(mean, 3),
        "grows": rise > max(tolerance.relative * abs(mean), tolerance.absolute),
    }


class Sampler:
    """RSS and CPU of named processes every `interval` seconds, on the monotonic clock, and
    the calls/s each api answered (its own request counter: how the replicas share the load)."""

    def __init__(self, pids: dict[str, int], apis: dict[str, Member], interval: float) -> None:
        self.pids = pids
        self.apis = apis
        self.interval = interval
        self.rows: list[dict[str, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def _state(self) -> tuple[float, dict[str, float], dict[str, float]]:
        calls = {
            name: await asyncio.to_thread(metric_sum, api.metrics_port, REQUESTS)
            for name, api in self.apis.items()
        }
        cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return time.monotonic(), cpu, calls

    async def _run(self) -> None:
        previous = await self._state()
        while True:
            await asyncio.sleep(self.interval)
            now, cpu, calls = state = await self._state()
            elapsed = now - previous[0]
            row = {"t_end": now, "t_start": previous[0]}
            for name, pid in self.pids.items():
                row[f"{name}_rss_mb"] = round(rss_mb(pid), 2)
                row[f"{name}_cpu_cores"] = round((cpu[name] - previous[1][name]) / elapsed, 3)
            for name in self.apis:
                row[f"{name}_calls_s"] = round((calls[name] - previous[2][name]) / elapsed, 1)
            self.rows.append(row)
            previous = state

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


def windows(
    samples: list[dict[str, float]], result: SteadyResult, poller: CheckpointPoller, origin: float
) -> list[dict[str, float]]:
    """The samples with each window's commands/s and p99 command latency and lag, time in
    seconds since `origin` (the load's start)."""
    lags, _missed = poller.lags(result.calls)
    # poller.lags leaves out only the calls past the last checkpoint: the rest align with lags.
    reached = [call for call in result.calls if call[3] <= poller.positions[-1]]
    answers = sorted(
        (answered, answered - issued, lag)
        for (_step, issued, answered, _seq), lag in zip(reached, lags, strict=True)
    )
    times = [answer[0] for answer in answers]
    rows = []
    for sample in samples:
        start, end = sample["t_start"], sample["t_end"]
        inside = answers[bisect.bisect_left(times, start) : bisect.bisect_left(times, end)]
        rows.append(
            {
                "t_s": round(end - origin, 1),
                "commands_s": round(len(inside) / (end - start), 1),
                "command_p99_ms": round(percentile([a[1] for a in inside], 0.99) * 1000, 2),
                "lag_p99_ms": round(percentile([a[2] for a in inside], 0.99) * 1000, 2),
                **{k: v for k, v in sample.items() if k not in ("t_start", "t_end")},
            }
        )
    return rows


def verdicts(rows: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Each series' second-half slope and whether it grew without bound."""
    xs = [row["t_s"] for row in rows]
    found = {}
    for key in rows[0]:
        kind = next((kind for kind in TOLERANCES if key.endswith(kind)), None)
        if kind is not None:
            found[key] = grows(xs, [row[key] for row in rows], TOLERANCES[kind])
    return found


def write_csv(rows: list[dict[str, float]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: list[dict[str, float]], path: Path, title: str) -> None:
    """Four panels over time: RSS and CPU per process, p99 latency and lag, commands/s."""
    import matplotlib  # requirements-bench.lock: only `make soak` installs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [row["t_s"] / 60 for row in rows]
    figure, (rss, cpu, times, done) = plt.subplots(4, 1, figsize=(10, 12), sharex=True)
    for key in rows[0]:
        if key.endswith("_rss_mb"):
            rss.plot(minutes, [row[key] for row in rows], label=key.removesuffix("_rss_mb"))
        if key.endswith("_cpu_cores"):
            cpu.plot(minutes, [row[key] for row in rows], label=key.removesuffix("_cpu_cores"))
    times.plot(minutes, [row["command_p99_ms"] for row in rows], label="command p99")
    times.plot(minutes, [row["lag_p99_ms"] for row in rows], label="projection lag p99")
    done.plot(minutes, [row["commands_s"] for row in rows], label="commands answered / s")
    for key in rows[0]:
        if key.endswith("_calls_s"):
            done.plot(minutes, [row[key] for row in rows], label=key.removesuffix("_s"), alpha=0.7)
    rss.set_ylabel("RSS (MiB)")
    cpu.set_ylabel("CPU (cores)")
    times.set_ylabel("ms (per 5 s window)")
    done.set_ylabel("commands / s")
    done.set_xlabel("minutes")
    for axes in (rss, cpu, times, done):
        axes.grid(alpha=0.3)
        axes.legend(loc="upper left", fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _names(deployment: Deployment) -> dict[str, Member]:
    """The layout's processes by the names the CSV and the plot use."""
    apis = deployment.apis
    names = {(f"api{n + 1}" if len(apis) > 1 else api.role): api for n, api in enumerate(apis)}
    if deployment.worker is not None:
        names["worker"] = deployment.worker
    return names


async def soak(seconds: float, rate: int, interval: float, replicas: int) -> dict[str, Any]:
    """Runs the layout under the steady mix; returns the windows and the load's summary."""
    with ExitStack() as stack:
        server = stack.enter_context(embedded_nats())
        directory = Path(stack.enter_context(TemporaryDirectory(prefix="careops-soak-")))
        deployment = stack.enter_context(deploy(server.url, directory, replicas))
        assert server.process is not None
        members = _names(deployment)
        pids = {name: member.pid for name, member in members.items()}
        apis = {name: member for name, member in members.items() if member.role != "worker"}
        sampler = Sampler({**pids, "nats": server.process.pid}, apis, interval)
        sampler.start()
        result, poller = await steady_mix(deployment, rate, seconds)
        sampler.stop()
    rows = windows(sampler.rows, result, poller, result.started)
    lags, missed = poller.lags(result.calls)
    return {
        "rows": rows,
        "calls": len(result.calls),
        "errors": result.errors,
        "first_error": result.first_error,
        "lag_never_reached": missed,
        "lag_p99_ms": round(percentile(lags, 0.99) * 1000, 2),
        "command": result.command_latency(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1200.0, help="duration (20 min)")
    parser.add_argument("--rate", type=int, default=200, help="commands per second")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds per sample")
    parser.add_argument("--replicas", type=int, choices=(0, 1, 2), default=2, help="0: --role all")
    parser.add_argument("--csv", type=Path, default=REPO / "docs" / "soak.csv")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "soak.png")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    info, started = machine(), datetime.now(UTC)
    outcome = asyncio.run(soak(args.seconds, args.rate, args.interval, args.replicas))
    rows = outcome["rows"]
    if len(rows) < 4:
        raise SystemExit("too few samples for a verdict: run longer than 4 intervals")
    write_csv(rows, args.csv)
    title = (
        f"Soak: {args.rate} commands/s for {args.seconds / 60:.1f} min, "
        f"{LAYOUTS[args.replicas].name}\n({info['cores']} cores, load average "
        f"{info['load_average_1m_at_start']} at start, {started:%Y-%m-%d %H:%M} UTC)"
    )
    plot(rows, args.png, title)
    # The verdict reads the load's own windows, not the drain after the last command.
    loaded = [row for row in rows if row["t_s"] <= args.seconds] or rows
    found = verdicts(loaded)
    for key, verdict in found.items():
        mark = "[red]GROWS" if verdict["grows"] else "[green]flat"
        console.print(
            f"  {key:24} mean {verdict['mean']:>10} slope/min {verdict['slope_per_min']:>9}"
            f" -> {mark}"
        )
    console.print(
        f"{outcome['calls']} commands, {outcome['errors']} errors"
        + (f" (first: {outcome['first_error']})" if outcome["first_error"] else "")
        + f", lag p99 {outcome['lag_p99_ms']} ms, command p99 {outcome['command']['p99_ms']} ms,"
        f" {outcome['lag_never_reached']} never applied; wrote {args.csv} and {args.png}"
    )
    growing = [key for key, verdict in found.items() if verdict["grows"]]
    second_half = loaded[len(loaded) // 2 :]
    answered = statistics.fmean(row["commands_s"] for row in second_half)
    p99 = statistics.median(row["command_p99_ms"] for row in second_half)
    overloaded = answered < KEPT_UP * args.rate or p99 > OVERLOAD_P99_MS
    if overloaded:
        console.print(
            f"[red]the service did not keep up: over the second half {answered:.0f} of "
            f"{args.rate} commands/s answered, command p99 {p99:,.0f} ms (median window); an "
            "open loop's queue then grows by design, so the growth verdict does not apply "
            "(run it on a quiet machine, or at a lower --rate)"
        )
    console.print(
        f"[red]grew without bound: {', '.join(growing)}"
        if growing
        else "[green]nothing grew without bound over the second half"
    )
    raise SystemExit(1 if growing or outcome["errors"] or overloaded else 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
