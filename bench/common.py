"""Shared benchmark helpers: percentiles, the machine, scratch NATS and PostgreSQL, tables."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from careops_cli.platform import wait_serving
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

console = Console(width=None if Console().is_terminal else 130)
REPO = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get(
    "CAREOPS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
CLIENTS = 32


def percentile(samples: Sequence[float], share: float) -> float:
    """Returns the nearest-rank percentile of samples (0 for none)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))
    return ordered[index]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / max / mean of latencies given in seconds, in milliseconds."""
    return {
        "p50_ms": round(percentile(seconds, 0.50) * 1000, 2),
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 2),
        "max_ms": round(max(seconds, default=0.0) * 1000, 2),
        "mean_ms": round(statistics.fmean(seconds) * 1000, 2) if seconds else 0.0,
    }


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def ratio(ours: float, theirs: float) -> float | None:
    return round(ours / theirs, 3) if theirs else None


def machine() -> dict[str, Any]:
    """The CPU model, core count and Python version the figures came from."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": platform.platform(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


class DefaultSyncNats(EmbeddedNats):
    """EmbeddedNats with nats-server's default JetStream sync interval (2 min) instead of
    `sync_interval: always`: acknowledged writes are in the page cache, not yet on disk."""

    def write_config(self) -> Path:
        config = super().write_config()
        lines = config.read_text().splitlines(keepends=True)
        kept = [line for line in lines if not line.strip().startswith("sync_interval")]
        if len(kept) == len(lines):
            raise RuntimeError("EmbeddedNats config no longer sets sync_interval; update bench")
        config.write_text("".join(kept))
        return config


@contextmanager
def embedded_nats(*, fsync_always: bool = True) -> Iterator[EmbeddedNats]:
    """A fresh nats-server with JetStream in a temporary directory."""
    with TemporaryDirectory(prefix="careops-bench-") as directory:
        kind = EmbeddedNats if fsync_always else DefaultSyncNats
        server = kind(data_dir=Path(directory), port=free_port())
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextmanager
def scratch_postgres() -> Iterator[str | None]:
    """A fresh database `careops_bench_<random>` on the local server, dropped afterwards.

    Yields its URL, or None when PostgreSQL is not reachable (the PostgreSQL rows are skipped).
    """
    name = f"careops_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 3},
    )
    try:
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:  # PostgreSQL is optional for the benchmark
            console.print(f"[yellow]PostgreSQL unavailable, skipping its rows: {exc}")
            yield None
            return
        try:
            yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def postgres_parts(url: str) -> dict[str, str]:
    """host, port, user, password and database name of a postgresql:// URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return {
        "host": parsed.host or "127.0.0.1",
        "port": str(parsed.port or 5432),
        "user": parsed.username or "postgres",
        "password": parsed.password or "",
        "dbname": parsed.database or "",
    }


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one, all threads, by default)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds this process (and optionally another, e.g. nats-server) used in a block."""

    def __init__(self, other_pid: int | None = None) -> None:
        self.other_pid = other_pid
        self.wall = self.cpu = self.other_cpu = 0.0

    def __enter__(self) -> CpuMeter:
        self._start = (time.perf_counter(), cpu_seconds(), self._other())
        return self

    def __exit__(self, *_exc: object) -> None:
        wall, cpu, other = self._start
        self.wall = time.perf_counter() - wall
        self.cpu = cpu_seconds() - cpu
        self.other_cpu = self._other() - other

    def _other(self) -> float:
        return cpu_seconds(self.other_pid) if self.other_pid else 0.0

    def share(self) -> float:
        """CPU seconds per wall second (1.0 = one core busy)."""
        return round(self.cpu / self.wall, 2) if self.wall else 0.0

    def other_share(self) -> float:
        return round(self.other_cpu / self.wall, 2) if self.wall else 0.0


class Stopwatch:
    """Accumulates the time spent inside `with stopwatch:` blocks."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.seconds += time.perf_counter() - self._started


@dataclass
class Goal:
    """A target a figure is held against; `met` is None when it could not be measured."""

    name: str
    target: str
    measured: str
    met: bool | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "measured": self.measured,
            "met": self.met,
        }


def mark(met: bool | None) -> str:
    return {True: "[green]met", False: "[red]NOT met", None: "[yellow]n/a"}[met]


@dataclass
class Report:
    """Rows of one benchmark, printed as a table, plus its goals; both go to results.json."""

    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        self.rows.append(row)

    def goal(self, name: str, target: str, measured: str, met: bool | None) -> None:
        self.goals.append(Goal(name, target, measured, met))

    def note(self, text_: str) -> None:
        self.notes.append(text_)

    def show(self) -> None:
        if self.rows:
            columns = list(dict.fromkeys(key for row in self.rows for key in row))
            table = Table(*columns, title=self.title, title_justify="left")
            for row in self.rows:
                table.add_row(*(_cell(row.get(column)) for column in columns))
            console.print(table)
        for goal in self.goals:
            console.print(
                f"  goal [bold]{goal.name}[/]: {goal.target}; measured {goal.measured} "
                f"-> {mark(goal.met)}"
            )
        for line in self.notes:
            console.print(f"  [dim]{line}")
        console.print()

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "rows": self.rows,
            "goals": [goal.to_json() for goal in self.goals],
            "notes": self.notes,
        }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@contextmanager
def service_process(
    module: str, env: dict[str, str], address: str, args: Sequence[str] = ()
) -> Iterator[int]:
    """Runs `python -m <module> <args>` until the block ends; yields its pid once the gRPC
    health at `address` is SERVING."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_serving(address, 60):
            raise RuntimeError(f"{module} {' '.join(args)} did not become healthy on {address}")
        yield process.pid
    finally:
        process.terminate()
        process.wait(30)
