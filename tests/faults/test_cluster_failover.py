"""Ticketing on a three-node NATS cluster (R3 stream, fsync always) under steady load: kill -9
of the stream's leader, then of a follower (the stream has lost its quorum), then both
restarted. Every acknowledged command is in the log exactly once, commands resume, and every
read model equals its rebuild. The measured resume times are printed (`-s`) and recorded in
docs/operations.md."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from careops_eventstore.jetstream import connect
from careops_eventstore.nats_embedded import EmbeddedNats, EmbeddedNatsCluster

from tests.faults.platform import (
    STREAMS,
    Platform,
    Writer,
    assert_equals_rebuild,
    assert_exactly_once,
    progress,
    running_platform,
)
from tests.support import eventually_sync, fault_scale

# In `make test`; `make cluster-test` runs it alone, five times in a row (-m cluster).
pytestmark = pytest.mark.cluster

STREAM = STREAMS["ticketing"]


async def _leader(nats_url: str) -> str | None:
    """The server that leads the ticketing stream's replicas (None: no leader right now)."""
    nc = await connect(nats_url, name="careops-tests-leader")
    try:
        info = await nc.jetstream(timeout=2).stream_info(STREAM)
        return info.cluster.leader if info.cluster else None
    finally:
        await nc.close()


def stream_leader(cluster: EmbeddedNatsCluster) -> EmbeddedNats:
    """The member leading the stream, once one does and it has both followers' replicas."""
    name = eventually_sync(lambda: asyncio.run(_leader(cluster.url)), what=f"{STREAM} leader")
    return cluster.node(name)


def resume_time(writer: Writer, moment: float) -> float:
    """Waits for the first command sent after `moment` to be acknowledged; returns how long
    after `moment` that was (the test's timeout is the only bound)."""
    return eventually_sync(
        lambda: writer.resumed_after(moment), timeout=120, what="commands resumed"
    )


def kill(node: EmbeddedNats) -> float:
    """kill -9 of a cluster member; returns when (monotonic)."""
    moment = time.monotonic()
    node.stop(kill=True)
    return moment


# Processes start slowly on a loaded machine, and R3 consumers are slower to create.
@pytest.mark.timeout(300 * fault_scale())
def test_kill_9_of_the_stream_leader_then_a_follower_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    scale = fault_scale()
    with running_platform(tmp_path, "ticketing", nodes=3) as platform:
        cluster = platform.nats
        assert isinstance(cluster, EmbeddedNatsCluster)
        resumed: dict[str, list[float]] = {"leader": [], "restart": []}
        with platform.load("cluster", "ticketing") as writers:
            for _round in range(scale):
                leader_down, restart = _one_round(platform, cluster, writers)
                resumed["leader"].append(leader_down)
                resumed["restart"].append(restart)
        print(f"\ncommands resumed after the leader's kill -9 in {resumed['leader']} s")
        print(f"commands resumed after both were restarted in {resumed['restart']} s")
        print(f"{len(writers[0].acked)} commands acknowledged")
        assert_exactly_once(platform, writers)
        # The router retries assignments the outage refused: its appends land after the load.
        assert_equals_rebuild(platform.processes["ticketing"], idle_reactions=True)


def _one_round(
    platform: Platform, cluster: EmbeddedNatsCluster, writers: list[Writer]
) -> tuple[float, float]:
    """Leader killed (the two others elect a new one), then a follower (no quorum: commands
    wait), then both restarted; returns the seconds until commands resumed after the first
    kill and after the restart."""
    scale = fault_scale()
    progress(writers, at_least=5 * scale)  # the kill lands under load
    leader = stream_leader(cluster)
    failover = resume_time(writers[0], kill(leader))
    progress(writers, at_least=5 * scale)  # a two-member cluster takes commands
    follower = next(n for n in cluster.nodes if n.running and n is not stream_leader(cluster))
    kill(follower)
    restarted_at = time.monotonic()
    cluster.restart(leader, follower)
    restart = resume_time(writers[0], restarted_at)
    progress(writers, at_least=5 * scale)  # and keeps taking them
    return failover, restart
