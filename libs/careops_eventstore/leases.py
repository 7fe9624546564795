"""Work sharing between worker replicas: each projection group is run by one worker at a time,
the holder of its lease in a NATS KV bucket.

A lease is a key (`<service>.groups.<group>`) whose value names its owner; the owner renews it
every `lease_seconds / 4` by rewriting it with a revision check (compare-and-set), so each
renewal gives the key a new revision. A worker that sees a lease's revision unchanged for
`lease_seconds` on its own clock takes it with a compare-and-set on that revision (as
Kubernetes' leader election does: observed locally, so clocks of different machines need not
agree). Workers announce themselves the same way (`<service>.workers.<owner>`) and each holds
at most its fair share, ceil(groups / live workers): one holding more releases the rest, one
holding fewer takes free or expired leases. A group always starts from its SQL checkpoints,
and the checkpoint row lock still lets only one of two briefly overlapping owners apply a
message (careops_eventstore.batches).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue
from prometheus_client import Counter, Gauge

from careops_eventstore.tasks import repeat_every, stop_task

log = logging.getLogger(__name__)

BUCKET = "careops-leases"
LEASE_SECONDS = 4.0
HELD = Gauge("careops_projection_leases_held", "Projection group leases this worker process holds.")
GROUPS = Gauge(
    "careops_projection_lease_groups",
    "Projection groups this worker shares with the other workers through leases (0 outside the "
    "worker role): the sum of careops_projection_leases_held over the workers should equal it.",
)
TAKEOVERS = Counter(
    "careops_projection_lease_takeovers_total",
    "Projection groups this worker took over from a worker that stopped renewing its lease.",
)
LOST = Counter(
    "careops_projection_leases_lost_total",
    "Leases this worker found taken by another worker before it renewed them.",
)
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_=-]")


class Group(Protocol):
    """What the leases start and stop: a ProjectionGroup."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Entry:
    """A key as read: its revision and the owner it names ("" for a released lease)."""

    revision: int
    owner: str


@dataclass
class Seen:
    """A key's revision as this worker last saw it, and when (its own clock) it first did."""

    revision: int
    owner: str
    since: float


def fair_share(groups: int, workers: int) -> int:
    """The most groups one of `workers` live workers holds."""
    return math.ceil(groups / max(1, workers))


def key_part(name: str) -> str:
    """`name` as one token of a KV key (letters, digits, `_`, `=`, `-`)."""
    return _KEY_UNSAFE.sub("-", name) or "-"


def worker_id() -> str:
    """This process's owner name: host, pid and a random suffix (a restarted pid differs)."""
    return key_part(f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")


class Observations:
    """When each key's current revision was first seen: a revision unchanged for the lease
    time means its writer stopped renewing it."""

    def __init__(self) -> None:
        self._seen: dict[str, Seen] = {}

    def see(self, key: str, entry: Entry | None, now: float) -> Seen | None:
        """Records `entry` of `key` as read at `now`; returns what is known of it."""
        if entry is None:
            self._seen.pop(key, None)
            return None
        seen = self._seen.get(key)
        if seen is None or seen.revision != entry.revision:
            seen = self._seen[key] = Seen(entry.revision, entry.owner, now)
        return seen

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)

    @staticmethod
    def expired(seen: Seen, now: float, lease_seconds: float) -> bool:
        """Whether the revision has stood still for the whole lease time."""
        return now - seen.since >= lease_seconds


class LeaseBoard:
    """The KV bucket of one service's leases and workers (the NATS edge)."""

    def __init__(self, kv: KeyValue, service: str) -> None:
        self._kv = kv
        self._prefix = f"{key_part(service)}."

    @classmethod
    async def open(
        cls, nc: NatsClient, service: str, *, bucket: str = BUCKET, replicas: int = 1
    ) -> LeaseBoard:
        """Binds to the bucket, creating it on first use (every service shares it)."""
        js = nc.jetstream()
        try:
            kv = await js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            kv = await js.create_key_value(bucket=bucket, history=1, replicas=replicas)
        return cls(kv, service)

    def group_key(self, group: str) -> str:
        return f"{self._prefix}groups.{key_part(group)}"

    def worker_key(self, owner: str) -> str:
        return f"{self._prefix}workers.{owner}"

    async def read(self, key: str) -> Entry | None:
        """The key's revision and owner; None while it was never written or is deleted."""
        try:
            entry = await self._kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        return Entry(entry.revision or 0, (entry.value or b"").decode())

    async def write(self, key: str, owner: str, last: int | None) -> int | None:
        """Writes `owner` if the key is still at revision `last` (None: not there); returns the
        new revision, or None if another writer came first."""
        try:
            if last is None:
                return await self._kv.create(key, owner.encode())
            return await self._kv.update(key, owner.encode(), last=last)
        except nats.js.errors.KeyWrongLastSequenceError:
            return None

    async def heartbeat(self, owner: str) -> None:
        """Announces this worker: a new revision of its key."""
        await self._kv.put(self.worker_key(owner), owner.encode())

    async def leave(self, owner: str) -> None:
        """Withdraws this worker's announcement: the others count it out at once."""
        await self._kv.delete(self.worker_key(owner))

    async def workers(self) -> dict[str, Entry]:
        """Every announced worker's key with its revision (live or not)."""
        prefix = self.worker_key("")
        try:
            keys = await self._kv.keys()
        except nats.js.errors.NoKeysError:
            return {}
        found: dict[str, Entry] = {}
        for key in keys:
            if key.startswith(prefix) and (entry := await self.read(key)) is not None:
                found[key] = entry
        return found

    async def retire(self, key: str, last: int) -> None:
        """Deletes a key still at revision `last` (a dead worker's announcement)."""
        with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.APIError):
            await self._kv.delete(key, last=last)


class LeasedGroups:
    """Runs the projection groups whose leases this worker holds, keeps its fair share and
    renews them; `tick` is one round (the background loop calls it every `lease_seconds / 4`).
    """

    def __init__(
        self,
        board: LeaseBoard,
        groups: Mapping[str, Group],
        *,
        owner: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self._board = board
        self._groups = dict(groups)
        self.owner = owner or worker_id()
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._seen = Observations()
        self.held: dict[str, int] = {}  # group name -> revision of our last write
        self._task: asyncio.Task[None] | None = None
        HELD.set(0)
        GROUPS.set(len(self._groups))

    @property
    def interval(self) -> float:
        """How often the loop renews: four chances within one lease time."""
        return self.lease_seconds / 4

    def start(self) -> None:
        """Starts taking, renewing and releasing leases in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="projection-leases")

    async def stop(self) -> None:
        """Stops the loop, then the held groups, then releases their leases and withdraws the
        announcement (other workers take the groups at their next round instead of after the
        lease time)."""
        await stop_task(self._task)
        self._task = None
        for name in list(self.held):
            await self._release(name)
        with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
            await self._board.leave(self.owner)

    async def tick(self) -> None:
        """One round: announce, renew what is held, then take or release to the fair share."""
        await self._board.heartbeat(self.owner)
        workers = await self._live_workers()
        entries = {
            name: await self._board.read(self._board.group_key(name)) for name in self._groups
        }
        now = self._clock()
        for name, entry in entries.items():
            if name not in self.held:  # watched every round: an expiry counts from the last change
                self._seen.see(self._board.group_key(name), entry, now)
        for name in list(self.held):
            await self._renew(name, entries[name])
        quota = fair_share(len(self._groups), workers)
        for name in sorted(self.held)[quota:]:
            await self._release(name)
        for name in sorted(self._groups):
            if len(self.held) >= quota:
                break
            if name not in self.held:
                await self._try_take(name, entries[name])
        HELD.set(len(self.held))

    async def _run(self) -> None:
        # A failed round (NATS unreachable, say) leaves the held groups running; renewals
        # resume when it is back (or another worker has taken over, which the next round sees).
        await repeat_every(
            self.interval, self.tick, lambda: True, "lease round", level=logging.WARNING
        )

    async def _live_workers(self) -> int:
        """How many workers renewed their announcement within the lease time (this one too);
        a dead worker's key is deleted."""
        now = self._clock()
        live = 1
        mine = self._board.worker_key(self.owner)
        for key, entry in (await self._board.workers()).items():
            if key == mine:
                continue
            seen = self._seen.see(key, entry, now)
            assert seen is not None
            if not Observations.expired(seen, now, self.lease_seconds):
                live += 1
            else:
                await self._board.retire(key, entry.revision)
                self._seen.forget(key)
        return live

    async def _renew(self, name: str, entry: Entry | None) -> None:
        revision = self.held[name]
        renewed = None
        if entry is not None and entry.revision == revision and entry.owner == self.owner:
            renewed = await self._board.write(self._board.group_key(name), self.owner, revision)
        if renewed is not None:
            self.held[name] = renewed
            return
        # Someone took it: this worker was too slow to renew (paused, cut off from NATS).
        del self.held[name]
        LOST.inc()
        log.warning(
            "projection lease lost",
            extra={"group": name, "owner": self.owner, "now_held_by": entry.owner if entry else ""},
        )
        await self._groups[name].stop()

    async def _try_take(self, name: str, entry: Entry | None) -> None:
        key = self._board.group_key(name)
        now = self._clock()
        seen = self._seen.see(key, entry, now)  # already seen this round: keeps its `since`
        previous = seen.owner if seen else ""
        if (
            seen is not None
            and previous not in ("", self.owner)
            and not Observations.expired(seen, now, self.lease_seconds)
        ):
            return  # held and renewed by a live worker
        revision = await self._board.write(key, self.owner, seen.revision if seen else None)
        if revision is None:
            return  # another worker took it first
        self.held[name] = revision
        self._seen.forget(key)
        if previous and previous != self.owner:
            TAKEOVERS.inc()
            log.warning(
                "projection group taken over",
                extra={
                    "group": name,
                    "owner": self.owner,
                    "previous_owner": previous,
                    "unrenewed_seconds": round(now - seen.since, 3) if seen else 0.0,
                },
            )
        else:
            log.info("projection lease acquired", extra={"group": name, "owner": self.owner})
        try:
            await self._groups[name].start()
        except Exception:  # noqa: BLE001 - e.g. the database: let another worker try it
            log.warning("projection group did not start", exc_info=True, extra={"group": name})
            await self._release(name)

    async def _release(self, name: str) -> None:
        """Stops the group first (so the next owner overlaps it as little as possible), then
        writes the lease free."""
        revision = self.held.pop(name)
        await self._groups[name].stop()
        with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
            await self._board.write(self._board.group_key(name), "", revision)
        HELD.set(len(self.held))
        log.info("projection lease released", extra={"group": name, "owner": self.owner})
