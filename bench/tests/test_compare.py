"""bench.compare: the pure parts (figures, medians, ratios, verdicts, the table) and the base
worktree's import resolution (no benchmark is run: too slow for the suite)."""

from __future__ import annotations

import subprocess
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench import compare
from bench.compare import Figure

REPO = Path(__file__).resolve().parents[2]

RESULTS: dict[str, Any] = {
    "machine": {"cpu": "x", "load_average_1m_at_start": 0.5},
    "open_ticket": {
        "layers": {
            "grpc": {"ops_s": 700.0, "cpu_ms_per_op": 1.5, "errors": 0},
            "projection_drain_after_grpc_s": 0.2,
        },
    },
    "gateway": {"through_gateway": {"cpu_ms_per_op": [1.2, 0.8], "ok": True}},
}


def results(grpc_ops: float, cpu_ms: float, echo_ops: float | None = None) -> dict[str, Any]:
    run: dict[str, Any] = {
        "open_ticket": {"layers": {"grpc": {"ops_s": grpc_ops, "cpu_ms_per_op": cpu_ms}}}
    }
    if echo_ops is not None:
        run["baselines"] = {"grpc_echo": {"ops_s": echo_ops}}
    return run


def test_extract_follows_dotted_paths_and_list_indices() -> None:
    assert compare.extract(RESULTS, "open_ticket", "layers.grpc.ops_s") == 700.0
    assert compare.extract(RESULTS, "open_ticket", "layers.projection_drain_after_grpc_s") == 0.2
    assert compare.extract(RESULTS, "gateway", "through_gateway.cpu_ms_per_op.1") == 0.8


@pytest.mark.parametrize(
    ("bench", "path"),
    [
        ("lag", "at_500.lag.p99_ms"),  # benchmark not run
        ("open_ticket", "layers.app_execute.cpu_ms_per_op"),  # key missing
        ("open_ticket", "layers.grpc.ops_s.deeper"),  # a number is not a dict
        ("gateway", "through_gateway.cpu_ms_per_op.2"),  # index out of range
        ("gateway", "through_gateway.ok"),  # a bool is not a figure
        ("open_ticket", "layers.grpc"),  # a dict is not a figure
    ],
)
def test_extract_returns_none_when_there_is_no_number(bench: str, path: str) -> None:
    assert compare.extract(RESULTS, bench, path) is None


def test_median_ignores_missing_values() -> None:
    assert compare.median([3.0, None, 1.0, 2.0]) == 2.0
    assert compare.median([1.0, 2.0]) == 1.5
    assert compare.median([None, None]) is None
    assert compare.median([]) is None


def test_ratio_is_head_over_base_and_none_without_both() -> None:
    assert compare.ratio(150.0, 100.0) == 1.5
    assert compare.ratio(None, 100.0) is None
    assert compare.ratio(1.0, None) is None
    assert compare.ratio(1.0, 0.0) is None


@pytest.mark.parametrize(
    ("higher_is_better", "head_over_base", "expected"),
    [
        (True, 1.2, "better"),
        (True, 0.8, "worse"),
        (False, 1.2, "worse"),
        (False, 0.8, "better"),
        (True, 1.04, "same"),
        (False, 0.96, "same"),
        (True, None, ""),
    ],
)
def test_verdict_knows_which_way_is_better(
    higher_is_better: bool, head_over_base: float | None, expected: str
) -> None:
    figure = Figure("open_ticket", "x", higher_is_better)
    assert compare.verdict(figure, head_over_base, 0.05) == expected


def test_compare_takes_medians_of_rounds_and_puts_controls_first() -> None:
    base = [results(600, 1.6, 3000), results(640, 1.4, 3100)]
    head = [results(700, 1.2, 3050), results(720, 1.3, 3050)]
    rows = {row.figure: row for row in compare.compare(base, head)}
    grpc = rows["open_ticket.layers.grpc.ops_s"]
    assert (grpc.base_median, grpc.head_median) == (620, 710)
    assert grpc.ratio == pytest.approx(710 / 620)
    assert grpc.verdict == "better"
    cpu = rows["open_ticket.layers.grpc.cpu_ms_per_op"]
    assert cpu.ratio == pytest.approx(1.25 / 1.5)
    assert cpu.verdict == "better"
    echo = rows["baselines.grpc_echo.ops_s"]
    assert echo.control and echo.verdict == "same"
    ordered = list(rows)
    assert ordered[0] == "baselines.grpc_echo.ops_s"
    # Figures of benchmarks nobody ran, and figures neither side has, are left out.
    assert not any(name.startswith("lag.") for name in ordered)
    assert "open_ticket.layers.app_execute.ops_s" not in rows


def test_a_figure_missing_on_one_side_has_no_ratio() -> None:
    rows = compare.compare([results(600, 1.5)], [results(600, 1.5, 3000)])
    echo = next(row for row in rows if row.figure == "baselines.grpc_echo.ops_s")
    assert (echo.base_median, echo.head_median, echo.ratio, echo.verdict) == (
        None,
        3000,
        None,
        "",
    )
    out = StringIO()
    Console(file=out, width=200).print(compare.table(rows, "aaaaaaa", "bbbbbbb"))
    line = next(line for line in out.getvalue().splitlines() if "grpc_echo.ops_s" in line)
    assert line.count("—") == 2  # base median and ratio


def test_the_briefs_key_figures_are_there_with_their_direction() -> None:
    directions = {figure.name: figure.higher_is_better for figure in compare.FIGURES}
    assert directions["open_ticket.layers.grpc.ops_s"] is True
    assert directions["open_ticket.layers.app_execute_in_service.ops_s"] is True
    for lower in (
        "open_ticket.layers.grpc.cpu_ms_per_op",
        "open_ticket.layers.app_execute.cpu_ms_per_op",
        "open_ticket.layers.app_execute_in_service.cpu_ms_per_op",
        "open_ticket.layers.projection_drain_after_grpc_s",
        "lag.at_500.lag.p50_ms",
        "lag.at_500.lag.p99_ms",
        "lag.at_500.bench_process_cpu_share",
    ):
        assert directions[lower] is False, lower
    benches = {figure.bench for figure in compare.FIGURES}
    assert benches == compare.bench_names((REPO / "bench" / "run.py").read_text())
    assert all(figure.control for figure in compare.FIGURES if figure.bench == "baselines")


def test_bench_names_reads_the_names_tuple() -> None:
    assert compare.bench_names('NAMES = (\n    "baselines",\n    "replay",\n)\n') == {
        "baselines",
        "replay",
    }
    assert compare.bench_names("x = 1\n") == set()


def test_wanted_skips_what_the_base_lacks_and_refuses_unknown_names() -> None:
    head = {"open_ticket", "lag", "gateway"}
    assert compare.wanted(["open_ticket", "gateway"], {"open_ticket", "lag"}, head) == [
        "open_ticket"
    ]
    with pytest.raises(SystemExit):
        compare.wanted(["nonsense"], head, head)


def test_schedule_alternates_which_side_goes_first() -> None:
    assert compare.schedule(2) == [(1, "base"), (1, "head"), (2, "head"), (2, "base")]
    assert compare.schedule(1) == [(1, "base"), (1, "head")]


def test_pythonpath_puts_the_checkouts_source_dirs_first() -> None:
    root = Path("/x/wt")
    assert compare.pythonpath(root).split(":") == [
        "/x/wt/libs",
        "/x/wt/services",
        "/x/wt/cli",
        "/x/wt/gen",
        "/x/wt",
    ]


def test_the_base_side_imports_the_base_worktrees_own_code(tmp_path: Path) -> None:
    # A clone of the repo, so the real repo's worktree list is not touched.
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    sha = compare.short_sha(clone, "HEAD")
    with compare.base_worktree(clone, sha) as root:
        root = root.resolve()
        assert root == (clone / "var" / "bench-compare" / sha).resolve()
        assert (root / "gen" / "careops" / "ticketing" / "v1" / "ticketing_pb2_grpc.py").exists()
        assert not (root / "gen" / "__init__.py").exists()
        assert (root / "gen" / "careops" / "__init__.py").exists()
        files = compare.import_locations(root, compare.side_env(root))
        assert set(files) == {"ticketing", "careops.ticketing.v1.ticketing_pb2", "bench.run"}
        for name, file in files.items():
            assert file.is_relative_to(root), (name, file)
        compare.check_imports(root)
        # Without the PYTHONPATH the venv's editable install would win (it points elsewhere).
        assert not compare.import_locations(root, None)["ticketing"].is_relative_to(root)
    assert not root.exists()
    assert len(compare.git(clone, "worktree", "list").splitlines()) == 1


def test_the_head_side_imports_the_repos_code() -> None:
    for name, file in compare.import_locations(REPO, compare.side_env(REPO)).items():
        assert file.is_relative_to(REPO), (name, file)
