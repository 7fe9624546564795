"""`careops policy risk|matrix …` through the gateway (issue 13): show, edit, history, diff and
the what-if over past incidents, as a supervisor."""

from __future__ import annotations

from pathlib import Path

import yaml
from careops.incident.v1 import incident_pb2 as ipb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as it
from careops.quality.v1 import quality_pb2 as qpb
from careops.ticketing.v1 import ticketing_pb2 as tpb
from careops_cli.policy import KINDS, DocumentKind, what_if_table
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from gateway.tests.conftest import address
from incident.tests.conftest import receivers, running_incident_service, write_config
from rich.console import Console

from tests.receivers import HttpReceiver, MailReceiver
from tests.support import channel_to, eventually
from tests.test_cli_gateway import careops, local_gateway

__all__ = ["receivers"]  # the incident fixture, reused


def risk(version: str, business: float, scope: float, timeliness: float) -> str:
    weights = {"scope": scope, "business": business, "timeliness": timeliness, "exposure": 0.1}
    return yaml.safe_dump(
        {
            "version": version,
            "weights": weights,
            "thresholds": {"a": 0.7, "b": 0.4},
        }
    )


async def test_a_supervisor_edits_the_risk_policy_and_the_matrix_and_asks_what_if(
    tmp_path: Path, receivers: tuple[HttpReceiver, MailReceiver]
) -> None:
    http, mail = receivers
    data_dir = tmp_path / "var"
    config = write_config(tmp_path / "config", http, mail.port)
    # A log of its own: revisions, matrix versions and the period's incidents are this test's.
    nats = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port())
    nats.start()
    try:
        await scenario(tmp_path, data_dir, nats.url, config)
    finally:
        nats.stop()


async def scenario(tmp_path: Path, data_dir: Path, nats_url: str, config: dict[str, str]) -> None:
    async with (
        running_incident_service(data_dir, nats_url, **config) as incident,
        local_gateway(data_dir, incident=address(incident)) as gateway,
    ):
        env = {"CAREOPS_GATEWAY_ADDR": address(gateway), "CAREOPS_DATA_DIR": str(data_dir)}
        login = ("login", "--role", "supervisor", "--subject", "lead-1")
        assert (await careops(*login, "--data-dir", str(data_dir))).exit_code == 0

        async def run(*args: str, ok: bool = True) -> str:
            result = await careops("policy", *args, **env)
            assert (result.exit_code == 0) is ok, result.output
            return result.output

        assert "risk-2026.1" in await run("risk", "show")
        drafts = tmp_path / "drafts"
        drafts.mkdir()
        (drafts / "core.yaml").write_text(
            risk("risk-core-2", business=0.6, scope=0.2, timeliness=0.1)
        )
        (drafts / "back.yaml").write_text(
            risk("risk-back", business=0.3, scope=0.4, timeliness=0.2)
        )
        (drafts / "bad.yaml").write_text(risk("risk-bad", business=0.5, scope=0.4, timeliness=0.2))

        refused = await run("risk", "edit", "--file", str(drafts / "bad.yaml"), ok=False)
        assert "INVALID_ARGUMENT" in refused and "document.weights" in refused
        edited = await run(
            "risk", "edit", "--file", str(drafts / "core.yaml"), "--reason", "core counts"
        )
        assert "Revision 2 (risk-core-2) by lead-1" in edited
        history = await run("risk", "history")
        assert "lead-1" in history and "core counts" in history and "config" in history
        diff = await run("risk", "diff")
        assert "-  business: 0.3" in diff and "+  business: 0.6" in diff

        async with channel_to(incident) as opened:
            stub = incident_pb2_grpc.IncidentServiceStub(opened)
            declared = await stub.DeclareIncident(
                ipb.DeclareIncidentRequest(
                    type="server_crash",
                    title="Checkout API errors",
                    factors=it.RiskFactors(core_system=1.0),
                )
            )
        assert declared.incident.level == it.INCIDENT_LEVEL_B
        incident_id = declared.incident.incident_id

        async def differs() -> str:
            # The what-if reads the period from the read model: the CLI has no sequence to wait.
            output = await run("risk", "what-if", "--draft", str(drafts / "back.yaml"))
            return output if "would differ" in output else ""

        output = await eventually(differs, what="the incident in the what-if")
        assert "1 of 1 incidents would differ" in output and "B -> C" in output, output
        assert incident_id[:8] in output
        same = await run("risk", "what-if", "--draft", str(drafts / "core.yaml"), "--since", "1d")
        assert "The draft changes nothing: 1 incidents compared" in same

        shown = yaml.safe_load(await run("matrix", "show"))
        assert shown["types"]["server_crash"]["teams"]["technical_support"] == "red"
        shown["types"]["server_crash"]["teams"].update(
            technical_support="yellow", customer_service="red"
        )
        (drafts / "matrix.yaml").write_text(yaml.safe_dump(shown))
        matrix_what_if = await run("matrix", "what-if", "--draft", str(drafts / "matrix.yaml"))
        assert "would differ" in matrix_what_if and "customer_service" in matrix_what_if
        put = await run("matrix", "edit", "--file", str(drafts / "matrix.yaml"))
        assert "Revision 2" in put and "lead-1" in put
        assert "+      customer_service: red" in await run("matrix", "diff")
        assert "lead-1" in await run("matrix", "history")


def test_every_document_kind_names_rpcs_its_service_serves() -> None:
    for name, kind in KINDS.items():
        if not isinstance(kind, DocumentKind):
            continue  # the matrix: its own RPCs (PutResponseMatrix, ListResponseMatrixVersions)
        service = next(
            s
            for module in (tpb, ipb, qpb)
            for s in module.DESCRIPTOR.services_by_name.values()
            if kind.put_rpc in s.methods_by_name
        )
        for method, request in (
            (kind.put_rpc, kind.put_request),
            (kind.list_rpc, kind.list_request),
        ):
            assert service.methods_by_name[method].input_type.full_name == (
                request.DESCRIPTOR.full_name
            ), name
    assert set(KINDS) == {"sla", "risk", "matrix", "teams", "integrations", "notice_templates"}


def test_the_sla_what_if_table_has_the_total_then_each_channel_and_priority() -> None:
    actual = qpb.SlaOutcome(first_responses=2, first_responses_on_time=2, sla_compliance_ratio=1)
    draft = qpb.SlaOutcome(
        policy_version="strict", first_responses=2, first_responses_on_time=1,
        first_response_breaches=1, sla_compliance_ratio=0.5,
    )  # fmt: skip
    response = qpb.WhatIfResponse(
        actual=actual,
        alternative=draft,
        tickets=2,
        by_channel=[qpb.WhatIfBreakdown(key="chat", tickets=2, actual=actual, alternative=draft)],
        by_priority=[qpb.WhatIfBreakdown(key="high", tickets=2, actual=actual, alternative=draft)],
    )
    console = Console(width=200, record=True)
    console.print(what_if_table(response))
    text = console.export_text()
    assert "strict vs as decided" in text
    lines = [line for line in text.splitlines() if "2/2" in line]
    assert [line.split("│")[1].strip() for line in lines] == [
        "all",
        "channel chat",
        "priority high",
    ]
    assert "50%" in text and "100%" in text
