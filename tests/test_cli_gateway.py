"""The CLI goes through the gateway (issue 11 item 8): one address, `CAREOPS_GATEWAY_ADDR`, and
a bearer token, `CAREOPS_TOKEN` or the one `careops login` stored in the data dir. No token, a
bad one or a role without the permission is refused with what to do, and the actor of what a
command causes is the token's subject."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from careops.customer.v1 import customer_pb2 as cpb
from careops.customer.v1 import customer_pb2_grpc
from careops.customer.v1 import types_pb2 as ct
from careops.quality.v1 import quality_pb2 as qpb
from careops.quality.v1 import quality_pb2_grpc
from careops.ticketing.v1 import ticketing_pb2 as tpb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as tt
from careops_cli.main import app
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from careops_platform.local_issuer import DEFAULT_AUDIENCE, LocalIssuer
from customer.tests.conftest import running_customer
from gateway.main import GatewayService
from gateway.tests.certificates import make_pair
from gateway.tests.conftest import address, running_gateway
from ticketing.application import SUBJECT_PREFIX
from ticketing.tests.conftest import running_service
from typer.testing import CliRunner, Result

from tests.quality_scenario import Clock, quality_service
from tests.support import channel_to, eventually, read_log
from tests.test_audit import append, batch

LOGIN_HINT = "careops login"


@asynccontextmanager
async def local_gateway(
    data_dir: Path, overrides: dict[str, Any] | None = None, **backends: str
) -> AsyncIterator[GatewayService]:
    """The gateway as `careops up` runs it: trusting the embedded issuer of `data_dir`, in front
    of `backends` (the others: closed ports)."""
    local = {"auth_issuer": "", "auth_jwks_url": "", "auth_audience": DEFAULT_AUDIENCE}
    settings = {**local, "data_dir": str(data_dir), **(overrides or {})}
    async with running_gateway(settings, **backends) as gateway:
        yield gateway


async def careops(*args: str, **env: str | None) -> Result:
    """Runs the CLI with `env` (None: unset) in a thread: the gateway answers on this loop.
    CAREOPS_TOKEN and the TLS CA file are unset unless given."""
    runner = CliRunner()
    clean: dict[str, str | None] = {"CAREOPS_TOKEN": None, "CAREOPS_GATEWAY_TLS_CA_FILE": None}
    return await asyncio.to_thread(lambda: runner.invoke(app, list(args), env={**clean, **env}))


@pytest.mark.parametrize(
    "command",
    [
        ("ticket", "list"),
        ("customer", "show", "C-1"),
        ("oncall", "watch", "--team", "technical_support"),
        ("projections", "list"),
        ("survey", "submit", "T-1", "--csat", "5"),
    ],
)
async def test_without_a_token_the_cli_says_to_log_in(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    closed = f"127.0.0.1:{free_port()}"  # never asked: the token is missing first
    result = await careops(*command, CAREOPS_DATA_DIR=str(tmp_path), CAREOPS_GATEWAY_ADDR=closed)
    assert result.exit_code == 1, result.output
    assert "not logged in" in result.stderr and LOGIN_HINT in result.stderr


async def test_a_role_without_the_permission_is_denied_naming_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    async with local_gateway(data_dir) as gateway:
        issue = ("token", "issue", "--role", "agent", "--subject", "agent-li")
        issued = await careops(*issue, "--data-dir", str(data_dir))
        assert issued.exit_code == 0, issued.output
        env = {"CAREOPS_GATEWAY_ADDR": address(gateway), "CAREOPS_TOKEN": issued.stdout.strip()}
        erased = await careops("customer", "erase", "C-1", "--yes", **env)
        rebuilt = await careops("projections", "rebuild", "tickets", **env)
        listed = await careops("projections", "list", **env)
    assert erased.exit_code == 1 and "PERMISSION_DENIED" in erased.stderr, erased.output
    assert "customer.erase" in erased.stderr
    assert rebuilt.exit_code == 1 and "projection.rebuild" in rebuilt.stderr, rebuilt.output
    assert listed.exit_code == 1, listed.output
    for service in ("ticketing", "customer", "incident", "quality"):
        assert f"{service}: PERMISSION_DENIED" in listed.stderr


async def test_an_expired_or_foreign_token_is_unauthenticated_with_the_hint(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "var"
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    expired = LocalIssuer(data_dir).issue(subject="late", roles=["admin"], now=long_ago)
    foreign = LocalIssuer(tmp_path / "elsewhere").issue(subject="stranger", roles=["admin"])
    async with local_gateway(data_dir) as gateway:
        results = [
            await careops(
                "ticket", "show", "T-1", CAREOPS_GATEWAY_ADDR=address(gateway), CAREOPS_TOKEN=token
            )
            for token in (expired, foreign)
        ]
    for result in results:
        assert result.exit_code == 1, result.output
        assert "UNAUTHENTICATED" in result.stderr and LOGIN_HINT in result.stderr


async def test_after_careops_login_commands_act_as_the_logged_in_subject(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    """The stored token is presented, and the events name its subject: the CLI claims no
    actor of its own (it used to send `cli:$USER`)."""
    data_dir = tmp_path / "var"
    async with (
        # One data dir, as `careops up` runs them: the gateway signs with the internal key the
        # service trusts.
        running_service(data_dir, nats_server.url) as ticketing,
        local_gateway(data_dir, ticketing=address(ticketing)) as gateway,
    ):
        env = {"CAREOPS_GATEWAY_ADDR": address(gateway), "CAREOPS_DATA_DIR": str(data_dir)}
        logged_in = await careops(
            "login", "--role", "agent", "--subject", "agent-wu", "--data-dir", str(data_dir)
        )
        assert logged_in.exit_code == 0, logged_in.output
        opened = await careops(
            "ticket", "open", "--customer", "C-1", "--subject", "Login works", "--json", **env
        )
    assert opened.exit_code == 0, opened.output
    ticket_id = opened.stdout.split('"ticket_id": "')[1].split('"')[0]
    log = await read_log(nats_server.url, "CAREOPS_TICKETING", f"{SUBJECT_PREFIX}.{ticket_id}")
    assert {event.actor for message in log for event in message.batch.events} == {"agent-wu"}


async def test_the_cli_verifies_a_tls_gateway_with_the_ca_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    pair = make_pair(tmp_path)
    token = LocalIssuer(data_dir).issue(subject="agent-li", roles=["agent"])
    async with local_gateway(data_dir, pair.settings()) as gateway:
        assert gateway.server is not None
        # The certificate names localhost: the CLI checks the name it dials.
        env = {"CAREOPS_GATEWAY_ADDR": f"localhost:{gateway.server.port}", "CAREOPS_TOKEN": token}
        trusted = await careops(
            "customer", "erase", "C-1", "--yes", CAREOPS_GATEWAY_TLS_CA_FILE=str(pair.cert), **env
        )
        missing = await careops(
            "ticket", "list", CAREOPS_GATEWAY_TLS_CA_FILE=str(tmp_path / "none.pem"), **env
        )
    # Over TLS the gateway verified the token and refused the role: the channel worked.
    assert trusted.exit_code == 1 and "PERMISSION_DENIED" in trusted.stderr, trusted.output
    assert missing.exit_code == 1 and "CAREOPS_GATEWAY_TLS_CA_FILE" in missing.stderr


async def test_careops_audit_lists_who_did_what_through_the_gateway(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    who = f"auditor-{uuid.uuid4().hex[:6]}"
    nc = await connect(nats_server.url, name="careops-tests-audit-cli")
    try:
        events = batch(who, datetime.now(UTC), "careops.quality.v1.SurveySent", aggregate=who)
        await append(JetStreamEventStore(nc), "quality", who, events)
    finally:
        await nc.close()
    data_dir = tmp_path / "var"
    async with local_gateway(data_dir, {"nats_url": nats_server.url}) as gateway:
        issuer = LocalIssuer(data_dir)
        env = {"CAREOPS_GATEWAY_ADDR": address(gateway)}
        supervisor = issuer.issue(subject="sup-1", roles=["supervisor"])
        asked = ("audit", "--actor", who, "--since", "1h")
        listed = await careops(*asked, "--json", CAREOPS_TOKEN=supervisor, **env)
        table = await careops(*asked, CAREOPS_TOKEN=supervisor, **env)
        bad = await careops(
            "audit", "--since", "1h", "--service", "nope", **env, CAREOPS_TOKEN=supervisor
        )
        agent = issuer.issue(subject="agent-1", roles=["agent"])
        denied = await careops(*asked, CAREOPS_TOKEN=agent, **env)
    assert listed.exit_code == 0, listed.output
    (line,) = listed.stdout.splitlines()
    entry = json.loads(line)
    assert (entry["actor"], entry["service"], entry["aggregateId"]) == (who, "quality", who)
    assert entry["eventType"] == "careops.quality.v1.SurveySent"
    assert table.exit_code == 0 and "SurveySent" in table.stdout and "1 events" in table.stdout
    assert bad.exit_code == 1 and "INVALID_ARGUMENT" in bad.output
    assert "owns no stream" in bad.output
    assert denied.exit_code == 1 and "audit.read" in denied.output


async def test_macros_notes_and_the_conversation_through_the_cli(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    """A supervisor puts a macro (an agent may not); a senior agent inserts it and writes an
    internal note; `ticket show` prints the conversation with both, the note marked internal."""
    data_dir = tmp_path / "var"
    async with (
        running_service(data_dir, nats_server.url) as ticketing,
        local_gateway(data_dir, ticketing=address(ticketing)) as gateway,
    ):
        tokens = {}
        for role in ("supervisor", "agent", "senior_agent"):
            issue = ("token", "issue", "--role", role, "--subject", f"{role}-1")
            issued = await careops(*issue, "--data-dir", str(data_dir))
            assert issued.exit_code == 0, issued.output
            tokens[role] = issued.stdout.strip()
        base = {"CAREOPS_GATEWAY_ADDR": address(gateway)}
        boss = {**base, "CAREOPS_TOKEN": tokens["supervisor"]}
        agent = {**base, "CAREOPS_TOKEN": tokens["agent"]}
        senior = {**base, "CAREOPS_TOKEN": tokens["senior_agent"]}
        body = "Dear {customer_name}, ticket {ticket_id} is in hand."
        denied = await careops("macro", "put", "hi", "--title", "Hi", "--body", body, **agent)
        put = await careops("macro", "put", "hi", "--title", "Hi", "--body", body, **boss)

        async def macro_listed() -> Result | None:
            # The list is a read model: another CLI run has no sequence to wait for.
            result = await careops("macro", "list", **agent)
            return result if "Dear {customer_name}" in result.stdout else None

        listed = await eventually(macro_listed, what="the macro in `careops macro list`")
        opened = await careops(
            "ticket", "open", "--customer", "C-1", "--subject", "Noisy fan", "--json", **senior
        )
        ticket_id = opened.stdout.split('"ticket_id": "')[1].split('"')[0]
        macro = ("--macro", "hi", "--value", "customer_name=Ms Li")
        replied = await careops("ticket", "reply", ticket_id, *macro, **senior)
        noted = await careops(
            "ticket", "reply", ticket_id, "--internal", "--body", "check the warranty", **senior
        )

        async def conversation_shown() -> Result | None:
            # The conversation is a read model too: this CLI run cannot wait for the replies'
            # sequences (on a busy machine it may start before the projection applied them).
            result = await careops("ticket", "show", ticket_id, COLUMNS="400", **agent)
            return result if "check the warranty" in " ".join(result.stdout.split()) else None

        shown = await eventually(conversation_shown, what="both replies in `careops ticket show`")
    assert denied.exit_code == 1 and "macro.put" in denied.stderr, denied.output
    assert put.exit_code == 0 and "version 1" in put.stdout, put.output
    assert listed.exit_code == 0 and "Dear {customer_name}" in listed.stdout, listed.output
    assert replied.exit_code == 0 and noted.exit_code == 0, replied.output + noted.output
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert "Noisy fan" in text
    assert f"Dear Ms Li, ticket {ticket_id} is in hand." in text
    assert "[macro hi v1]" in text
    assert "note (internal)" in text and "check the warranty" in text


def served_at(service: Any) -> str:
    assert service.server is not None
    return f"127.0.0.1:{service.server.port}"


async def test_the_export_holds_every_context_s_free_text_until_erasure(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    """`careops customer export` (a data-subject access request): the profile, every ticket of
    the customer with its texts and conversation, and their surveys; after EraseCustomer the
    same export holds none of those texts, while the tickets and surveys are still listed."""
    token = uuid.uuid4().hex[:10]
    data_dir = tmp_path / "var"
    async with (
        # One data directory, as `careops up` runs them: the gateway's internal identity key.
        running_service(data_dir, nats_server.url) as ticketing,
        running_customer(data_dir, nats_server.url) as customer,
        quality_service(data_dir, nats_server.url, Clock(datetime.now(UTC))) as quality,
        local_gateway(
            data_dir,
            ticketing=address(ticketing),
            customer=served_at(customer),
            quality=served_at(quality),
        ) as gateway,
        channel_to(ticketing) as tc,
        channel_to(customer) as cc,
        channel_to(quality) as qc,
    ):
        customers = customer_pb2_grpc.CustomerProfileServiceStub(cc)
        tickets = ticketing_pb2_grpc.TicketingServiceStub(tc)
        registered = await customers.RegisterCustomer(
            cpb.RegisterCustomerRequest(
                profile=ct.Profile(name=f"Export {token}", email=f"export.{token}@example.com")
            )
        )
        cid = registered.customer.customer_id
        opened = await tickets.OpenTicket(
            tpb.OpenTicketRequest(
                customer_id=cid,
                channel=tt.CHANNEL_CHAT,
                type=tt.TICKET_TYPE_CONSULTATION,
                priority=tt.PRIORITY_NORMAL,
                subject=f"subject-{token}",
            )
        )
        ticket_id = opened.ticket.ticket_id
        await tickets.AddReply(
            tpb.AddReplyRequest(ticket_id=ticket_id, author=tt.AUTHOR_AGENT, body=f"reply-{token}")
        )
        resolved = await tickets.ResolveTicket(tpb.ResolveTicketRequest(ticket_id=ticket_id))
        await quality_pb2_grpc.QualityServiceStub(qc).SubmitSurvey(
            qpb.SubmitSurveyRequest(
                ticket_id=ticket_id,
                csat=5,
                comment=f"comment-{token}",
                ticketing_min_sequence=resolved.sequence,
            )
        )
        issued = await careops(
            "token",
            "issue",
            "--role",
            "supervisor",
            "--subject",
            "dpo",
            "--data-dir",
            str(data_dir),
        )
        env = {"CAREOPS_GATEWAY_ADDR": address(gateway), "CAREOPS_TOKEN": issued.stdout.strip()}

        async def exported() -> dict[str, Any] | None:
            result = await careops("customer", "export", cid, **env)
            assert result.exit_code == 0, result.output
            document: dict[str, Any] = json.loads(result.stdout)
            return document if document["ticketing"] and document["quality"] else None

        before = await eventually(exported, what="the ticket and the survey in the export")
        await customers.EraseCustomer(
            cpb.EraseCustomerRequest(customer_id=cid, reason=ct.ERASURE_REASON_CUSTOMER_REQUEST)
        )

        async def erased() -> dict[str, Any] | None:
            document = await exported()
            return document if document and token not in json.dumps(document) else None

        after = await eventually(erased, what="the export without the texts")
    text = json.dumps(before, ensure_ascii=False)
    for mark in ("subject", "reply", "comment"):
        assert f"{mark}-{token}" in text, mark
    [ticket] = before["ticketing"]
    assert ticket["ticket_id"] == ticket_id
    assert [m["kind"] for m in ticket["conversation"]] == ["opened", "reply"]
    assert after["erased"] is True
    assert [t["ticket_id"] for t in after["ticketing"]] == [ticket_id]
    assert [len(t["conversation"]) for t in after["ticketing"]] == [2]
    assert [s["csat"] for s in after["quality"]] == [5]
