"""Open-loop ticketing load over gRPC at a steady rate, run in a child process, and the
projection lag it leaves, measured from the outside.

`python -m bench.steady -` reads a SteadySpec (JSON) on stdin and prints a SteadyResult: for
every command its step (0 OpenTicket, 1 AssignTicket, 2 AddReply, 3 ChangePriority), the
`time.monotonic()` it was issued and answered, and the stream sequence it was appended at.
The schedule is bench.lag's (a late scheduler catches up, it does not slow down); the steps of
one ticket are STEP_SPACING_S apart and each waits for the one before. time.monotonic() is
CLOCK_MONOTONIC on Linux, one clock for every process, so the parent can compare the answers
with its own samples of a projection's checkpoint (`CheckpointPoller`): the lag of a command is
the time from its answer until the checkpoint first reached its sequence.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.sqlstate import checkpoints
from careops_platform.db import make_engine
from careops_platform.internal_identity import InternalSigner
from sqlalchemy import select

from bench.common import latency_summary
from bench.grpc_load import BENCH_PRINCIPAL, json_child, own_connection
from bench.lag import schedule
from bench.workload import OPEN_REQUEST, STEPS

CALL_TIMEOUT_S = 30.0
AGENT = "agent-chen"  # of the sample agent directory (agents_default.yaml)
KINDS = ("OpenTicket", "AssignTicket", "AddReply", "ChangePriority")


@dataclass
class SteadySpec:
    target: str
    identity_data_dir: str  # calls are signed with this data dir's internal key
    commands_s: int
    seconds: float
    channels: int = 4  # connections, so that replicas on one port share the load


@dataclass
class SteadyResult:
    # [step, issued, answered, sequence] per answered command (monotonic seconds)
    calls: list[tuple[int, float, float, int]] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    late: list[float] = field(default_factory=list)  # how late the scheduler issued each
    started: float = 0.0
    elapsed: float = 0.0

    def command_latency(self, since: float = 0.0, until: float = float("inf")) -> dict[str, Any]:
        """Latency summary of the commands answered in [since, until)."""
        return latency_summary(
            [
                answered - issued
                for _s, issued, answered, _q in self.calls
                if since <= answered < until
            ]
        )


def _step_call(
    stub: ticketing_pb2_grpc.TicketingServiceStub, step: int, ticket_id: str
) -> Callable[..., Awaitable[Any]]:
    """The bound call of one step and its request (the open's request is OPEN_REQUEST)."""
    if step == 0:
        return lambda **kw: stub.OpenTicket(OPEN_REQUEST, **kw)
    if step == 1:
        return lambda **kw: stub.AssignTicket(
            pb.AssignTicketRequest(ticket_id=ticket_id, agent_id=AGENT), **kw
        )
    if step == 2:
        request = pb.AddReplyRequest(
            ticket_id=ticket_id,
            author=t.AUTHOR_AGENT,  # by the caller (an agent's reply names no one else)
            body="Looking into it, please restart the printer.",
        )
        return lambda **kw: stub.AddReply(request, **kw)
    return lambda **kw: stub.ChangePriority(
        pb.ChangePriorityRequest(
            ticket_id=ticket_id, priority=t.PRIORITY_HIGH, reason="customer is a hospital"
        ),
        **kw,
    )


async def run_steady(spec: SteadySpec) -> SteadyResult:
    """Issues the schedule open-loop; records every command's times and sequence."""
    signer = InternalSigner.embedded(spec.identity_data_dir)
    channels = [own_connection(spec.target) for _ in range(max(1, spec.channels))]
    stubs = [ticketing_pb2_grpc.TicketingServiceStub(channel) for channel in channels]
    slots = schedule(spec.commands_s, spec.seconds)
    tickets = max(index for _at, index, _step in slots) + 1
    ids: list[str] = [""] * tickets
    done = [asyncio.Event() for _ in range(tickets * STEPS)]
    result = SteadyResult()
    errors: list[str] = []

    async def one(index: int, step: int) -> None:
        try:
            if step:
                await done[index * STEPS + step - 1].wait()
                if not ids[index]:
                    return  # its open failed (counted there)
            call = _step_call(stubs[index % len(stubs)], step, ids[index])
            metadata = (*signer.metadata(BENCH_PRINCIPAL), ("idempotency-key", uuid.uuid4().hex))
            issued = time.monotonic()
            try:
                response = await call(metadata=metadata, timeout=CALL_TIMEOUT_S)
            except grpc.aio.AioRpcError as exc:  # counted and reported, the load goes on
                errors.append(f"{KINDS[step]} {exc.code().name}: {exc.details()}")
                return
            if step == 0:
                ids[index] = response.ticket.ticket_id
            result.calls.append((step, issued, time.monotonic(), int(response.sequence)))
        finally:
            done[index * STEPS + step].set()

    try:
        await asyncio.gather(*(channel.channel_ready() for channel in channels))
        tasks = []
        result.started = started = time.monotonic()
        for at, index, step in slots:
            delay = started + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            result.late.append(max(0.0, -delay))
            tasks.append(asyncio.create_task(one(index, step)))
        await asyncio.gather(*tasks)
        result.elapsed = time.monotonic() - started
    finally:
        for channel in channels:
            await channel.close()
    result.errors, result.first_error = len(errors), errors[0] if errors else ""
    return result


async def steady_from_child(spec: SteadySpec) -> SteadyResult:
    """Runs `run_steady(spec)` in a fresh Python process and returns its result."""
    fields = await json_child("bench.steady", asdict(spec))
    fields["calls"] = [tuple(call) for call in fields["calls"]]
    return SteadyResult(**fields)


class CheckpointPoller:
    """Samples a projection's SQL checkpoint every `interval` seconds while it runs: (monotonic
    time, last_sequence) pairs, from which `lags` derives each command's projection lag."""

    def __init__(self, database_url: str, projection: str, interval: float = 0.02) -> None:
        self.engine = make_engine(database_url)
        self.query = select(checkpoints.c.last_sequence).where(
            checkpoints.c.projection == projection
        )
        self.interval = interval
        self.times: list[float] = []
        self.positions: list[int] = []
        self._task: asyncio.Task[None] | None = None

    def position(self) -> int:
        """The checkpoint now (0 before the projection wrote one)."""
        with self.engine.connect() as connection:
            return int(connection.execute(self.query).scalar() or 0)

    def sample(self) -> int:
        """Reads the checkpoint once and records it."""
        position = self.position()
        self.times.append(time.monotonic())
        self.positions.append(position)
        return position

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop_at(self, sequence: int, timeout: float) -> bool:
        """Keeps sampling until the checkpoint reaches `sequence` (or `timeout`), then stops;
        returns whether it was reached."""
        deadline = time.monotonic() + timeout
        while self.sample() < sequence:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(self.interval)
        if self._task is not None:
            self._task.cancel()
        self.engine.dispose()
        return self.positions[-1] >= sequence

    def lags(self, calls: Sequence[tuple[int, float, float, int]]) -> tuple[list[float], int]:
        """Each call's lag (answer -> first sample at or past its sequence, at least 0) and
        how many calls it never reached. Positions only grow, so a bisection finds it."""
        lags: list[float] = []
        missed = 0
        for _step, _issued, answered, sequence in calls:
            at = bisect.bisect_left(self.positions, sequence)
            if at == len(self.positions):
                missed += 1
                continue
            lags.append(max(0.0, self.times[at] - answered))
        return lags, missed


def main() -> None:
    spec = SteadySpec(**json.loads(sys.stdin.read()))
    sys.stdout.write(json.dumps(asdict(asyncio.run(run_steady(spec)))))


if __name__ == "__main__":
    main()
