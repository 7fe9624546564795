"""Benchmarks of an earlier revision and of the working tree, back to back on this machine.

`python -m bench.compare BASE [--only NAME ...] [--rounds N] [--full] [--keep]` checks BASE out in
a detached git worktree under var/bench-compare/, generates its protobuf code, runs
`bench.run --quick --only ...` for BASE and for the working tree alternately ROUNDS times (same
venv python, each side importing its own code), and prints per key figure the base median, the
head median and head/base with better/worse. The whole comparison goes to
var/bench/compare-<base>-<head>.json.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ONLY = ("open_ticket", "lag")
# A ratio within this share of 1.0 is shown as "same": the quick runs swing by more than that.
DEFAULT_TOLERANCE = 0.05
# Where each side's own code lives, in import order (the Makefile's packages.find `where`).
SOURCE_DIRS = ("libs", "services", "cli", "gen", "")

console = Console(width=None if Console().is_terminal else 130)


@dataclass(frozen=True)
class Figure:
    """One key figure: a dotted path into a benchmark's results, and which way is better."""

    bench: str
    path: str
    higher_is_better: bool
    # A control does not depend on CareOps code (a raw baseline): its ratio shows the noise.
    control: bool = False

    @property
    def name(self) -> str:
        return f"{self.bench}.{self.path}"


def _figures(bench: str, higher: Iterable[str] = (), lower: Iterable[str] = ()) -> list[Figure]:
    return [Figure(bench, path, True) for path in higher] + [
        Figure(bench, path, False) for path in lower
    ]


def _controls(bench: str, higher: Iterable[str] = (), lower: Iterable[str] = ()) -> list[Figure]:
    return [Figure(bench, path, True, True) for path in higher] + [
        Figure(bench, path, False, True) for path in lower
    ]


FIGURES: tuple[Figure, ...] = (
    *_controls(
        "baselines",
        higher=(
            "jetstream_sync_always.awaited.ops_s",
            "jetstream_sync_always.concurrent_32.ops_s",
            "jetstream_sync_always.pipelined.ops_s",
            "jetstream_default_sync.concurrent_32.ops_s",
            "grpc_echo.ops_s",
            "grpc_publish_floor.ops_s",
        ),
        lower=(
            "grpc_echo.p99_ms",
            "grpc_echo.server_cpu_ms_per_call",
            "grpc_publish_floor.server_cpu_ms_per_call",
        ),
    ),
    *_figures(
        "open_ticket",
        higher=(
            "layers.grpc.ops_s",
            "layers.grpc_api_role.ops_s",
            "layers.app_execute_in_service.ops_s",
            "layers.app_execute.ops_s",
            "layers.store_append.ops_s",
            "ratio_to_smaller_raw_baseline",
        ),
        lower=(
            "layers.grpc.cpu_ms_per_op",
            "layers.grpc_api_role.cpu_ms_per_op",
            "layers.grpc_api_role.worker_cpu_ms_per_op",
            "api_above_floor.ours_ms",
            "layers.grpc.p99_ms",
            "layers.app_execute.cpu_ms_per_op",
            "layers.app_execute_in_service.cpu_ms_per_op",
            "layers.store_append.cpu_ms_per_op",
            "layers.projection_drain_after_grpc_s",
        ),
    ),
    *_figures(
        "replay",
        higher=(
            "sqlite_runner.events_s",
            "sqlite.events_s",
            "postgresql_runner.events_s",
            "postgresql.events_s",
            "sqlite_runner.events_per_cpu_s",
            "postgresql_runner.events_per_cpu_s",
        ),
        lower=("sqlite.of_which_decode_s",),
    ),
    *_figures(
        "lag",
        lower=(
            "at_500.lag.p50_ms",
            "at_500.lag.p99_ms",
            "at_500.command.p99_ms",
            "at_500.issued_to_visible.p99_ms",
            "at_500.bench_process_cpu_share",
            "at_250.lag.p99_ms",
        ),
    ),
    *_figures(
        "peer",
        higher=(
            "ours_events_s.jetstream",
            "ours_events_s.jetstream_16_concurrent",
            "ours_events_s.memory",
            "floor.ours_over_floor",
        ),
    ),
    # The eventsourcing library and the bare publish are the same on both sides: controls.
    *_controls(
        "peer",
        higher=(
            "eventsourcing_events_s.sqlite",
            "eventsourcing_events_s.popo",
            "floor.awaited_publish.ops_s",
        ),
    ),
    *_controls("incident", lower=("raw_webhook.p99_ms",)),
    *_figures(
        "incident",
        lower=(
            "alone.p50_ms",
            "alone.p99_ms",
            "concurrent_100.p50_ms",
            "concurrent_100.p99_ms",
            "concurrent_100.declare_p99_ms",
            "concurrent_100_keepalive.p50_ms",
            "concurrent_100_keepalive.p99_ms",
            "alone_split.p99_ms",
            "concurrent_100_split.p50_ms",
            "concurrent_100_split.p99_ms",
            "concurrent_100_split.declare_p99_ms",
            "concurrent_100_keepalive_split.p50_ms",
            "concurrent_100_keepalive_split.p99_ms",
        ),
    ),
    *_controls("quality", higher=("raw.events_s", "raw.events_per_cpu_s")),
    *_figures(
        "quality",
        higher=("kpi.events_s", "kpi.events_per_cpu_s", "kpi_vs_raw_cpu"),
        lower=("scrape.p50_ms", "scrape.cpu_p50_ms"),
    ),
    *_controls("customer", higher=("raw_publish.ops_s",)),
    *_figures(
        "customer",
        higher=("register.ops_s", "purchase.ops_s"),
        lower=(
            "register.cpu_ms_per_op",
            "purchase.cpu_ms_per_op",
            "sqlite.p99_ms",
            "postgresql.p99_ms",
        ),
    ),
    *_figures(
        "gateway",
        higher=("direct.ops_s", "through_gateway.ops_s", "ratio"),
        # cpu_ms_per_op is a list: [ticketing, gateway].
        lower=(
            "through_gateway.p99_ms",
            "through_gateway.cpu_ms_per_op.0",
            "through_gateway.cpu_ms_per_op.1",
        ),
    ),
    *_figures(
        "scale_out",
        higher=(
            "layouts.one process (all).closed_loop.ops_s",
            "layouts.two api replicas on one port + worker.closed_loop.ops_s",
        ),
        lower=(
            "layouts.one process (all).closed_loop.cpu_ms_per_call",
            "layouts.api + worker.closed_loop.api_cpu_ms_per_call",
            "layouts.api + worker.closed_loop.worker_cpu_ms_per_call",
            "layouts.two api replicas on one port + worker.closed_loop.cpu_ms_per_call",
            "layouts.two api replicas on one port + worker.steady.lag.p99_ms",
        ),
    ),
)


# --- the pure part: figures, medians, ratios, verdicts ---------------------------------------


def extract(results: dict[str, Any], bench: str, path: str) -> float | None:
    """The number at `bench`.`path` (dots; integers index lists) in a results.json, or None."""
    node: Any = results.get(bench)
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return float(node)


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values that are present, or None when none is."""
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def ratio(head: float | None, base: float | None) -> float | None:
    """head / base, or None when either is missing or base is 0."""
    if head is None or base is None or base == 0:
        return None
    return head / base


def verdict(figure: Figure, head_over_base: float | None, tolerance: float) -> str:
    """ "better", "worse", "same" (within tolerance of 1.0) or "" when there is no ratio."""
    if head_over_base is None:
        return ""
    if abs(head_over_base - 1.0) <= tolerance:
        return "same"
    went_up = head_over_base > 1.0
    return "better" if went_up == figure.higher_is_better else "worse"


@dataclass(frozen=True)
class Row:
    """One line of the comparison."""

    figure: str
    higher_is_better: bool
    control: bool
    base: list[float | None]
    head: list[float | None]
    base_median: float | None
    head_median: float | None
    ratio: float | None
    verdict: str


def compare(
    base_runs: Sequence[dict[str, Any]],
    head_runs: Sequence[dict[str, Any]],
    tolerance: float = DEFAULT_TOLERANCE,
    figures: Sequence[Figure] = FIGURES,
) -> list[Row]:
    """A row per key figure of the benchmarks either side ran; controls first."""
    ran = {name for run in (*base_runs, *head_runs) for name in run}
    rows = []
    for figure in sorted(figures, key=lambda figure: not figure.control):
        if figure.bench not in ran:
            continue
        base = [extract(run, figure.bench, figure.path) for run in base_runs]
        head = [extract(run, figure.bench, figure.path) for run in head_runs]
        if all(value is None for value in (*base, *head)):
            continue  # e.g. the PostgreSQL rows when PostgreSQL is not there
        base_median, head_median = median(base), median(head)
        head_over_base = ratio(head_median, base_median)
        rows.append(
            Row(
                figure=figure.name,
                higher_is_better=figure.higher_is_better,
                control=figure.control,
                base=base,
                head=head,
                base_median=base_median,
                head_median=head_median,
                ratio=head_over_base,
                verdict=verdict(figure, head_over_base, tolerance),
            )
        )
    return rows


def bench_names(run_py: str) -> set[str]:
    """The benchmark names a bench/run.py offers (its NAMES tuple)."""
    for node in ast.walk(ast.parse(run_py)):
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "NAMES" for target in node.targets
        ):
            value = ast.literal_eval(node.value)
            return {str(name) for name in value}
    return set()


def pythonpath(root: Path) -> str:
    """PYTHONPATH that makes a checkout's own code win over the venv's editable install."""
    return os.pathsep.join(str(root / name) if name else str(root) for name in SOURCE_DIRS)


# --- the table -----------------------------------------------------------------------------

ARROWS = {
    "better": "[green]▲ better[/]",
    "worse": "[red]▼ worse[/]",
    "same": "[dim]≈ same[/]",
    "": "",
}


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def table(rows: Sequence[Row], base_label: str, head_label: str) -> Table:
    """The comparison as a rich table; controls marked (they should be ~1.00)."""
    out = Table(
        "figure",
        "",
        f"base {base_label}",
        f"head {head_label}",
        "head/base",
        "",
        title="Benchmarks, median of the rounds (control rows: no CareOps code, ~1.00 = quiet)",
    )
    for row in rows:
        out.add_row(
            row.figure + (" [dim](control)[/]" if row.control else ""),
            "↑" if row.higher_is_better else "↓",
            _number(row.base_median),
            _number(row.head_median),
            "—" if row.ratio is None else f"{row.ratio:,.2f}",
            ARROWS[row.verdict],
        )
    return out


# --- git, protobuf and the runs ------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    """Runs git in `repo` and returns its stripped stdout."""
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def short_sha(repo: Path, rev: str) -> str:
    """The 7-digit commit id of `rev`; a clear error when it is not a commit."""
    try:
        full = git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except subprocess.CalledProcessError:
        raise SystemExit(f"bench-compare: {rev!r} is not a commit in {repo}") from None
    return full[:7]


def head_label(repo: Path) -> str:
    """HEAD's short id, with "-dirty" when the working tree has changes."""
    dirty = bool(git(repo, "status", "--porcelain", "--untracked-files=no"))
    return short_sha(repo, "HEAD") + ("-dirty" if dirty else "")


def generate_protos(root: Path, python: str = sys.executable) -> None:
    """root/gen from root/proto with grpc_tools.protoc, as the Makefile's gen/.stamp recipe."""
    gen = root / "gen"
    shutil.rmtree(gen, ignore_errors=True)
    gen.mkdir()
    protos = sorted(str(path.relative_to(root)) for path in (root / "proto").rglob("*.proto"))
    subprocess.run(
        [python, "-m", "grpc_tools.protoc", "-Iproto", "--python_out=gen", "--grpc_python_out=gen"]
        + protos,
        cwd=root,
        check=True,
    )
    for directory in [gen, *(path for path in gen.rglob("*") if path.is_dir())]:
        if directory != gen:
            (directory / "__init__.py").touch()
    (gen / ".stamp").touch()


@contextmanager
def base_worktree(repo: Path, sha: str, keep: bool = False) -> Iterator[Path]:
    """A detached worktree of `sha` at var/bench-compare/<sha> with its gen/, reused if there;
    removed afterwards unless `keep`."""
    path = repo / "var" / "bench-compare" / sha
    if not (path / ".git").exists():
        git(repo, "worktree", "prune")  # a deleted directory may still be registered
        path.parent.mkdir(parents=True, exist_ok=True)
        git(repo, "worktree", "add", "--detach", str(path), sha)
    if not (path / "gen" / ".stamp").exists():
        generate_protos(path)
    try:
        yield path
    finally:
        if not keep:
            git(repo, "worktree", "remove", "--force", str(path))


def side_env(root: Path) -> dict[str, str]:
    """The environment of a benchmark subprocess for the checkout at root."""
    return {**os.environ, "PYTHONPATH": pythonpath(root)}


# Printed by a subprocess of a side: where its code comes from.
LOCATIONS = """
import json, ticketing, bench.run
from careops.ticketing.v1 import ticketing_pb2
modules = (ticketing, ticketing_pb2, bench.run)
print(json.dumps({module.__name__: module.__file__ for module in modules}))
"""


def import_locations(root: Path, env: dict[str, str] | None) -> dict[str, Path]:
    """Where a python started in `root` with `env` imports ticketing, its protobuf code and
    bench.run from (resolved paths)."""
    done = subprocess.run(
        [sys.executable, "-c", LOCATIONS],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return {name: Path(file).resolve() for name, file in json.loads(done.stdout).items()}


def check_imports(root: Path) -> None:
    """Refuses to benchmark a side whose subprocess would import another checkout's code."""
    for name, file in import_locations(root, side_env(root)).items():
        if not file.is_relative_to(root.resolve()):
            raise SystemExit(f"bench-compare: in {root}, {name} would come from {file}")


@dataclass(frozen=True)
class Run:
    """One bench.run of one side."""

    side: str
    round: int
    seconds: float
    log: str
    results: dict[str, Any]


def run_side(
    side: str, round_: int, root: Path, names: Sequence[str], full: bool, logs: Path
) -> Run:
    """`bench.run` in `root` with its own code; its output goes to a log file."""
    log = logs / f"{side}-{round_}.log"
    with tempfile.TemporaryDirectory(prefix="careops-compare-") as directory:
        output = Path(directory) / "results.json"
        sizes = [] if full else ["--quick"]
        arguments = ["bench.run", *sizes, "--only", *names]
        command = [sys.executable, "-m", *arguments, "--output", str(output)]
        console.print(f"round {round_} {side}: {' '.join(arguments)} in {root} (log {log})")
        started = time.perf_counter()
        with log.open("w") as stream:
            done = subprocess.run(
                command, cwd=root, env=side_env(root), stdout=stream, stderr=subprocess.STDOUT
            )
        seconds = round(time.perf_counter() - started, 1)
        if done.returncode != 0:
            tail = "\n".join(log.read_text().splitlines()[-30:])
            raise SystemExit(f"bench-compare: {side} run failed ({done.returncode}):\n{tail}")
        return Run(side, round_, seconds, str(log), json.loads(output.read_text()))


def schedule(rounds: int) -> list[tuple[int, str]]:
    """(round, side) in run order: base first in odd rounds, head first in even ones, so a
    drift of the machine during the comparison does not always favour the same side."""
    order = []
    for index in range(1, rounds + 1):
        sides = ("base", "head") if index % 2 else ("head", "base")
        order += [(index, side) for side in sides]
    return order


def wanted(requested: Sequence[str], base_names: set[str], head_names: set[str]) -> list[str]:
    """The requested benchmarks both sides have; says which are skipped and why."""
    kept = []
    for name in requested:
        if name not in head_names:
            raise SystemExit(f"bench-compare: no benchmark {name!r} (have {sorted(head_names)})")
        if name not in base_names:
            console.print(f"[yellow]skipping {name}: the base's bench/run.py has no such benchmark")
            continue
        kept.append(name)
    return kept


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"{info.get('cpu')}, {info.get('cores')} cores, {info.get('implementation')} "
        f"{info.get('python')}, {info.get('system')}"
    )


def load_line(start: Sequence[float], end: Sequence[float], runs: Sequence[Run]) -> str:
    """The load averages around the comparison and at the start of each run."""
    per_run = ", ".join(
        f"{run.side} {run.round}: {run.results.get('machine', {}).get('load_average_1m_at_start')}"
        for run in runs
    )
    return (
        f"load average (1/5/15 min): at start {' '.join(f'{x:.2f}' for x in start)}, "
        f"at end {' '.join(f'{x:.2f}' for x in end)}; 1 min at each run's start: {per_run}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the comparison; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base", help="the git revision to compare the working tree against")
    parser.add_argument("--only", nargs="+", default=list(DEFAULT_ONLY), help="benchmarks")
    parser.add_argument("--rounds", type=int, default=2, help="base/head pairs (default 2)")
    parser.add_argument("--full", action="store_true", help="full sizes instead of --quick")
    parser.add_argument("--keep", action="store_true", help="keep the base worktree")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    base_sha, head = short_sha(REPO, args.base), head_label(REPO)
    try:
        base_run_py = git(REPO, "show", f"{base_sha}:bench/run.py")
    except subprocess.CalledProcessError:
        raise SystemExit(f"bench-compare: {base_sha} has no bench/run.py") from None
    names = wanted(
        args.only, bench_names(base_run_py), bench_names((REPO / "bench/run.py").read_text())
    )
    if not names:
        raise SystemExit("bench-compare: nothing left to run")
    if subprocess.run(
        ["git", "-C", str(REPO), "diff", "--quiet", base_sha, "--", "requirements.lock"]
    ).returncode:
        console.print(
            f"[yellow]warning: requirements.lock differs between {base_sha} and the working tree;"
            " both sides run with this venv's packages (the head's)"
        )

    out_dir = REPO / "var" / "bench"
    logs = out_dir / f"compare-{base_sha}-{head}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    runs: list[Run] = []
    with base_worktree(REPO, base_sha, keep=args.keep) as base_root:
        roots = {"base": base_root, "head": REPO}
        for root in roots.values():
            check_imports(root)
        for round_, side in schedule(args.rounds):
            runs.append(run_side(side, round_, roots[side], names, args.full, logs))
    load_end = os.getloadavg()

    base_runs = [run.results for run in runs if run.side == "base"]
    head_runs = [run.results for run in runs if run.side == "head"]
    rows = compare(base_runs, head_runs, args.tolerance)
    info = runs[0].results.get("machine", {})
    console.print(table(rows, base_sha, head))
    console.print(f"machine: {machine_line(info)}")
    console.print(load_line(load_start, load_end, runs))
    output = out_dir / f"compare-{base_sha}-{head}.json"
    document = {
        "base": base_sha,
        "head": head,
        "benchmarks": names,
        "rounds": args.rounds,
        "quick": not args.full,
        "tolerance": args.tolerance,
        "machine": info,
        "load_average_at_start": list(load_start),
        "load_average_at_end": list(load_end),
        "runs": [
            {
                "side": run.side,
                "round": run.round,
                "seconds": run.seconds,
                "log": run.log,
                "load_average_1m_at_start": run.results.get("machine", {}).get(
                    "load_average_1m_at_start"
                ),
                "results": run.results,
            }
            for run in runs
        ],
        "figures": [asdict(row) for row in rows],
    }
    output.write_text(json.dumps(document, indent=2))
    console.print(f"comparison written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
