"""End to end as a user would: `careops up`, `careops login`, then the CLI against it (through
the gateway), then Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from careops_eventstore.nats_embedded import free_port

from tests.support import NotReached, eventually_sync, wait_serving

CAREOPS = [sys.executable, "-m", "careops_cli"]


def careops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CAREOPS, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def careops_json(env: dict[str, str], *args: str) -> Any:
    result = careops(env, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def careops_json_eventually(env: dict[str, str], *args: str, timeout: float = 30) -> Any:
    """careops_json for a command that reads a projection which may lag the last write (a
    failed command appends nothing, so retrying it is safe)."""

    def succeeded() -> subprocess.CompletedProcess[str] | None:
        result = careops(env, *args, "--json")
        return result if result.returncode == 0 else None

    return json.loads(eventually_sync(succeeded, timeout=timeout, what=" ".join(args)).stdout)


def gateway_post(port: int, method: str, body: dict[str, Any], token: str = "") -> Any:
    """POSTs `body` to the gateway's HTTP/JSON edge (/v1/<package.Service>/<Method>),
    presenting `token`."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/{method}", data=json.dumps(body).encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_careops_up_then_drive_it_with_the_cli(tmp_path: Path) -> None:
    grpc_port, nats_port, incident_port = free_port(), free_port(), free_port()
    customer_port = free_port()
    gateway_port, gateway_http_port = free_port(), free_port()
    env = {
        **os.environ,
        "CAREOPS_GATEWAY_GRPC_PORT": str(gateway_port),
        "CAREOPS_GATEWAY_HTTP_PORT": str(gateway_http_port),
        "CAREOPS_GATEWAY_METRICS_PORT": str(free_port()),
        "CAREOPS_CUSTOMER_GRPC_PORT": str(customer_port),
        "CAREOPS_CUSTOMER_METRICS_PORT": str(free_port()),
        "CAREOPS_INCIDENT_GRPC_PORT": str(incident_port),
        "CAREOPS_INCIDENT_METRICS_PORT": str(free_port()),
        "CAREOPS_QUALITY_GRPC_PORT": str(free_port()),
        "CAREOPS_QUALITY_METRICS_PORT": str(free_port()),
        "CAREOPS_TICKETING_GRPC_PORT": str(grpc_port),
        "CAREOPS_TICKETING_METRICS_PORT": str(free_port()),
        "CAREOPS_EMBEDDED_NATS_PORT": str(nats_port),
        # `up`, `login` and the CLI's token all in this data dir (the default is ./var).
        "CAREOPS_DATA_DIR": str(tmp_path / "var"),
        "COLUMNS": "200",
    }
    env.pop("CAREOPS_NATS_URL", None)
    env.pop("CAREOPS_TOKEN", None)
    env.pop("CAREOPS_GATEWAY_ADDR", None)  # the gateway's port above is where the CLI goes
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    up = subprocess.Popen(
        [*CAREOPS, "up", "--data-dir", str(tmp_path / "var")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        for port in (grpc_port, incident_port, customer_port, gateway_port):
            assert wait_serving(f"127.0.0.1:{port}", 60), (tmp_path / "up.log").read_text()
        # The CLI goes through the gateway, with a token: first `careops login`.
        anonymous = careops(env, "ticket", "list")
        assert anonymous.returncode == 1 and "careops login" in anonymous.stderr
        logged_in = careops(env, "login")
        assert logged_in.returncode == 0 and "logged in as" in logged_in.stdout, logged_in.stderr
        ticket = careops_json(
            env,
            "ticket",
            "open",
            "--customer",
            "C-1001",
            "--channel",
            "email",
            "--type",
            "complaint",
            "--priority",
            "high",
            "--subject",
            "Refund not received",
        )
        ticket_id = ticket["ticket_id"]
        assert ticket["status"] == "TICKET_STATUS_OPEN"
        # A frontend reads the same ticket through the gateway's HTTP/JSON edge, with a token
        # of the embedded issuer (the key `up` keeps in the data dir); without one, 401.
        get_ticket = "careops.ticketing.v1.TicketingService/GetTicket"
        with pytest.raises(urllib.error.HTTPError) as refused:
            gateway_post(gateway_http_port, get_ticket, {"ticketId": ticket_id})
        assert refused.value.code == 401
        issued = careops(
            env,
            "token",
            "issue",
            "--role",
            "admin",
            "--subject",
            "e2e",
            "--data-dir",
            str(tmp_path / "var"),
        )
        assert issued.returncode == 0, issued.stderr
        token = issued.stdout.strip()
        via_gateway = gateway_post(gateway_http_port, get_ticket, {"ticketId": ticket_id}, token)
        assert via_gateway["ticket"]["subject"] == "Refund not received"
        status: dict[str, Any] = {}

        def all_serving() -> bool:  # quality may still be starting
            status.update(
                gateway_post(
                    gateway_http_port,
                    "careops.gateway.v1.GatewayService/GetPlatformStatus",
                    {},
                    token,
                )
            )
            return bool(status["allServing"])

        with contextlib.suppress(NotReached):  # the assertion below shows which is not
            eventually_sync(all_serving, interval=0.2)
        assert [
            b["name"] for b in status["backends"] if b["health"] == "BACKEND_HEALTH_SERVING"
        ] == [
            "ticketing",
            "customer",
            "incident",
            "quality",
        ], status
        shown = careops_json(env, "ticket", "show", ticket_id)
        assert shown["subject"] == "Refund not received"
        assigned = careops_json(env, "ticket", "assign", ticket_id)
        assert assigned["assignee_id"] == "agent-zhang"
        replied = careops_json(env, "ticket", "reply", ticket_id, "--body", "We are on it")
        assert replied["status"] == "TICKET_STATUS_IN_PROGRESS"
        resolved = careops_json(
            env, "ticket", "resolve", ticket_id, "--resolution", "Refund issued"
        )
        assert resolved["status"] == "TICKET_STATUS_RESOLVED"

        def resolved_listed() -> list[dict[str, Any]] | None:
            found = careops_json(env, "ticket", "list", "--customer", "C-1001").get("tickets", [])
            return found if found and found[0]["status"] == "TICKET_STATUS_RESOLVED" else None

        listed: list[dict[str, Any]] = eventually_sync(resolved_listed, what="resolved, listed")
        assert [item["ticket_id"] for item in listed] == [ticket_id]
        rebuilt = careops(env, "projections", "rebuild", "tickets")
        assert rebuilt.returncode == 0 and "rebuilt tickets" in rebuilt.stdout, rebuilt.stderr
        again = careops_json(env, "ticket", "list", "--customer", "C-1001")["tickets"]
        assert again == listed

        # On-call: a level-A crash pages technical support; the on-call watches and acknowledges.
        declared = careops_json(
            env,
            "incident",
            "declare",
            "--type",
            "server_crash",
            "--title",
            "DB cluster down",
            "--users",
            "100000",
            "--core",
            "1",
            "--elapsed",
            "60",
            "--exposure",
            "0.5",
        )
        assert declared["level"] == "INCIDENT_LEVEL_A"
        watched = careops(
            env, "oncall", "watch", "--team", "technical_support", "--count", "1", "--json"
        )
        assert watched.returncode == 0, watched.stderr
        alert = json.loads(watched.stdout)
        assert alert["incident_id"] == declared["incident_id"] and alert["replayed"] is True
        # Acknowledging is the paged on-call's to do (not an admin's): with a token of theirs.
        member = alert["member_id"]
        oncall = careops(env, "token", "issue", "--role", "oncall", "--subject", member)
        assert oncall.returncode == 0, oncall.stderr
        as_oncall = {**env, "CAREOPS_TOKEN": oncall.stdout.strip()}
        acked = careops_json(as_oncall, "oncall", "ack", alert["page_id"], "--member", member)
        assert acked["status"] == "INCIDENT_STATUS_ACKNOWLEDGED"

        # Customers: register, buy, see the 360, erase; the CLI never needs the ids of others.
        customer = careops_json(
            env, "customer", "register", "--name", "Li Na", "--email", "li.na@example.com"
        )
        customer_id = customer["customer_id"]
        careops_json(
            env,
            "customer",
            "purchase",
            customer_id,
            "--order",
            "O-1",
            "--amount",
            "99.50",
            "--currency",
            "CNY",
        )
        # Both read projections (customer's own, ticketing's directory): allow for their lag.
        found = careops_json_eventually(env, "customer", "find", "--email", "LI.NA@example.com")
        assert found["customer_id"] == customer_id
        linked = careops_json_eventually(
            env, "ticket", "open", "--email", "li.na@example.com", "--subject", "Where is O-1?"
        )
        assert linked["customer_id"] == customer_id
        # An incident that names the ticket alone reaches its customer's 360, and every
        # service's projections report caught up.
        outage = careops_json(
            env,
            "incident",
            "declare",
            "--type",
            "payment_failure",
            "--title",
            "Card payments failing",
            "--ticket",
            linked["ticket_id"],
        )

        def incident_on_360() -> list[dict[str, Any]] | None:
            view = careops_json(env, "customer", "show", customer_id)
            entries = [e for e in view.get("timeline", []) if e.get("source") == "incident"]
            return entries or None

        [entry] = eventually_sync(incident_on_360, what="the incident on the 360")
        assert outage["incident_id"] in entry["summary"]
        assert entry["ticket_id"] == linked["ticket_id"]

        def caught_up() -> list[dict[str, Any]] | None:
            listed = careops_json(env, "projections", "list")
            behind = [p for p in listed if int(p.get("lag", 0)) or p.get("stalled")]
            return listed if listed and not behind else None

        projections = eventually_sync(caught_up, what="every projection caught up")
        assert {"customer_incidents", "customer_tickets"} <= {p["name"] for p in projections}
        careops_json(env, "customer", "tag", customer_id, "--add", "vip")
        shown_360 = careops(env, "customer", "show", customer_id)
        assert shown_360.returncode == 0 and "Li Na" in shown_360.stdout, shown_360.stderr

        def tagged_vips() -> list[str] | None:
            listed_vips = careops_json(env, "customer", "list", "--tag", "vip")
            return [c["customer_id"] for c in listed_vips.get("customers", [])] or None

        vips = eventually_sync(tagged_vips, what="the VIP listed")
        assert vips == [customer_id]
        erased = careops_json(env, "customer", "erase", customer_id, "--yes")
        assert erased["customer_id"] == customer_id
        again_erased = careops(env, "customer", "erase", customer_id, "--yes")
        assert again_erased.returncode == 1 and "FAILED_PRECONDITION" in again_erased.stderr

        bad = careops(
            env, "ticket", "open", "--customer", "C-1001", "--subject", " ", "--channel", "email"
        )
        assert bad.returncode == 1
        assert "INVALID_ARGUMENT" in bad.stderr and "subject" in bad.stderr
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(30)
        log.close()
    output = (tmp_path / "up.log").read_text()
    assert code == 0, output
    assert "ticketing |" in output  # service logs are prefixed
    assert "incident |" in output
    assert "gateway |" in output
    ports = (grpc_port, nats_port, incident_port, gateway_port, gateway_http_port)
    assert not any(port_open(port) for port in ports)
