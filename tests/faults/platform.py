"""The fault suite's platform: NATS and the four services as real OS processes, a load of
commands that clients resend with the same idempotency-key until acknowledged, and the two
checks every fault test ends with (the raw log holds each acknowledged command exactly once;
every read model equals its rebuild from the log)."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import yaml
from careops.common.v1 import admin_pb2, admin_pb2_grpc
from careops.customer.v1 import customer_pb2 as cpb
from careops.customer.v1 import customer_pb2_grpc
from careops.customer.v1 import types_pb2 as ct
from careops.incident.v1 import incident_pb2 as ipb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as it
from careops.ticketing.v1 import ticketing_pb2 as tpb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as tt
from careops_eventstore.nats_embedded import EmbeddedNats, EmbeddedNatsCluster, free_port
from careops_platform import requests
from sqlalchemy import MetaData, create_engine, select

from tests.receivers import HttpReceiver, http_receiver
from tests.support import (
    ServiceProcess,
    event_types,
    eventually_sync,
    read_log,
    wait_serving,
    with_idempotency_key,
)

SERVICES = ("ticketing", "customer", "incident", "quality")
STREAMS = {
    "ticketing": "CAREOPS_TICKETING",
    "customer": "CAREOPS_CUSTOMER",
    "incident": "CAREOPS_INCIDENT",
}
# Worth retrying with the same idempotency-key: the service or the log is (re)starting.
METHODS = {
    "ticketing": "/careops.ticketing.v1.TicketingService/OpenTicket",
    "customer": "/careops.customer.v1.CustomerProfileService/RegisterCustomer",
    "incident": "/careops.incident.v1.IncidentService/DeclareIncident",
}
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED,
}


def command_id(method: str, key: str) -> str:
    """The command id a service derives from an idempotency-key sent to `method`."""
    return with_idempotency_key(method, key, requests.command_id)


def _incident_config(directory: Path, http: HttpReceiver) -> dict[str, str]:
    """One team, one webhook on a local receiver, no escalation within a test's lifetime: the
    incident service's only asynchronous appends are the delivery records."""
    directory.mkdir(parents=True, exist_ok=True)
    oncall = {
        "teams": {
            "technical_support": {
                "members": [
                    {"id": "ts-alice", "contacts": [{"kind": "webhook", "address": http.url("/a")}]}
                ],
                "rotation": {
                    "members": ["ts-alice"],
                    "handoff": "09:00",
                    "time_zone": "UTC",
                    "shift_days": 3650,
                    "start_date": "2026-01-01",
                },
                "escalation": {"steps": [{"target": "oncall", "wait_seconds": 86400}]},
            }
        }
    }
    matrix = {"types": {"server_crash": {"teams": {"technical_support": "red"}}}}
    (directory / "oncall.yaml").write_text(yaml.safe_dump(oncall))
    (directory / "matrix.yaml").write_text(yaml.safe_dump(matrix))
    return {
        "CAREOPS_ONCALL_FILE": str(directory / "oncall.yaml"),
        "CAREOPS_RESPONSE_MATRIX_FILE": str(directory / "matrix.yaml"),
        "CAREOPS_WEBHOOK_SIGNING_KEY": "fault-suite",
    }


Send = Callable[[grpc.Channel, int, str], int]


def _open_ticket(channel: grpc.Channel, n: int, key: str) -> int:
    stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
    request = tpb.OpenTicketRequest(
        customer_id=f"C-fault-{n % 7}",
        channel=tt.CHANNEL_APP,
        type=tt.TICKET_TYPE_FAULT,
        priority=tt.PRIORITY_NORMAL,
        subject=f"fault {n}",
    )
    reply = stub.OpenTicket(request, timeout=5, metadata=(("idempotency-key", key),))
    return int(reply.sequence)


def _register_customer(channel: grpc.Channel, n: int, key: str) -> int:
    stub = customer_pb2_grpc.CustomerProfileServiceStub(channel)
    profile = ct.Profile(name=f"Fault {n}", email=f"fault.{n}.{key[-6:]}@example.com")
    reply = stub.RegisterCustomer(
        cpb.RegisterCustomerRequest(profile=profile),
        timeout=5,
        metadata=(("idempotency-key", key),),
    )
    return int(reply.sequence)


def _declare_incident(channel: grpc.Channel, n: int, key: str) -> int:
    stub = incident_pb2_grpc.IncidentServiceStub(channel)
    request = ipb.DeclareIncidentRequest(
        type="server_crash",
        title=f"fault {n}",
        factors=it.RiskFactors(users_affected=10, core_system=0.1),
    )
    reply = stub.DeclareIncident(request, timeout=5, metadata=(("idempotency-key", key),))
    return int(reply.sequence)


SENDERS: dict[str, Send] = {
    "ticketing": _open_ticket,
    "customer": _register_customer,
    "incident": _declare_incident,
}


@dataclass
class Writer:
    """Sends one service's commands in a loop; each is resent with its idempotency-key until
    acknowledged, also after `stop` (so every command sent is acknowledged in the end)."""

    platform: Platform
    service: str
    prefix: str
    acked: list[str] = field(default_factory=list)
    # (monotonic time of its first send, of its acknowledgement) per acknowledged command.
    timings: list[tuple[float, float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None

    def run(self, stop: threading.Event) -> None:
        send = SENDERS[self.service]
        n = 0
        while not stop.is_set():
            key = f"{self.prefix}-{self.service}-{n}"
            sent = time.monotonic()
            if self._until_acknowledged(send, n, key):
                self.timings.append((sent, time.monotonic()))
                self.acked.append(key)
            n += 1

    def resumed_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the acknowledgement of the first command sent after it
        (None: none yet): how long commands stopped for a fault at `moment`."""
        acks = [acked for sent, acked in list(self.timings) if sent >= moment]
        return min(acks) - moment if acks else None

    def _until_acknowledged(self, send: Send, n: int, key: str) -> bool:
        for _attempt in range(2000):
            process = self.platform.processes[self.service]
            try:
                with process.channel() as channel:
                    send(channel, n, key)
                return True
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
                if code not in RETRYABLE:
                    self.failures.append(f"{key}: {code} {exc.details()}")  # type: ignore[attr-defined]
                    return False
            # Client backoff before resending (not synchronisation): the victim is restarting.
            threading.Event().wait(0.05)
        self.failures.append(f"{key}: never acknowledged")
        return False


@dataclass
class Platform:
    """NATS (one server, or a cluster of `nodes` with streams replicated on each) plus every
    service, each a real process on its own ports and data directory."""

    root: Path
    receiver: HttpReceiver
    nodes: int = 1
    nats: EmbeddedNats | EmbeddedNatsCluster = field(init=False)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        hash_key = base64.b64encode(os.urandom(32)).decode()
        common = {"CAREOPS_CONTACT_HASH_KEY": hash_key, "CAREOPS_TIMER_INTERVAL_SECONDS": "0.2"}
        if self.nodes == 1:
            self.nats = EmbeddedNats(data_dir=self.root / "nats", port=free_port())
        else:
            self.nats = EmbeddedNatsCluster(data_dir=self.root / "nats", size=self.nodes)
            common["CAREOPS_STREAM_REPLICAS"] = str(self.nodes)
        extra = {"incident": _incident_config(self.root / "incident-config", self.receiver)}
        for name in SERVICES:
            data_dir = self.root / name
            data_dir.mkdir(parents=True)
            self.processes[name] = ServiceProcess(
                data_dir=data_dir,
                nats_url=self.nats.url,
                service=name,
                extra_env={**common, **extra.get(name, {})},
            )

    def start(self, *names: str) -> None:
        """Starts NATS and the named services (default: all)."""
        self.nats.start(log_file=self.root / "nats.log")
        self.restart(*(names or self.processes))

    def restart(self, *names: str) -> None:
        """Launches the named services together, then waits for each to serve."""
        for name in names:
            self.processes[name].launch()
        for name in names:
            self.processes[name].wait_serving()

    def crash(self, *victims: str) -> None:
        """kill -9 of the victims (services, or "nats"), then a restart on the same data."""
        services = [victim for victim in victims if victim != "nats"]
        for name in services:
            self.processes[name].kill()
        if "nats" in victims:
            self.nats.stop(kill=True)
            self.nats.start(log_file=self.root / "nats.log")
        self.restart(*services)
        for process in self.processes.values():  # health follows the log
            assert wait_serving(process.address, 60), f"{process.service} not serving again"

    def stop(self) -> None:
        for process in self.processes.values():
            process.kill()
        self.nats.stop()

    @contextmanager
    def load(self, prefix: str, *services: str) -> Iterator[list[Writer]]:
        """Runs one writer per named commanded service (default: each) until the block ends,
        then lets each finish (acknowledge) its command in flight."""
        stop = threading.Event()
        writers = [Writer(self, service, prefix) for service in services or SENDERS]
        for writer in writers:
            writer.thread = threading.Thread(target=writer.run, args=(stop,), daemon=True)
            writer.thread.start()
        try:
            yield writers
        finally:
            stop.set()
            for writer in writers:
                assert writer.thread is not None
                writer.thread.join(120)


def progress(writers: list[Writer], at_least: int) -> None:
    """Waits until every writer has had `at_least` more commands acknowledged."""
    targets = [(writer, len(writer.acked) + at_least) for writer in writers]
    eventually_sync(
        lambda: all(len(w.acked) >= target for w, target in targets),
        timeout=120,
        what=f"{at_least} more commands acknowledged by every writer",
    )


def assert_exactly_once(platform: Platform, writers: list[Writer]) -> None:
    """Scans each raw stream: every acknowledged command is in it exactly once."""
    for writer in writers:
        assert not writer.failures, writer.failures[:5]
        assert writer.acked, f"no {writer.service} command was ever acknowledged"
        messages = asyncio.run(read_log(platform.nats.url, STREAMS[writer.service]))
        counts = Counter(m.batch.events[0].command_id for m in messages if m.batch.events)
        missing = [k for k in writer.acked if counts[command_id(METHODS[writer.service], k)] == 0]
        doubled = [k for k in writer.acked if counts[command_id(METHODS[writer.service], k)] > 1]
        assert not missing, f"acknowledged {writer.service} commands not in the log: {missing[:5]}"
        assert not doubled, f"{writer.service} commands in the log twice: {doubled[:5]}"


def caught_up(stub: admin_pb2_grpc.ProjectionAdminServiceStub) -> list[str] | None:
    """The service's projections, once each has applied everything on its subjects: a
    projection of part of a stream (customer_incidents) is caught up at lag 0, short of the
    stream's last sequence."""
    listed = stub.ListProjections(admin_pb2.ListProjectionsRequest(), timeout=5).projections
    checked = [p for p in listed if p.kind == "projection"]
    if all(p.lag == 0 or p.last_sequence >= p.stream_last_sequence for p in checked):
        return [p.name for p in checked]
    return None


def reactions_idle(stub: admin_pb2_grpc.ProjectionAdminServiceStub) -> bool:
    """Whether every reaction has acknowledged everything on its subjects: none is retrying a
    message whose handling may still append (after a log outage, a router's assignments)."""
    listed = stub.ListProjections(admin_pb2.ListProjectionsRequest(), timeout=5).projections
    return all(p.lag == 0 for p in listed if p.kind == "reaction")


def positions(stub: admin_pb2_grpc.ProjectionAdminServiceStub) -> dict[str, tuple[int, int]]:
    """Each projection's position and its stream's last sequence."""
    listed = stub.ListProjections(admin_pb2.ListProjectionsRequest(), timeout=5).projections
    return {
        p.name: (p.last_sequence, p.stream_last_sequence) for p in listed if p.kind == "projection"
    }


def settled_dump(
    stub: admin_pb2_grpc.ProjectionAdminServiceStub, database: Path
) -> dict[str, list[tuple[Any, ...]]] | None:
    """The database dumped while caught up and still: no projection moved and nothing was
    appended to its stream during the dump (None: try again)."""
    before = positions(stub) if caught_up(stub) is not None else None
    if before is None:
        return None
    live = dump(database)
    return live if positions(stub) == before else None


def dump(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of a service's SQLite database, rows sorted: comparable as a whole."""
    engine = create_engine(f"sqlite:///{database}")
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        tables = {
            name: sorted((tuple(row) for row in connection.execute(select(table))), key=repr)
            for name, table in metadata.tables.items()
            if name != "alembic_version"
        }
    engine.dispose()
    return tables


def _deliveries_recorded(nats_url: str) -> bool:
    """True when every declared incident has its page's delivery on the log: the last of the
    incident service's own appends, after which the platform is idle."""
    messages = asyncio.run(read_log(nats_url, STREAMS["incident"]))
    declared, delivered = set(), set()
    for message in messages:
        kinds = event_types([message])
        if "careops.incident.v1.IncidentDeclared" in kinds:
            declared.add(message.subject)
        if "careops.incident.v1.NotificationDelivered" in kinds:
            delivered.add(message.subject)
    return bool(declared) and declared <= delivered


def assert_read_models_equal_rebuilds(platform: Platform) -> None:
    """Each service, idle and caught up: its read models equal their rebuild from the log."""
    eventually_sync(lambda: _deliveries_recorded(platform.nats.url), what="pages delivered")
    for process in platform.processes.values():
        if process.process is not None:
            assert_equals_rebuild(process)


def reached(
    stub: admin_pb2_grpc.ProjectionAdminServiceStub, applied: dict[str, tuple[int, int]]
) -> bool:
    """Whether every projection is caught up and back at (or past) its position in `applied`."""
    now = positions(stub)
    behind = [name for name, (at, _last) in applied.items() if now.get(name, (0, 0))[0] < at]
    return not behind and caught_up(stub) is not None


def _rebuild(stub: admin_pb2_grpc.ProjectionAdminServiceStub, projection: str) -> bool:
    """Starts the rebuild of `projection`; False while the log is unavailable (a clustered
    stream electing a leader), to try again."""
    try:
        stub.RebuildProjection(admin_pb2.RebuildProjectionRequest(name=projection), timeout=30)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
            raise
        return False
    return True


def assert_equals_rebuild(process: ServiceProcess, *, idle_reactions: bool = False) -> None:
    """Once caught up (and, with `idle_reactions`, once no reaction has work left that could
    append), the service's database equals itself after every projection (replayed from
    sequence 0) has caught up again."""
    with process.channel() as channel:
        stub = admin_pb2_grpc.ProjectionAdminServiceStub(channel)
        name = process.service
        if idle_reactions:
            eventually_sync(partial(reactions_idle, stub), timeout=60, what=f"{name} reactions")
        projections = eventually_sync(partial(caught_up, stub), what=f"{name} caught up")
        database = process.data_dir / f"{name}.db"
        live = eventually_sync(partial(settled_dump, stub, database), what=f"{name} settled")
        applied = positions(stub)  # settled: the positions of the dump
        for projection in projections:  # all at once; each restarts from sequence 0
            eventually_sync(
                partial(_rebuild, stub, projection), timeout=120, what=f"{projection} rebuild"
            )
        # Back where the live read models were (a lag of 0 alone is also what a projection
        # whose consumer the log has not created yet reports).
        eventually_sync(partial(reached, stub, applied), timeout=120, what=f"{name} rebuilt")
        rebuilt = dump(database)
    differing = [t for t in live if live[t] != rebuilt.get(t)]
    rows = {
        table: {
            "live only": sorted(set(live[table]) - set(rebuilt.get(table, [])), key=repr)[:5],
            "rebuilt only": sorted(set(rebuilt.get(table, [])) - set(live[table]), key=repr)[:5],
        }
        for table in differing
    }
    assert not differing, f"{name}: read models differ from their rebuild in {differing}: {rows}"


@contextmanager
def running_platform(root: Path, *services: str, nodes: int = 1) -> Iterator[Platform]:
    """NATS (a cluster of `nodes` above 1) and the named services (default: all) as processes,
    killed afterwards."""
    with http_receiver() as receiver:
        platform = Platform(root, receiver, nodes)
        try:
            platform.start(*services)
            yield platform
        finally:
            platform.stop()
