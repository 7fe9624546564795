"""Poison never stalls a projection or a reaction (issue 9, items 1-5).

All four services run in-process on one log. Into every context's stream go, one after another,
the poison kinds of POISON (on a fresh aggregate subject each, except `wrong_subject`, which is
on a subject of the stream outside the aggregates), then one good message made through the
service's API. For every projection and reaction of every service, parametrized by service and
poison kind: the good message after the poison is applied (handled), and the poison it reads is
counted and parked where `ListParked` shows it.

The module runs its own nats-server: the poison written here must not reach the streams every
other test of the session shares.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import pytest
from careops.common.v1 import admin_pb2, admin_pb2_grpc
from careops.customer.v1 import customer_pb2 as cpb
from careops.customer.v1 import customer_pb2_grpc
from careops.customer.v1 import types_pb2 as ct
from careops.events.v1.envelope_pb2 import EventBatch
from careops.incident.v1 import incident_pb2 as ipb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as it
from careops.quality.v1 import quality_pb2 as qpb
from careops.quality.v1 import quality_pb2_grpc
from careops.ticketing.v1 import ticketing_pb2 as tpb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as tt
from careops_cli.main import app as cli
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.model import LogUnavailable, RecordedBatch, StreamSpec
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from careops_eventstore.projection import ProjectionRunner
from careops_eventstore.reactions import ReactionRunner
from careops_eventstore.sqlstate import ParkedMessage, list_parked
from customer.main import CustomerService, CustomerSettings
from gateway.tests.conftest import address, running_gateway
from gateway.tests.issuer import shared_issuer
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from incident.main import IncidentService, IncidentSettings
from nats.aio.client import Client as NatsClient
from prometheus_client import REGISTRY
from quality.main import QualityService, QualitySettings
from ticketing.main import TicketingService, TicketingSettings
from typer.testing import CliRunner

from tests.support import channel_to, eventually, shared_internal_key

T = TypeVar("T")
SERVICES = ("ticketing", "customer", "incident", "quality")
POISON = ("empty", "garbage", "unknown_type", "unknown_enum", "wrong_subject")
# The reason each kind is parked with (unknown_enum: only if the consumer's code rejects it).
REASONS = {
    "empty": "undecodable",
    "garbage": "undecodable",
    "unknown_type": "unknown_type",
    "unknown_enum": "failed",
    "wrong_subject": "undecodable",
}
# Stream -> (aggregate subject prefix, context): where each context's aggregates live.
STREAMS = {
    "CAREOPS_TICKETING": ("careops.ticketing.ticket", "ticketing"),
    "CAREOPS_CUSTOMER": ("careops.customer.customer", "customer"),
    "CAREOPS_INCIDENT": ("careops.incident.incident", "incident"),
    "CAREOPS_QUALITY": ("careops.quality.survey", "quality"),
}
GARBAGE = b"\xff\xfe\x00 not protobuf \x9c"
UNKNOWN_ENUM = 999  # no CareOps enum defines it; the codec reads it as "unspecified"


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, `>` the rest."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > index
        if index >= len(tokens) or token not in ("*", tokens[index]):
            return False
    return len(tokens) == len(wanted)


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def skip_counter(consumer: ProjectionRunner | ReactionRunner, reason: str) -> float:
    """The counter a skip of `reason` increments for this projection or reaction."""
    if isinstance(consumer, ProjectionRunner):
        labels = {"projection": consumer.projection.name, "reason": reason}
        return sample("careops_projection_skipped_total", labels)
    return sample(
        "careops_reaction_messages_total", {"reaction": consumer.name, "outcome": "parked"}
    )


@dataclass
class Injected:
    """One poison message in the log."""

    stream: str
    subject: str
    sequence: int


@dataclass
class Staged:
    services: dict[str, Any]
    nc: NatsClient
    store: JetStreamEventStore
    poison: dict[tuple[str, str], Injected]  # (stream, kind) -> where it went
    good: dict[str, int]  # stream -> sequence of the good message after the poison
    counters: dict[tuple[str, str], float]  # (consumer, reason) -> before the poison
    first: dict[str, Good] = field(default_factory=dict)  # the good messages before
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)


def consumers(service: Any) -> list[ProjectionRunner | ReactionRunner]:
    """Every projection and reaction a running service has."""
    return [*service.runners.values(), *service.reaction_runners]


def name_of(consumer: ProjectionRunner | ReactionRunner) -> str:
    return consumer.projection.name if isinstance(consumer, ProjectionRunner) else consumer.name


def with_unknown_enums(batch: EventBatch, old_id: str, new_id: str) -> EventBatch:
    """A copy of a real batch for another aggregate, every enum field of its payloads set to a
    number no enum defines (a newer producer's value)."""
    copy = EventBatch()
    copy.CopyFrom(batch)
    for envelope in copy.events:
        envelope.event_id = uuid.uuid4().hex
        envelope.command_id = uuid.uuid4().hex
        envelope.aggregate_id = new_id
        descriptor = descriptor_pool.Default().FindMessageTypeByName(envelope.type)
        payload = message_factory.GetMessageClass(descriptor)()
        envelope.payload.Unpack(payload)
        _poison_enums(payload, old_id, new_id)
        envelope.payload.Pack(payload)
    return copy


def _poison_enums(message: Message, old_id: str, new_id: str) -> None:
    for fd in message.DESCRIPTOR.fields:
        if fd.is_repeated:
            continue
        if fd.enum_type is not None:
            setattr(message, fd.name, UNKNOWN_ENUM)
        elif fd.type == FieldDescriptor.TYPE_STRING and getattr(message, fd.name) == old_id:
            setattr(message, fd.name, new_id)
        elif fd.message_type is not None and message.HasField(fd.name):
            _poison_enums(getattr(message, fd.name), old_id, new_id)


@dataclass(frozen=True)
class Good:
    """The good messages one `make_good` wrote into a stream."""

    first: int  # its first: an aggregate's creation
    last: int
    aggregate_id: str


async def make_good(channels: dict[str, grpc.aio.Channel]) -> dict[str, Good]:
    """Real commands in every context; returns where they went, by stream."""
    token = uuid.uuid4().hex[:8]
    ticketing = ticketing_pb2_grpc.TicketingServiceStub(channels["ticketing"])
    opened = await ticketing.OpenTicket(
        tpb.OpenTicketRequest(
            customer_id=f"walk-in-{token}",
            channel=tt.CHANNEL_EMAIL,
            type=tt.TICKET_TYPE_COMPLAINT,
            priority=tt.PRIORITY_NORMAL,
            subject="Parcel arrived broken",
        )
    )
    resolved = await ticketing.ResolveTicket(
        tpb.ResolveTicketRequest(ticket_id=opened.ticket.ticket_id, resolution="replaced")
    )
    customer = customer_pb2_grpc.CustomerProfileServiceStub(channels["customer"])
    registered = await customer.RegisterCustomer(
        cpb.RegisterCustomerRequest(
            profile=ct.Profile(name="Poison Tester", email=f"p.{token}@example.com")
        )
    )
    incident = incident_pb2_grpc.IncidentServiceStub(channels["incident"])
    declared = await incident.DeclareIncident(
        ipb.DeclareIncidentRequest(
            type="server_crash", title="One rack down", factors=it.RiskFactors(users_affected=3)
        )
    )
    quality = quality_pb2_grpc.QualityServiceStub(channels["quality"])
    survey = await quality.SubmitSurvey(
        qpb.SubmitSurveyRequest(
            ticket_id=opened.ticket.ticket_id,
            csat=4,
            nps=8,
            comment="fine",
            ticketing_min_sequence=resolved.sequence,
        )
    )
    return {
        "CAREOPS_TICKETING": Good(opened.sequence, resolved.sequence, opened.ticket.ticket_id),
        "CAREOPS_CUSTOMER": Good(
            registered.sequence, registered.sequence, registered.customer.customer_id
        ),
        "CAREOPS_INCIDENT": Good(
            declared.sequence, declared.sequence, declared.incident.incident_id
        ),
        "CAREOPS_QUALITY": Good(survey.sequence, survey.sequence, ""),
    }


async def inject(
    nc: NatsClient, store: JetStreamEventStore, stream: str, kind: str, first: int
) -> Injected:
    prefix, context = STREAMS[stream]
    aggregate_id = f"P-{kind}-{uuid.uuid4().hex[:8]}"
    subject = f"{prefix}.{aggregate_id}"
    if kind == "empty":
        data = b""
    elif kind in ("garbage", "wrong_subject"):
        data = GARBAGE
        if kind == "wrong_subject":
            subject = f"careops.{context}.poison.{aggregate_id}"
    elif kind == "unknown_type":
        batch = EventBatch()
        batch.events.add(
            event_id=uuid.uuid4().hex,
            type=f"careops.{context}.v99.FromTheFuture",
            aggregate_id=aggregate_id,
        )
        data = batch.SerializeToString()
    else:
        [original] = await store.read_stream(stream=stream, after_sequence=first - 1, limit=1)
        old_id = original.batch.events[0].aggregate_id
        data = with_unknown_enums(original.batch, old_id, aggregate_id).SerializeToString()
    ack = await nc.jetstream().publish(subject, data, stream=stream)
    return Injected(stream, subject, ack.seq)


@pytest.fixture(scope="module")
async def staged(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Staged]:
    data = tmp_path_factory.mktemp("poison")
    # One internal key for the services and the gateway of the CLI test (data dirs differ),
    # set before any settings are read.
    keys = ExitStack()
    keys.enter_context(shared_internal_key(data / "internal-key"))
    nats = EmbeddedNats(data_dir=data / "nats", port=free_port())
    nats.start(log_file=data / "nats.log")
    hash_key = base64.b64encode(os.urandom(32)).decode()
    common: dict[str, Any] = {
        "nats_url": nats.url,
        "grpc_port": 0,
        "metrics_port": 0,
        "shutdown_grace_seconds": 0,
    }
    services: dict[str, Any] = {
        "ticketing": TicketingService(
            TicketingSettings(data_dir=str(data / "t"), contact_hash_key=hash_key, **common)
        ),
        "customer": CustomerService(
            CustomerSettings(
                data_dir=str(data / "c"),
                contact_hash_key=hash_key,
                segment_initial_delay_seconds=3600,
                **common,
            )
        ),
        "incident": IncidentService(IncidentSettings(data_dir=str(data / "i"), **common)),
        "quality": QualityService(QualitySettings(data_dir=str(data / "q"), **common)),
    }
    try:
        async with AsyncExitStack() as stack:
            channels: dict[str, grpc.aio.Channel] = {}
            for name, service in services.items():
                await service.start()
                stack.push_async_callback(service.stop)
                channels[name] = channel_to(service)
                stack.push_async_callback(channels[name].close)
            nc = await connect(nats.url, name="poison-tests")
            stack.push_async_callback(nc.close)
            store = JetStreamEventStore(nc)
            counters = {
                (name_of(consumer), reason): skip_counter(consumer, reason)
                for service in services.values()
                for consumer in consumers(service)
                for reason in (*REASONS.values(), "ignored")
            }
            first = await make_good(channels)
            poison = {
                (stream, kind): await inject(nc, store, stream, kind, first[stream].first)
                for stream in STREAMS
                for kind in POISON
            }
            good = {stream: made.last for stream, made in (await make_good(channels)).items()}
            yield Staged(services, nc, store, poison, good, counters, first, channels)
    finally:
        nats.stop()
        keys.close()


def parked_rows(service: Any, consumer: str) -> list[ParkedMessage]:
    with service.engine.connect() as connection:
        return list_parked(connection, consumers=[consumer], limit=1000)


async def caught_up(consumer: ProjectionRunner | ReactionRunner, sequence: int) -> bool:
    """The consumer applied (handled) everything of its subjects up to `sequence`, the good
    message after the poison. A reaction that does not read the aggregates' subjects (e.g.
    ticketing's SLA policy applier, on careops.ticketing.policy.sla) never sees that message,
    so its ack floor stays before it: for it, nothing left pending is caught up."""
    if isinstance(consumer, ProjectionRunner):
        return consumer.position >= sequence
    status = await consumer.status()
    prefix, _ = STREAMS.get(consumer.stream, (consumer.filter_subject.removesuffix(".>"), ""))
    reads_aggregates = matches(consumer.filter_subject, f"{prefix}.any")
    return (status.position >= sequence or not reads_aggregates) and status.lag == 0


@pytest.mark.parametrize("kind", POISON)
@pytest.mark.parametrize("service_name", SERVICES)
async def test_poison_is_parked_and_the_next_message_applied(
    staged: Staged, service_name: str, kind: str
) -> None:
    service = staged.services[service_name]
    checked = consumers(service)
    assert checked, f"{service_name} has no projections or reactions"
    for consumer in checked:
        name = name_of(consumer)
        injected = staged.poison[(consumer.stream, kind)]
        good = staged.good[consumer.stream]

        async def past_it(
            consumer: ProjectionRunner | ReactionRunner = consumer, good: int = good
        ) -> bool:
            return await caught_up(consumer, good)

        await eventually(past_it)
        rows = [row for row in parked_rows(service, name) if row.sequence == injected.sequence]
        reason = REASONS[kind]
        if not matches(consumer.filter_subject, injected.subject):
            assert rows == [], f"{name} parked a message it does not read"
            continue
        if kind == "unknown_enum" and not rows:
            continue  # its code took the unspecified value in its stride: applied, not parked
        assert [(row.reason, row.stream, row.subject) for row in rows] == [
            (reason, injected.stream, injected.subject)
        ], f"{name}: {kind} not parked"
        assert skip_counter(consumer, reason) > staged.counters[(name, reason)], name


async def test_an_unspecified_enum_is_parked_by_the_ticket_list(staged: Staged) -> None:
    """Item 2: TicketOpened with an unknown channel raised inside `tickets` and stopped it."""
    injected = staged.poison[("CAREOPS_TICKETING", "unknown_enum")]
    rows = parked_rows(staged.services["ticketing"], "tickets")
    assert [row.reason for row in rows if row.sequence == injected.sequence] == ["failed"]


async def test_known_types_a_projection_does_not_map_are_ignored_not_unknown(
    staged: Staged,
) -> None:
    """customer_incidents reads the incident stream's incident events only: the team and matrix
    messages the stream starts with are filtered out; the incident events it does not map are
    counted as ignored; only the one event type nobody defines is unknown (and parked)."""
    service = staged.services["customer"]
    runner = service.runners["customer_incidents"]
    assert runner.position >= staged.good["CAREOPS_INCIDENT"]
    assert skip_counter(runner, "ignored") > staged.counters[("customer_incidents", "ignored")]
    unknown = parked_rows(service, "customer_incidents")
    assert [row.event_type for row in unknown if row.reason == "unknown_type"] == [
        "careops.incident.v99.FromTheFuture"
    ]


async def test_the_admin_service_lists_every_projection_and_reaction_with_lag_and_parked(
    staged: Staged,
) -> None:
    for name, service in staged.services.items():
        stub = admin_pb2_grpc.ProjectionAdminServiceStub(staged.channels[name])
        listed = await stub.ListProjections(admin_pb2.ListProjectionsRequest())
        by_name = {item.name: item for item in listed.projections}
        assert set(by_name) == {name_of(consumer) for consumer in consumers(service)}
        for consumer in consumers(service):
            item = by_name[name_of(consumer)]
            kind = "projection" if isinstance(consumer, ProjectionRunner) else "reaction"
            assert item.kind == kind and item.filter_subject == consumer.filter_subject
            assert not item.stalled
            assert item.parked == len(parked_rows(service, item.name))
        parked = await stub.ListParked(admin_pb2.ListParkedRequest(limit=1000))
        assert {item.name for item in parked.parked} <= set(by_name)
        assert parked.parked and all(item.sequence > 0 and item.stream for item in parked.parked)
    stub = admin_pb2_grpc.ProjectionAdminServiceStub(staged.channels["ticketing"])
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.ListParked(admin_pb2.ListParkedRequest(name="no-such-projection"))
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND


async def test_a_filtered_projection_rebuilds_over_a_stream_with_foreign_subjects(
    staged: Staged,
) -> None:
    """Item 1: `projections rebuild customer_incidents` waited for the stream's last sequence,
    which a filtered projection never reaches."""
    stub = admin_pb2_grpc.ProjectionAdminServiceStub(staged.channels["customer"])
    await staged.nc.jetstream().publish("careops.incident.poison.after", GARBAGE)
    rebuilt = await stub.RebuildProjection(
        admin_pb2.RebuildProjectionRequest(name="customer_incidents", wait=True), timeout=20
    )
    assert rebuilt.status.last_sequence >= staged.good["CAREOPS_INCIDENT"]
    assert rebuilt.status.lag == 0
    assert rebuilt.status.last_sequence < rebuilt.status.stream_last_sequence


async def test_poison_on_an_aggregate_subject_leaves_it_usable(staged: Staged) -> None:
    """Item 3: an undecodable message (and an undecodable event) on a ticket's and an
    incident's subject made every command and query on them INTERNAL."""
    ticket_sequence = staged.first["CAREOPS_TICKETING"].first
    ticket_id = staged.first["CAREOPS_TICKETING"].aggregate_id
    incident_id = staged.first["CAREOPS_INCIDENT"].aggregate_id
    js = staged.nc.jetstream()
    folded = {"stream": "CAREOPS_TICKETING", "reason": "undecodable"}
    before = sample("careops_eventstore_fold_skipped_total", folded)
    await js.publish(f"careops.ticketing.ticket.{ticket_id}", GARBAGE)
    [original] = await staged.store.read_stream(
        stream="CAREOPS_TICKETING", after_sequence=ticket_sequence - 1, limit=1
    )
    odd = original.batch.__class__()
    odd.CopyFrom(original.batch)
    odd.events[0].payload.value = GARBAGE  # the envelope is fine; its payload is not
    await js.publish(f"careops.ticketing.ticket.{ticket_id}", odd.SerializeToString())
    await js.publish(f"careops.incident.incident.{incident_id}", b"")
    ticketing = ticketing_pb2_grpc.TicketingServiceStub(staged.channels["ticketing"])
    replied = await ticketing.AddReply(
        tpb.AddReplyRequest(ticket_id=ticket_id, author=tt.AUTHOR_AGENT, body="On it")
    )
    assert replied.sequence > ticket_sequence
    got = await ticketing.GetTicket(tpb.GetTicketRequest(ticket_id=ticket_id))
    assert got.ticket.ticket_id == ticket_id
    assert sample("careops_eventstore_fold_skipped_total", folded) > before
    incident = incident_pb2_grpc.IncidentServiceStub(staged.channels["incident"])
    found = await incident.GetIncident(ipb.GetIncidentRequest(incident_id=incident_id))
    assert found.incident.incident_id == incident_id


async def test_the_cli_lists_every_service_by_default_and_their_parked_messages(
    staged: Staged,
) -> None:
    """Item 5: `careops projections list` showed one service unless asked, and no reactions.
    Issue 11: it asks every service through the gateway (one address, an on-call's token)."""
    backends = {
        name: f"127.0.0.1:{service.server.port}" for name, service in staged.services.items()
    }
    async with running_gateway(None, **backends) as gateway:
        env = {
            "CAREOPS_GATEWAY_ADDR": address(gateway),
            "CAREOPS_TOKEN": shared_issuer().token("oncall-1", ("oncall",)),
        }
        runner = CliRunner()
        # The blocking CLI runs in a thread: the services answer on this test's event loop.
        listed = await asyncio.to_thread(
            runner.invoke, cli, ["projections", "list", "--json"], env=env
        )
        assert listed.exit_code == 0, listed.output
        rows = json.loads(listed.stdout)
        assert {(row["service"], row["name"]) for row in rows} == {
            (name, name_of(consumer))
            for name, service in staged.services.items()
            for consumer in consumers(service)
        }
        assert {row["kind"] for row in rows} == {"projection", "reaction"}
        parked = await asyncio.to_thread(
            runner.invoke,
            cli,
            ["projections", "parked", "--service", "ticketing", "--name", "tickets", "--json"],
            env=env,
        )
    assert parked.exit_code == 0, parked.output
    reasons = {row["reason"] for row in json.loads(parked.stdout)}
    assert reasons == {"undecodable", "unknown_type", "failed"}


async def test_a_reaction_retries_transient_failures_and_parks_the_rest(staged: Staged) -> None:
    """Item 4: a reaction retried a bad payload forever, about once a second."""
    stream = f"POISON_{uuid.uuid4().hex[:8].upper()}"
    subject = stream.lower()
    await staged.store.ensure_stream(StreamSpec(stream, (f"{subject}.>",)))
    seen: list[str] = []

    async def handle(message: RecordedBatch) -> None:
        note = message.batch.events[0].aggregate_id
        seen.append(note)
        if note == "bad":
            raise KeyError("no such team")  # the data is wrong: retrying cannot help
        if note == "flaky" and seen.count("flaky") == 1:
            raise LogUnavailable("the log blinked")  # transient: retried

    engine = staged.services["incident"].engine
    reaction = ReactionRunner(
        nc=staged.nc,
        engine=engine,
        name=f"test-{subject}",
        stream=stream,
        filter_subject=f"{subject}.>",
        handle=handle,
        concurrency=1,
        retry_delay_seconds=0.05,
    )
    reaction.start()
    try:
        for note in ("bad", "flaky", "good"):
            batch = EventBatch()
            batch.events.add(type="careops.incident.v1.IncidentDeclared", aggregate_id=note)
            await staged.nc.jetstream().publish(f"{subject}.x", batch.SerializeToString())

        async def done() -> bool:
            return await caught_up(reaction, 3)

        await eventually(done)
    finally:
        await reaction.stop()
    assert seen.count("bad") == 1 and seen.count("flaky") == 2 and seen.count("good") == 1
    [parked] = parked_rows(staged.services["incident"], reaction.name)
    assert (parked.sequence, parked.reason, parked.stream) == (1, "failed", stream)
    assert "KeyError" in parked.detail
