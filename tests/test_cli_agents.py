"""`careops agent …` through the gateway: a supervisor manages the directory, an agent goes
offline themselves, and `agent suggest` says why an agent is suggested."""

from __future__ import annotations

from pathlib import Path

from careops_eventstore.nats_embedded import EmbeddedNats
from gateway.tests.conftest import address
from ticketing.tests.conftest import running_service

from tests.support import eventually
from tests.test_cli_gateway import careops, local_gateway


async def test_a_supervisor_puts_an_agent_who_sets_their_own_availability(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    data_dir = tmp_path / "var"
    async with (
        running_service(data_dir, nats_server.url) as ticketing,
        local_gateway(data_dir, ticketing=address(ticketing)) as gateway,
    ):
        env = {"CAREOPS_GATEWAY_ADDR": address(gateway), "CAREOPS_DATA_DIR": str(data_dir)}

        async def as_(role: str, subject: str, *args: str) -> str:
            login = ("login", "--role", role, "--subject", subject, "--data-dir", str(data_dir))
            assert (await careops(*login)).exit_code == 0
            result = await careops(*args, **env)
            assert result.exit_code == 0, result.output
            return result.stdout

        put = ("agent", "put", "agent-wu", "--capacity", "email=2", "--type", "fault")
        shown = await as_(
            "supervisor", "lead-1", *put, "--team", "north", "--availability", "online"
        )
        assert "agent-wu" in shown and "email=2" in shown and "online" in shown

        async def listed() -> bool:
            # The list is a read model: another CLI run has no sequence to wait for.
            return "agent-wu" in await as_("agent", "agent-wu", "agent", "list", "--team", "north")

        await eventually(listed, what="agent-wu in `careops agent list`")
        went = await as_("agent", "agent-wu", "agent", "availability", "offline")
        assert "offline" in went
        opened = await as_(
            "agent",
            "agent-wu",
            "ticket",
            "open",
            "--customer",
            "C-1",
            "--subject",
            "No dial tone",
            "--channel",
            "email",
            "--type",
            "fault",
            "--json",
        )
        ticket_id = opened.split('"ticket_id": "')[1].split('"')[0]
        why = await as_("agent", "agent-wu", "agent", "suggest", ticket_id)
        assert "spare" in why and "agent-wu" not in why  # offline agents are not suggested
