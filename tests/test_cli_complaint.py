"""`careops complaint step` and `careops ticket tick` through the gateway with real tokens: steps
in order, an out-of-order step refused naming the missing one, and `ticket show` listing the
steps taken and left and a fault's checklist."""

from __future__ import annotations

import json
from pathlib import Path

from careops_eventstore.nats_embedded import EmbeddedNats
from careops_platform.local_issuer import LocalIssuer
from gateway.tests.conftest import address
from ticketing.tests.conftest import running_service

from tests.test_cli_gateway import careops, local_gateway


async def test_complaint_steps_through_the_cli(tmp_path: Path, nats_server: EmbeddedNats) -> None:
    data_dir = tmp_path / "var"
    async with (
        running_service(data_dir, nats_server.url) as ticketing,
        local_gateway(data_dir, ticketing=address(ticketing)) as gateway,
    ):
        token = LocalIssuer(data_dir).issue(subject="lead-1", roles=("supervisor",))
        env = {"CAREOPS_GATEWAY_ADDR": address(gateway), "CAREOPS_TOKEN": token}
        opened = await careops(
            "ticket", "open", "--customer", "C-1", "--type", "complaint", "--subject", "No visit",
            "--json", **env,
        )  # fmt: skip
        assert opened.exit_code == 0, opened.output
        ticket_id = json.loads(opened.stdout)["ticket_id"]

        early = await careops("complaint", "step", ticket_id, "apologise", "--note", "sorry", **env)
        assert early.exit_code == 1
        assert "FAILED_PRECONDITION" in early.stderr and "listen" in early.stderr

        heard = await careops("complaint", "step", ticket_id, "listen", "--note", "heard", **env)
        assert heard.exit_code == 0, heard.output
        assert "done by lead-1" in heard.stdout

        shown = await careops("ticket", "show", ticket_id, **env)
        assert shown.exit_code == 0, shown.output
        assert "step listen" in shown.stdout
        assert "confirm, apologise, solve, follow_up, summarise" in shown.stdout

        bad = await careops("complaint", "step", ticket_id, "shrug", **env)
        assert bad.exit_code == 2 and "listen" in bad.output

        fault = await careops(
            "ticket", "open", "--customer", "C-1", "--type", "fault", "--subject", "Dead",
            "--json", **env,
        )  # fmt: skip
        fault_id = json.loads(fault.stdout)["ticket_id"]
        ticked = await careops("ticket", "tick", fault_id, "diagnose", "--note", "E4", **env)
        assert ticked.exit_code == 0, ticked.output
        shown = await careops("ticket", "show", fault_id, **env)
        assert "check diagnose" in shown.stdout and "done by lead-1" in shown.stdout
        assert "check repair" in shown.stdout and "to do" in shown.stdout
