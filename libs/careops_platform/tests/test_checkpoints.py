"""SqlPositions: an API process's view of the worker's projection checkpoints."""

from __future__ import annotations

import asyncio
from pathlib import Path

from careops_eventstore import sqlstate
from sqlalchemy import Engine, insert, update

from careops_platform.checkpoints import SqlPositions
from careops_platform.db import make_engine


def commit_checkpoint(engine: Engine, name: str, sequence: int) -> None:
    """What the worker's batch commits (with its rows), as far as a reader can tell."""
    with engine.begin() as connection:
        moved = connection.execute(
            update(sqlstate.checkpoints)
            .where(sqlstate.checkpoints.c.projection == name)
            .values(last_sequence=sequence)
        )
        if not moved.rowcount:
            connection.execute(
                insert(sqlstate.checkpoints).values(
                    projection=name, stream="S", last_sequence=sequence
                )
            )


async def test_waiters_wake_when_the_sql_checkpoint_reaches_their_sequence(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'positions.db'}")
    sqlstate.metadata.create_all(engine)
    commit_checkpoint(engine, "tickets", 3)
    positions = SqlPositions(engine)
    await positions.start()
    try:
        assert positions.position("tickets") == 3
        assert positions.position("unknown") == 0
        assert await positions.wait_for("tickets", 2, timeout=30)  # already there
        waiting = asyncio.ensure_future(positions.wait_for("tickets", 5, timeout=30))
        other = asyncio.ensure_future(positions.wait_for("agents", 1, timeout=30))
        await asyncio.to_thread(commit_checkpoint, engine, "tickets", 5)
        assert await waiting
        assert positions.position("tickets") == 5
        await asyncio.to_thread(commit_checkpoint, engine, "agents", 1)
        assert await other
        # Nobody advances it: the wait ends False at its timeout.
        assert not await positions.wait_for("tickets", 6, timeout=0.05)
    finally:
        await positions.stop()
        engine.dispose()
