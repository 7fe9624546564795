"""`careops oncall team put|show` through the gateway: a supervisor puts a team with escalation
policies, routing rules and notification rules from its JSON form and reads it back; a bad one
is refused with its located fields."""

from __future__ import annotations

import json
from pathlib import Path

from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from gateway.tests.conftest import address
from google.protobuf import json_format
from incident.tests.conftest import receivers, running_incident_service, write_config
from incident.tests.test_escalation_service import team

from tests.receivers import HttpReceiver, MailReceiver
from tests.test_cli_gateway import careops, local_gateway

__all__ = ["receivers"]  # the incident fixture, reused


async def test_a_supervisor_puts_and_shows_a_team_with_escalation_policies(
    tmp_path: Path, receivers: tuple[HttpReceiver, MailReceiver]
) -> None:
    http, mail = receivers
    data_dir = tmp_path / "var"
    config = write_config(tmp_path / "config", http, mail.port)
    nats = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port())
    nats.start()
    try:
        async with (
            running_incident_service(data_dir, nats.url, **config) as incident,
            local_gateway(data_dir, incident=address(incident)) as gateway,
        ):
            env = {"CAREOPS_GATEWAY_ADDR": address(gateway), "CAREOPS_DATA_DIR": str(data_dir)}
            login = ("login", "--role", "supervisor", "--subject", "lead-1")
            assert (await careops(*login, "--data-dir", str(data_dir))).exit_code == 0
            document = json_format.MessageToDict(team(http), preserving_proto_field_name=True)
            good = tmp_path / "team.json"
            good.write_text(json.dumps(document))
            put = await careops("oncall", "team", "put", str(good), **env)
            assert put.exit_code == 0, put.output
            assert "policy all-hands: oncall (300s) -> team (300s) x1" in put.output
            shown = await careops("oncall", "team", "show", "technical_support", **env)
            assert shown.exit_code == 0, shown.output
            assert "member ts-alice: webhook+0s, email+120s" in shown.output
            assert "20:00-08:00 Europe/Berlin" in shown.output

            document["routing"].append({"policy_id": "nope"})
            bad = tmp_path / "bad.json"
            bad.write_text(json.dumps(document))
            refused = await careops("oncall", "team", "put", str(bad), **env)
            assert refused.exit_code == 1
            assert "INVALID_ARGUMENT" in refused.output and "team.routing[2].policy_id" in (
                refused.output
            )
    finally:
        nats.stop()
