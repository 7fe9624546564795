"""Projection group leases on a real nats-server, rounds driven by hand on an injected clock:
fair share, release to a newcomer, takeover after the lease time, a stale owner stopping."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NatsClient

from careops_eventstore.jetstream import connect
from careops_eventstore.leases import (
    GROUPS,
    HELD,
    TAKEOVERS,
    Entry,
    LeaseBoard,
    LeasedGroups,
    Observations,
    fair_share,
    key_part,
)
from careops_eventstore.nats_embedded import EmbeddedNats

LEASE = 4.0


class Clock:
    """Seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorded:
    """A group that records whether it runs."""

    def __init__(self) -> None:
        self.running = False
        self.starts = 0

    async def start(self) -> None:
        self.running = True
        self.starts += 1

    async def stop(self) -> None:
        self.running = False


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[NatsClient]:
    client = await connect(nats_server.url, name="careops-tests-leases")
    yield client
    await client.close()


async def worker(
    nc: NatsClient, service: str, groups: dict[str, Recorded], clock: Clock, owner: str
) -> LeasedGroups:
    board = await LeaseBoard.open(nc, service, bucket="test-leases")
    return LeasedGroups(board, groups, owner=owner, lease_seconds=LEASE, clock=clock)


def running(groups: dict[str, Recorded]) -> set[str]:
    return {name for name, group in groups.items() if group.running}


def test_the_fair_share_is_the_ceiling_of_groups_per_live_worker() -> None:
    assert fair_share(2, 1) == 2
    assert fair_share(2, 2) == 1
    assert fair_share(3, 2) == 2
    assert fair_share(1, 3) == 1
    assert fair_share(2, 0) == 2  # no worker seen yet: this one


def test_a_revision_expires_only_after_standing_still_for_the_lease_time() -> None:
    seen = Observations()
    first = seen.see("k", Entry(revision=5, owner="a"), now=10.0)
    assert first is not None and not Observations.expired(first, 13.9, LEASE)
    assert Observations.expired(first, 14.0, LEASE)
    renewed = seen.see("k", Entry(revision=6, owner="a"), now=14.0)  # a renewal restarts it
    assert renewed is not None and not Observations.expired(renewed, 17.0, LEASE)
    assert seen.see("k", None, now=18.0) is None


def test_group_names_become_valid_key_tokens() -> None:
    assert key_part("customer_directory+text_shredder") == "customer_directory-text_shredder"


async def test_two_workers_share_groups_and_a_dead_ones_move_after_the_lease_time(
    nc: NatsClient,
) -> None:
    service = f"svc{uuid.uuid4().hex[:6]}"
    clock = Clock()
    first_groups = {"alpha": Recorded(), "beta": Recorded()}
    second_groups = {"alpha": Recorded(), "beta": Recorded()}
    first = await worker(nc, service, first_groups, clock, "first")
    second = await worker(nc, service, second_groups, clock, "second")

    assert GROUPS._value.get() == 2  # for the alert: held leases summed over workers
    await first.tick()  # alone: its share is both
    assert running(first_groups) == {"alpha", "beta"}
    assert HELD._value.get() == 2

    await second.tick()  # announces itself; both are held and renewed
    assert running(second_groups) == set()
    await first.tick()  # sees two workers: keeps one, writes the other free
    assert running(first_groups) == {"alpha"}
    await second.tick()  # a free lease is taken at once, not a takeover
    assert running(second_groups) == {"beta"}
    takeovers = TAKEOVERS._value.get()

    for _round in range(3):  # renewals: nothing moves
        clock.advance(1.0)
        await first.tick()
        await second.tick()
    assert (running(first_groups), running(second_groups)) == ({"alpha"}, {"beta"})

    # `first` dies (stops renewing): `second` takes alpha only once its revision has stood
    # still for the whole lease time.
    clock.advance(LEASE - 1.5)
    await second.tick()
    assert running(second_groups) == {"beta"}
    clock.advance(1.5)
    await second.tick()
    assert running(second_groups) == {"alpha", "beta"}
    assert TAKEOVERS._value.get() == takeovers + 1
    assert second_groups["alpha"].starts == 1

    # `first` comes back from its pause: its renewal finds the lease taken and stops alpha.
    await first.tick()
    assert running(first_groups) == set()
    assert first.held == {}


async def test_stop_releases_the_leases_for_the_next_worker_at_once(nc: NatsClient) -> None:
    service = f"svc{uuid.uuid4().hex[:6]}"
    clock = Clock()
    leaving_groups = {"alpha": Recorded(), "beta": Recorded()}
    staying_groups = {"alpha": Recorded(), "beta": Recorded()}
    leaving = await worker(nc, service, leaving_groups, clock, "leaving")
    staying = await worker(nc, service, staying_groups, clock, "staying")
    await leaving.tick()
    await staying.tick()
    await leaving.tick()  # its share with two workers: one group
    await staying.tick()
    assert (running(leaving_groups), running(staying_groups)) == ({"alpha"}, {"beta"})
    await leaving.stop()
    assert running(leaving_groups) == set()
    # No lease time to wait: the lease was written free and the worker counted out.
    await staying.tick()
    assert running(staying_groups) == {"alpha", "beta"}


class Broken(Recorded):
    """A group whose start fails (its database unreachable, say)."""

    async def start(self) -> None:
        raise OSError("database unreachable")


async def test_a_group_that_does_not_start_is_written_free_for_another_worker(
    nc: NatsClient,
) -> None:
    service = f"svc{uuid.uuid4().hex[:6]}"
    clock = Clock()
    broken = await worker(nc, service, {"alpha": Broken()}, clock, "broken")
    healthy_groups = {"alpha": Recorded()}
    healthy = await worker(nc, service, healthy_groups, clock, "healthy")
    await broken.tick()
    assert broken.held == {}
    await healthy.tick()  # free at once: no lease time to wait
    assert running(healthy_groups) == {"alpha"}
