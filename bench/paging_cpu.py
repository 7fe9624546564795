"""Where a paging burst's CPU goes, process by process. A diagnostic, not part of `bench.run`:
`python -m bench.paging_cpu [--bursts N] [--layout pager] [--profile DIR]`.

Runs incident-crisis as one of bench/incident.py's LAYOUTS (default `pager`: api, pager worker,
projection worker) against keep-alive receivers, with the receivers and the load in child
processes as in the benchmark, and declares 100 incidents at once `--bursts` times. For each
burst it prints the pages' p50 / p99, the DeclareIncident replies' p99 and the CPU seconds
(user + system, /proc/<pid>/stat) every process used during the burst: each service process,
nats-server, the receivers and the load. CPU seconds, unlike wall time, mean something on a
machine shared with other work. With `--profile DIR`, py-spy samples each service process
during the bursts (`record --format raw --gil`: the thread holding the GIL, a proxy for the
process's Python CPU; collapsed stacks in DIR/<process>.txt) and the script prints the frames
with the largest inclusive share of each profile.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from incident.tests.conftest import write_config

from bench.common import embedded_nats
from bench.incident import LAYOUTS, declare_to_page, layout_processes, pid_cpu_seconds, quiesce
from bench.paging_processes import child, load_main, receivers_main
from tests.receivers import HttpReceiver
from tests.support import ServiceProcess


def process_names(layout: str) -> list[str]:
    """Names the layout's processes by role and parts: api, worker, worker-reactions, …"""
    names = []
    for role, parts in LAYOUTS[layout]:
        first = parts.split(",")[0] if parts else ""
        names.append(f"{role}-{first}" if first else role)
    return names


@contextmanager
def profiled(pids: dict[str, int], directory: Path | None) -> Iterator[None]:
    """Samples each process with py-spy while the block runs (no-op without a directory)."""
    if directory is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    samplers = [
        subprocess.Popen(
            [spy, "record", "--format", "raw", "--gil", "--rate", "200"]
            + ["-p", str(pid), "-o", str(directory / f"{name}.txt")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    try:
        yield
    finally:
        for sampler in samplers:
            sampler.send_signal(signal.SIGINT)
        for sampler in samplers:
            sampler.wait(30)


def top_frames(path: Path, count: int = 25) -> list[tuple[str, float]]:
    """Returns the frames with the largest inclusive share of a collapsed-stack profile."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        total += int(samples)
        for frame in set(stack.split(";")):
            inclusive[frame] += int(samples)
    return [(frame, n / total) for frame, n in inclusive.most_common(count)] if total else []


def bursts(layout: str, count: int, profile: Path | None) -> list[dict[str, Any]]:
    """Runs the layout and `count` bursts of 100; returns each burst's figures."""
    rows = []
    with (
        embedded_nats() as server,
        child(receivers_main, True) as receivers,
        TemporaryDirectory() as directory,
    ):
        http_port, smtp_port = receivers.conn.recv()
        config = write_config(
            Path(directory) / "config", HttpReceiver(port=http_port), smtp_port, wait_seconds=600
        )
        processes = layout_processes(layout, server.url, Path(directory), config)
        try:
            for process in processes:
                process.start()  # one after the other: each migrates the shared database
            with child(load_main, processes[0].address, str(processes[0].data_dir)) as load:
                assert load.conn.recv() == "ready"
                declare_to_page(load, receivers, 1, 20)  # warm: imports, caches, connections
                pids = _pids(layout, processes)
                assert server.process is not None
                others = {
                    "nats": server.process.pid,
                    "receivers": receivers.process.pid,
                    "load": load.process.pid,
                }
                with profiled(pids, profile):
                    for _ in range(count):
                        every = {**pids, **others}
                        before = {name: pid_cpu_seconds(pid) for name, pid in every.items()}
                        counted = counts(processes)
                        row: dict[str, Any] = declare_to_page(load, receivers, 100, 1)
                        # The burst's work goes on after its first pages (further channels,
                        # retries, records): its CPU is counted until the processes are idle.
                        quiesce(list(pids.values()))
                        for name, pid in every.items():
                            row[f"{name}_cpu_s"] = pid_cpu_seconds(pid) - before[name]
                        after = counts(processes)
                        row.update({name: after[name] - counted[name] for name in COUNTED})
                        rows.append(row)
        finally:
            for process in processes:
                process.kill()
    return rows


# Counters summed over the service processes (their /metrics), reported per burst: how many
# appends the burst made and how many messages the pager handled or acked unparsed.
COUNTED = {
    "appends": ("careops_eventstore_appends_total{", 'outcome="appended"'),
    "pager_handled": ("careops_reaction_messages_total{", 'outcome="handled"'),
    "pager_passed": ("careops_reaction_messages_total{", 'outcome="passed"'),
}


def counts(processes: list[ServiceProcess]) -> dict[str, float]:
    """Returns the COUNTED totals so far (the caller takes differences)."""
    totals = dict.fromkeys(COUNTED, 0.0)
    for process in processes:
        url = f"http://127.0.0.1:{process.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for line in text.splitlines():
            for name, (prefix, label) in COUNTED.items():
                if line.startswith(prefix) and label in line:
                    totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


def _pids(layout: str, processes: list[ServiceProcess]) -> dict[str, int]:
    pids = {}
    for name, process in zip(process_names(layout), processes, strict=True):
        assert process.process is not None
        pids[name] = process.process.pid
    return pids


def show(rows: list[dict[str, Any]]) -> None:
    """Prints each burst's figures and their medians."""
    columns = ["p50_ms", "p99_ms", "declare_p99_ms"]
    columns += [k for k in rows[0] if k.endswith("_s")] + list(COUNTED)
    print(" ".join(f"{c.removesuffix('_cpu_s'):>12}" for c in columns))
    for row in rows:
        print(" ".join(f"{row[c]:>12.3f}" for c in columns))
    medians = {c: statistics.median(row[c] for row in rows) for c in columns}
    print(" ".join(f"{medians[c]:>12.3f}" for c in columns), " (medians)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="pager")
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    rows = bursts(args.layout, args.bursts, args.profile)
    show(rows)
    if args.profile is not None:
        for path in sorted(args.profile.glob("*.txt")):
            print(f"\n{path.name}: frames by inclusive share")
            for frame, share in top_frames(path):
                print(f"{share:7.1%}  {frame}")


if __name__ == "__main__":
    main()
