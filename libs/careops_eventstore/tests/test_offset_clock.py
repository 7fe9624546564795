"""OffsetClock: a base clock moved forward by the seconds in a file, read at each call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from careops_eventstore.application import OffsetClock

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_without_the_file_it_is_its_base() -> None:
    clock = OffsetClock(Path("/nonexistent/careops-offset"), base=lambda: T0)
    assert clock() == T0 and clock.offset() == 0.0


def test_advance_moves_it_forward_and_a_running_reader_sees_it(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    writer = OffsetClock(path, base=lambda: T0)
    reader = OffsetClock(path, base=lambda: T0)  # another process reading the same file
    assert writer.advance(300) == 300.0
    assert reader() == T0 + timedelta(seconds=300)
    writer.advance(0.5)
    assert reader() == T0 + timedelta(seconds=300.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["offset"]  # replaced whole


def test_it_does_not_run_backwards(tmp_path: Path) -> None:
    clock = OffsetClock(tmp_path / "offset", base=lambda: T0)
    clock.advance(10)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    assert clock() == T0 + timedelta(seconds=10)
