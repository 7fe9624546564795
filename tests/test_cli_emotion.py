"""`careops ticket show` through the gateway shows the customer's emotion and what it set."""

from __future__ import annotations

import json
from pathlib import Path

from careops_eventstore.nats_embedded import EmbeddedNats
from careops_platform.local_issuer import LocalIssuer
from gateway.tests.conftest import address
from ticketing.tests.conftest import running_service

from tests.test_cli_gateway import careops, local_gateway


async def test_ticket_show_prints_the_emotion_and_its_flags(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    data_dir = tmp_path / "var"
    async with (
        running_service(data_dir, nats_server.url) as ticketing,
        local_gateway(data_dir, ticketing=address(ticketing)) as gateway,
    ):
        token = LocalIssuer(data_dir).issue(subject="ops", roles=("admin",))
        admin = {"CAREOPS_GATEWAY_ADDR": address(gateway), "CAREOPS_TOKEN": token}
        opened = await careops(
            "ticket", "open", "--customer", "C-1", "--type", "fault",
            "--subject", "订单还没到，我很着急，怎么办", "--json", **admin,
        )  # fmt: skip
        assert opened.exit_code == 0, opened.output
        ticket_id = json.loads(opened.stdout)["ticket_id"]

        shown = await careops("ticket", "show", ticket_id, **admin)
        assert shown.exit_code == 0, shown.output
        assert "anxious; detailed explanation requested" in shown.stdout
