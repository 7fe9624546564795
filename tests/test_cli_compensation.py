"""`careops ticket compensate|approve|reject|compensations` through the gateway with real tokens:
an agent's 2,500 waits, a supervisor approves it, an agent may not approve (the permission
table at the gateway), and `ticket show` lists the compensation."""

from __future__ import annotations

import json
from pathlib import Path

from careops_eventstore.nats_embedded import EmbeddedNats
from careops_platform.local_issuer import LocalIssuer
from gateway.tests.conftest import address
from ticketing.tests.conftest import running_service

from tests.test_cli_gateway import careops, local_gateway


async def test_an_agent_asks_a_supervisor_approves_through_the_cli(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    data_dir = tmp_path / "var"
    async with (
        running_service(data_dir, nats_server.url) as ticketing,
        local_gateway(data_dir, ticketing=address(ticketing)) as gateway,
    ):
        issuer = LocalIssuer(data_dir)

        def env(role: str, subject: str) -> dict[str, str]:
            token = issuer.issue(subject=subject, roles=(role,))
            return {"CAREOPS_GATEWAY_ADDR": address(gateway), "CAREOPS_TOKEN": token}

        admin, agent = env("admin", "ops"), env("agent", "agent-wang")
        supervisor = env("supervisor", "lead-1")
        opened = await careops(
            "ticket", "open", "--customer", "C-1", "--type", "fault", "--subject", "Dead",
            "--json", **admin,
        )  # fmt: skip
        assert opened.exit_code == 0, opened.output
        ticket_id = json.loads(opened.stdout)["ticket_id"]
        assigned = await careops("ticket", "assign", ticket_id, "--agent", "agent-wang", **admin)
        assert assigned.exit_code == 0, assigned.output

        asked = await careops(
            "ticket", "compensate", ticket_id, "--amount", "2500", "--currency", "CNY",
            "--reason", "second failure", "--json", **agent,
        )  # fmt: skip
        assert asked.exit_code == 0, asked.output
        compensation = json.loads(asked.stdout)["compensation"]
        assert compensation["status"] == "COMPENSATION_STATUS_PENDING"

        refused = await careops(
            "ticket", "approve", ticket_id, compensation["compensation_id"], **agent
        )
        assert refused.exit_code == 1
        assert "PERMISSION_DENIED" in refused.stderr
        assert "ticket.compensation.approve" in refused.stderr

        approved = await careops(
            "ticket", "approve", ticket_id, compensation["compensation_id"], "--reason", "ok",
            **supervisor,
        )  # fmt: skip
        assert approved.exit_code == 0, approved.output
        assert "granted" in approved.stdout and "lead-1" in approved.stdout

        shown = await careops("ticket", "show", ticket_id, **agent)
        assert shown.exit_code == 0, shown.output
        assert "refund 2500 CNY: granted by lead-1" in shown.stdout

        listed = await careops("ticket", "compensations", ticket_id, "--status", "pending", **agent)
        assert listed.exit_code == 0, listed.output
        assert compensation["compensation_id"] not in listed.stdout

        bad = await careops("ticket", "compensations", ticket_id, "--status", "maybe", **agent)
        assert bad.exit_code == 2 and "pending" in bad.output
