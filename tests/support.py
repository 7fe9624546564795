"""Shared test helpers: the one way to wait (`eventually`), a controllable clock (`FakeClock`),
services as real OS processes, read-model comparison and the fault-suite scale.

Tests never sleep to synchronise: they wait for a condition with `eventually` (or for a
projection with `min_sequence`), and prove "nothing happens before the deadline" by advancing a
`FakeClock` to just before it and running the scheduler once.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import inspect
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar, overload

import grpc
import pytest
from careops.ticketing.v1 import ticketing_pb2 as ticketing_pb
from careops.ticketing.v1 import types_pb2 as ticketing_types
from careops_cli.platform import wait_serving
from careops_eventstore import EventStore
from careops_eventstore.codec import DecodedEvent
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.model import EVENT_TYPE_HEADER, RecordedBatch
from careops_eventstore.nats_embedded import free_port
from careops_eventstore.projection import ProjectionRunner
from careops_eventstore.timers import TimerScheduler
from careops_platform import registry, requests
from careops_platform.identity import ADMIN, ONCALL, Principal
from careops_platform.internal_identity import (
    InternalSigner,
    embedded_key_path,
    identity_channel,
    identity_interceptors,
)
from careops_platform.local_issuer import LocalIssuer, load_private_key
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.descriptor import ServiceDescriptor
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from incident.application import INCIDENT_SUBJECTS
from incident.application import STREAM as INCIDENT_STREAM
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from ticketing.readmodels import tickets

T = TypeVar("T")

# Generous: a bound on how long a test may wait on a loaded machine, never a timing assertion.
DEFAULT_TIMEOUT = 30.0


class NotReached(AssertionError):
    """`eventually` ran out of time; the message names what was awaited."""


@overload
async def eventually(
    predicate: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...


@overload
async def eventually(
    predicate: Callable[[], T | None],
    *,
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...


async def eventually(
    predicate: Callable[[], Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.05,
    what: str = "",
) -> Any:
    """Polls `predicate` (sync or async) until it returns a truthy value, and returns that value.

    An exception raised by the predicate counts as "not yet" until the deadline, then is raised
    as the cause, so a predicate may call an RPC that is still UNAVAILABLE.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            last_error = None
        except AssertionError as exc:
            last_error = exc
        except Exception as exc:  # noqa: BLE001 - retried, then re-raised as the cause
            last_error = exc
        if time.monotonic() >= deadline:
            raise NotReached(f"not reached within {timeout} s: {what or predicate}") from last_error
        await asyncio.sleep(interval)


def eventually_sync(
    predicate: Callable[[], T | None],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """`eventually` for synchronous tests and threads (no event loop)."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_error = None
        except Exception as exc:  # noqa: BLE001 - retried, then re-raised as the cause
            last_error = exc
        if time.monotonic() >= deadline:
            raise NotReached(f"not reached within {timeout} s: {what or predicate}") from last_error
        time.sleep(interval)


# Who a test calling a service port directly is, unless it says otherwise.
ADMIN_TEST_PRINCIPAL = Principal("tester", frozenset({ADMIN}), "tests")


def on_call(member_id: str) -> Principal:
    """The principal of an on-call member as the gateway forwards it: the one who may
    acknowledge that member's page (docs/permissions.md, rule 2)."""
    return Principal(member_id, frozenset({ONCALL}), "tests")


SIGNING_KEY_ENV = "CAREOPS_INTERNAL_SIGNING_KEY_FILE"
VERIFY_KEY_ENV = "CAREOPS_INTERNAL_VERIFY_KEY_FILE"


def gateway_signer(data_dir: Path | str) -> InternalSigner:
    """Returns the signer a gateway on `data_dir` would use: the key file of
    CAREOPS_INTERNAL_SIGNING_KEY_FILE when a test set it, else the data dir's embedded key."""
    configured = os.environ.get(SIGNING_KEY_ENV)
    if configured:
        return InternalSigner(load_private_key(Path(configured)))
    return InternalSigner.embedded(data_dir)


@contextmanager
def shared_internal_key(directory: Path) -> Iterator[Path]:
    """Makes one internal key pair (in `directory`) the one of every gateway and service this
    process or its children start, through CAREOPS_INTERNAL_SIGNING_KEY_FILE and
    CAREOPS_INTERNAL_VERIFY_KEY_FILE, as a deployment does: for tests that put one gateway in
    front of services with data dirs of their own. Yields the private key's path."""
    key = ec.generate_private_key(ec.SECP256R1())
    signing, verify = directory / "internal-signing-key.pem", directory / "internal-verify-key.pem"
    directory.mkdir(parents=True, exist_ok=True)
    signing.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    verify.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SIGNING_KEY_ENV, str(signing))
        patch.setenv(VERIFY_KEY_ENV, str(verify))
        yield signing


def service_channel(
    address: str, data_dir: Path | str, principal: Principal = ADMIN_TEST_PRINCIPAL
) -> grpc.aio.Channel:
    """Returns a grpc.aio channel to a service port presenting `principal` as the gateway
    would: signed with the internal key a gateway on `data_dir` (the service's own data dir)
    signs with."""
    interceptors = identity_interceptors(gateway_signer(data_dir), principal)
    return grpc.aio.insecure_channel(address, interceptors=interceptors)


def channel_to(service: Any, principal: Principal = ADMIN_TEST_PRINCIPAL) -> grpc.aio.Channel:
    """`service_channel` to an in-process service (its port and its data dir)."""
    assert service.server is not None, "the service is not started"
    address = f"127.0.0.1:{service.server.port}"
    return service_channel(address, service.settings.data_dir, principal)


def sync_service_channel(
    address: str, data_dir: Path | str, principal: Principal = ADMIN_TEST_PRINCIPAL
) -> grpc.Channel:
    """`service_channel` for sync stubs (usable as a context manager too)."""
    signer = gateway_signer(data_dir)
    return identity_channel(grpc.insecure_channel(address), signer, principal)  # type: ignore[no-any-return]


class FakeClock:
    """A clock that moves only when told: pass it as a service's `clock`."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta | float) -> datetime:
        """Moves the clock forward by `by` (seconds or a timedelta); returns the new time."""
        self.now += by if isinstance(by, timedelta) else timedelta(seconds=by)
        return self.now

    def set(self, at: datetime) -> datetime:
        """Moves the clock to `at` (never backwards)."""
        assert at >= self.now, "a clock does not run backwards"
        self.now = at
        return self.now


def fault_scale() -> int:
    """CAREOPS_FAULT_SCALE: 1 in `make test` (small sizes), larger in `make faults`."""
    value = int(os.environ.get("CAREOPS_FAULT_SCALE", "1"))
    if value < 1:
        raise ValueError("CAREOPS_FAULT_SCALE must be a positive integer")
    return value


@dataclass
class ServiceProcess:
    """`python -m <service>.main` with its own ports and data directory."""

    data_dir: Path
    nats_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    service: str = "ticketing"
    args: list[str] = field(default_factory=list)  # e.g. ["--role", "api"]
    grpc_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def channel(self, principal: Principal = ADMIN_TEST_PRINCIPAL) -> grpc.Channel:
        """Returns a sync channel to the process presenting `principal` as the gateway would."""
        return sync_service_channel(self.address, self.data_dir, principal)

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        """Launches the process and waits until it reports SERVING."""
        return self.launch().wait_serving(timeout)

    def launch(self) -> ServiceProcess:
        """Launches the process without waiting (start several, then wait for each)."""
        env = {
            **os.environ,
            "CAREOPS_NATS_URL": self.nats_url,
            "CAREOPS_DATA_DIR": str(self.data_dir),
            f"CAREOPS_{self.service.upper()}_GRPC_PORT": str(self.grpc_port),
            f"CAREOPS_{self.service.upper()}_METRICS_PORT": str(self.metrics_port),
            **self.extra_env,
        }
        log = open(self.data_dir / "service.log", "ab")  # noqa: SIM115
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"{self.service}.main", *self.args],
            env=env,
            stdout=log,
            stderr=log,
        )
        return self

    def wait_serving(self, timeout: float = 60.0) -> ServiceProcess:
        """Waits until the launched process reports SERVING (kills it if it never does)."""
        assert self.process is not None
        exited = self.process.poll
        if not wait_serving(self.address, timeout, abort=lambda: exited() is not None):
            code = exited()
            self.kill()
            log = (self.data_dir / "service.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(
                f"{self.service} did not become healthy (exit code {code}): "
                f"{self.data_dir}/service.log ends:\n{log}"
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(20)


def metric_sum(metrics_port: int, name: str, **labels: str) -> float:
    """The sum of the samples `name` on 127.0.0.1:`metrics_port`/metrics whose labels include
    `labels` (0 when there are none)."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def gateway_process(
    data_dir: Path, nats_url: str, *, signs_for: ServiceProcess, **backends: str
) -> ServiceProcess:
    """Returns the gateway as a process (not started) in front of `backends` (name -> address),
    trusting the embedded issuer of `data_dir` (as `careops up` runs it), on free ports. It
    signs the identity it forwards with the embedded internal key of `signs_for`'s data dir,
    as if they shared one (start that service first: it creates the key)."""
    gateway = registry.service("gateway")
    env = {registry.service(name).addr_env: address for name, address in backends.items()}
    env[SIGNING_KEY_ENV] = str(embedded_key_path(signs_for.data_dir))
    env[gateway.http_port_env] = str(free_port())
    data_dir.mkdir(parents=True, exist_ok=True)
    return ServiceProcess(data_dir, nats_url, extra_env=env, service="gateway")


def cli_env(gateway: ServiceProcess, *roles: str, subject: str = "tester") -> dict[str, str]:
    """Returns the environment that points the CLI at `gateway` with a token of its issuer
    (default role: admin), as `careops token issue` would print it."""
    token = LocalIssuer(gateway.data_dir).issue(subject=subject, roles=roles or (ADMIN,))
    return {**os.environ, "CAREOPS_GATEWAY_ADDR": gateway.address, "CAREOPS_TOKEN": token}


def open_request(**overrides: object) -> ticketing_pb.OpenTicketRequest:
    """An OpenTicket request of a valid fault ticket; `overrides` replace its fields."""
    fields: dict[str, object] = {
        "customer_id": "C-1",
        "channel": ticketing_types.CHANNEL_EMAIL,
        "type": ticketing_types.TICKET_TYPE_FAULT,
        "priority": ticketing_types.PRIORITY_HIGH,
        "subject": "Printer shows E42",
        "description": "Since this morning",
    }
    fields.update(overrides)
    return ticketing_pb.OpenTicketRequest(**fields)  # type: ignore[arg-type]


def ticket_rows(engine: Engine) -> list[dict[str, Any]]:
    """Returns the ticket read model as comparable dicts, ordered by id."""
    with Session(engine) as session:
        rows = session.execute(select(tickets).order_by(tickets.c.ticket_id)).mappings().all()
    return [dict(row) for row in rows]


def apply_one_at_a_time(
    engine: Engine, projection: Any, codec: Any, log: Collection[RecordedBatch]
) -> None:
    """Applies each event of `log` that `codec` knows in a transaction of its own, outside any
    batch (every write at once): the reference a batched projection's rows are compared to."""
    for message in log:
        for envelope in message.batch.events:
            if not codec.knows(envelope.type):
                continue
            with engine.begin() as connection:
                decoded = DecodedEvent(codec.decode(envelope), envelope)
                projection.apply(connection, decoded, message.sequence)


def tables_content(engine: Engine, projection: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the projection's tables, sorted, by table name."""
    with engine.connect() as connection:
        return {
            table.name: sorted(tuple(row) for row in connection.execute(select(table)))
            for table in projection.tables
        }


async def read_log(nats_url: str, stream: str, subject: str = "") -> list[RecordedBatch]:
    """Every message of `stream` (or of one subject of it) as stored: the raw log, in order."""
    nc = await connect(nats_url, name="careops-tests-log")
    try:
        store = JetStreamEventStore(nc)
        if subject:
            return await store.read_subject(stream=stream, subject=subject)
        found: list[RecordedBatch] = []
        while page := await store.read_stream(
            stream=stream, after_sequence=found[-1].sequence if found else 0, limit=500
        ):
            found.extend(page)
        return found
    finally:
        await nc.close()


def field_violations(error: grpc.RpcError) -> list[str]:
    """The fields an INVALID_ARGUMENT names (its google.rpc.BadRequest details), in order."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    fields: list[str] = []
    for detail in status.details if status else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            fields.extend(v.field for v in bad.field_violations)
    return fields


def event_types(messages: list[RecordedBatch]) -> list[str]:
    """The event types of `messages`, in log order (a message may hold several events)."""
    return [kind for m in messages for kind in m.headers[EVENT_TYPE_HEADER].split(",")]


def incident_event_types(nats_url: str, incident_id: str) -> list[str]:
    """The event types on the log for one incident (sync: for tests without an event loop)."""
    subject = f"{INCIDENT_SUBJECTS}.{incident_id}"
    return event_types(asyncio.run(read_log(nats_url, INCIDENT_STREAM.name, subject)))


class InProcessService(Protocol):
    """What the in-process services (TicketingService, IncidentService, ...) have in common."""

    store: JetStreamEventStore | None
    runners: dict[str, ProjectionRunner]
    scheduler: TimerScheduler | None


async def projected(
    service: InProcessService, *names: str, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Waits until the named projections (default: all) have applied everything already on
    their streams: read-your-writes for a test that did not keep the sequences it wrote."""
    assert service.store is not None
    for name in names or tuple(service.runners):
        runner = service.runners[name]
        last = await service.store.last_sequence(runner.stream)
        assert await runner.wait_for(last, timeout), f"projection {name} did not reach {last}"


async def fire_due_timers(service: InProcessService, timer_projection: str) -> int:
    """Runs the service's scheduler once at its clock's time, after the timer table has caught
    up with the log; returns how many it attempted. On a FakeClock a timer fires only once the
    clock has passed its due time, so advancing to just before it and calling this proves
    "nothing happens before the deadline" without waiting."""
    assert service.scheduler is not None
    await projected(service, timer_projection)
    return await service.scheduler.tick()


def with_idempotency_key(method: str, key: str, derive: Callable[[], T]) -> T:
    """Runs a careops_platform.requests helper (`command_id`, `derived_id`) as the server's
    interceptor does for a call of `method` (its full path) carrying idempotency-key `key`."""
    token = requests.IDEMPOTENCY_KEY.set(f"{method}:{key}")
    try:
        return derive()
    finally:
        requests.IDEMPOTENCY_KEY.reset(token)


def command_ids(service: ServiceDescriptor, key: str) -> set[str]:
    """Returns the command id every method of `service` would derive from `key`."""
    return {
        with_idempotency_key(f"/{service.full_name}/{method.name}", key, requests.command_id)
        for method in service.methods
    }


async def appended_by(
    store: EventStore, before: Mapping[str, int], commands: Collection[str]
) -> list[str]:
    """Returns the streams that got a message of one of `commands` after the sequences in
    `before`. "A rejected call appends nothing", checked this way, holds on a busy log: other
    messages (a timer firing, a reaction to an earlier call) are not that call's doing."""
    streams = []
    for stream, last in before.items():
        for recorded in await store.read_stream(stream=stream, after_sequence=last):
            ids = {recorded.headers.get("Nats-Msg-Id", "")}
            ids |= {envelope.command_id for envelope in recorded.batch.events}
            if ids & set(commands):
                streams.append(stream)
    return streams


_KEY_STORES: dict[tuple[str, str], dict[str, str]] = {}


def shared_key_store(nats_url: str, service: str) -> dict[str, str]:
    """Settings under which every instance of `service` on one NATS server shares one key store
    and master key (`master_key`, `keystore_url`), as replicas must: each reads the free text the
    others sealed on the shared log. Created once per server in a temporary directory."""
    key = (nats_url, service)
    if key not in _KEY_STORES:
        directory = tempfile.mkdtemp(prefix=f"careops-{service}-keys-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        _KEY_STORES[key] = {
            "master_key": base64.b64encode(os.urandom(32)).decode(),
            "keystore_url": f"sqlite:///{Path(directory) / 'keys.db'}",
        }
    return _KEY_STORES[key]


def shared_key_store_env(nats_url: str, service: str) -> dict[str, str]:
    """`shared_key_store` as the environment of a service process."""
    entry = registry.service(service)
    return {entry.env(name): value for name, value in shared_key_store(nats_url, service).items()}
