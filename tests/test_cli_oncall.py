"""`careops oncall who|shifts|override|remove-override|swap` through the gateway (issue 14
item 2): two members swap a shift, a lead adds an override and removes it, and they show in
`who` and `shifts`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from gateway.tests.conftest import address
from incident.tests.conftest import receivers, running_incident_service, write_config

from tests.receivers import HttpReceiver, MailReceiver
from tests.test_cli_gateway import careops, local_gateway

__all__ = ["receivers"]  # the incident fixture, reused
TEAM = ("--team", "technical_support")


async def test_members_swap_a_shift_and_a_lead_adds_an_override(
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

            async def as_(subject: str, *args: str, ok: bool = True) -> str:
                login = ("login", "--role", "oncall", "--subject", subject)
                assert (await careops(*login, "--data-dir", str(data_dir))).exit_code == 0
                result = await careops("oncall", *args, **env)
                assert (result.exit_code == 0) is ok, result.output
                return " ".join(result.output.split())  # rich wraps long lines

            now = datetime.now(UTC).replace(second=0, microsecond=0)
            start, end = now + timedelta(days=1), now + timedelta(days=2)
            asked = await as_(
                "ts-alice",
                "swap",
                "request",
                *TEAM,
                "--with",
                "ts-bob",
                "--start",
                start.isoformat(),
                "--end",
                end.isoformat(),
            )
            assert "swap-1 requested: ts-alice's" in asked and "to ts-bob" in asked
            refused = await as_("ts-alice", "swap", "accept", "swap-1", *TEAM, ok=False)
            assert "PERMISSION_DENIED" in refused
            accepted = await as_("ts-bob", "swap", "accept", "swap-1", *TEAM)
            assert "swap-1 accepted" in accepted and "(by ts-bob)" in accepted
            at = (start + timedelta(hours=1)).isoformat()
            who = await as_("ts-bob", "who", *TEAM, "--at", at)
            assert "ts-bob is on call for technical_support" in who and "swap swap-1" in who

            tonight = now + timedelta(hours=2)
            added = await as_(
                "ts-lead",
                "override",
                *TEAM,
                "--member",
                "ts-lead",
                "--start",
                tonight.isoformat(),
                "--end",
                (tonight + timedelta(hours=4)).isoformat(),
            )
            assert "ovr-1: ts-lead on call" in added and "added by ts-lead" in added
            shifts = await as_("ts-lead", "shifts", *TEAM, "--member", "ts-lead", "--json")
            assert '"ref": "ovr-1"' in shifts and "ON_CALL_SOURCE_OVERRIDE" in shifts
            table = await as_("ts-bob", "shifts", *TEAM, "--member", "ts-bob")
            assert "swap" in table and "swap-1" in table
            refused = await as_("ts-bob", "remove-override", *TEAM, "--id", "ovr-1", ok=False)
            assert "PERMISSION_DENIED" in refused
            removed = await as_("ts-lead", "remove-override", *TEAM, "--id", "ovr-1")
            assert "ovr-1 removed: ts-lead no longer on call" in removed
            shifts = await as_("ts-lead", "shifts", *TEAM, "--member", "ts-lead", "--json")
            assert '"ref": "ovr-1"' not in shifts
            missing = await as_("ts-lead", "remove-override", *TEAM, "--id", "ovr-1", ok=False)
            assert "NOT_FOUND" in missing
    finally:
        nats.stop()
