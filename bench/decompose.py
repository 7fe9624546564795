"""Where an OpenTicket's CPU goes: the gRPC benchmark repeated with parts of the service
switched off. A diagnostic, not part of `bench.run`: `python -m bench.decompose`.

Each variant starts a fresh NATS and TicketingService with some pieces patched out (restored
afterwards): the server interceptors, the response's ticket_to_proto (replaced by a ticket
with only id and version), the projections (ticket list and SLA timers) and the SLA timer
scheduler. The difference in service CPU per call between variants is what that piece costs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from tempfile import TemporaryDirectory
from typing import Any
from unittest import mock

from careops.ticketing.v1 import ticketing_pb2 as pb
from ticketing.main import TicketingService, TicketingSettings

from bench.common import CLIENTS, Report, embedded_nats
from bench.grpc_load import load_from_child
from bench.open_ticket import open_ticket_load

PIECES = ("interceptors", "ticket_to_proto", "projections", "timers")


def _bare_ticket(ticket: Any, version: int, app: Any, *, at: Any = None) -> pb.Ticket:
    return pb.Ticket(ticket_id=ticket.ticket_id, version=version)


@contextmanager
def without(pieces: tuple[str, ...]) -> Iterator[None]:
    with ExitStack() as stack:
        if "interceptors" in pieces:
            stack.enter_context(
                mock.patch("careops_platform.server.default_interceptors", lambda *_a: [])
            )
        if "ticket_to_proto" in pieces:
            stack.enter_context(mock.patch("ticketing.grpc_api.ticket_to_proto", _bare_ticket))
        yield


def worker_parts(pieces: tuple[str, ...]) -> str:
    """CAREOPS_WORKER_PARTS without the pieces switched off (ticketing's background work is
    its SLA timer scheduler)."""
    off = {"projections": "projections", "timers": "background"}
    return ",".join(
        part
        for part in ("projections", "reactions", "background")
        if part not in {off[piece] for piece in pieces if piece in off}
    )


async def variant(pieces: tuple[str, ...], requests: int) -> dict[str, Any]:
    with (
        without(pieces),
        embedded_nats() as server,
        TemporaryDirectory(prefix="careops-bench-") as directory,
    ):
        service = TicketingService(
            TicketingSettings(
                nats_url=server.url,
                data_dir=directory,
                grpc_port=0,
                metrics_port=0,
                shutdown_grace_seconds=0,
                worker_parts=worker_parts(pieces),
            )
        )
        await service.start()
        try:
            assert service.server is not None and server.process is not None
            result = await load_from_child(
                open_ticket_load(
                    f"127.0.0.1:{service.server.port}",
                    requests,
                    identity_data_dir=directory,
                    watch_pids=(os.getpid(),),
                )
            )
        finally:
            await service.stop()
    calls = len(result.latencies)
    return {
        **result.summary(),
        "service_cpu_ms_per_call": round(result.watched_cpu_s[0] / calls * 1000, 3),
        "service_cpu_share": result.cpu_share(0),
    }


async def main(requests: int, repeat: int) -> dict[str, Any]:
    variants: list[tuple[str, ...]] = [(), *((piece,) for piece in PIECES), PIECES]
    results = {}
    report = Report(
        f"OpenTicket over gRPC, {CLIENTS} clients, with pieces switched off "
        f"(best of {repeat} runs by CPU per call)"
    )
    full_cpu = 0.0
    for pieces in variants:
        name = "everything on" if not pieces else "without " + " + ".join(pieces)
        runs = [await variant(pieces, requests) for _ in range(repeat)]
        row = min(runs, key=lambda run: run["service_cpu_ms_per_call"])
        results[name] = row
        full_cpu = full_cpu or row["service_cpu_ms_per_call"]
        report.add(
            variant=name,
            ops_s=row["ops_s"],
            p50_ms=row["p50_ms"],
            cpu_ms_per_call=row["service_cpu_ms_per_call"],
            saved_ms=round(full_cpu - row["service_cpu_ms_per_call"], 3),
            cpu_service=row["service_cpu_share"],
        )
    report.show()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4800)
    parser.add_argument("--repeat", type=int, default=2, help="runs per variant; best is kept")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(args.requests, args.repeat))
