"""`careops policy`: the kind table covers every policy RPC the services serve; diff, history
lines and the what-if table as printed (pure helpers, no gateway)."""

from __future__ import annotations

from careops.common.v1 import policy_pb2
from careops.quality.v1 import quality_pb2 as qpb
from careops.ticketing.v1 import ticketing_pb2 as tpb
from careops_cli.policy import KINDS, describe, unified_diff, what_if_table
from rich.console import Console


def test_the_sla_kind_names_ticketings_rpcs() -> None:
    rpcs = KINDS["sla"]
    service = tpb.DESCRIPTOR.services_by_name["TicketingService"]
    for method, request in (
        (rpcs.put, rpcs.put_request),
        (rpcs.get, rpcs.get_request),
        (rpcs.list, rpcs.list_request),
    ):
        assert service.methods_by_name[method].input_type.full_name == request.DESCRIPTOR.full_name


def test_diff_and_describe() -> None:
    old = policy_pb2.PolicyVersion(revision=1, version="a", document="version: a\nx: 1\n")
    new = policy_pb2.PolicyVersion(
        revision=2, version="b", document="version: b\nx: 1\n", author="lead", reason="why"
    )
    assert unified_diff(old, new).splitlines()[2:] == [
        "@@ -1,2 +1,2 @@",
        "-version: a",
        "+version: b",
        " x: 1",
    ]
    assert describe(new).startswith("revision 2 b by lead at ") and describe(new).endswith("why")


def test_the_what_if_table_has_the_total_then_each_channel_and_priority() -> None:
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
    console.print(what_if_table(response, "1d"))
    text = console.export_text()
    assert "strict vs as decided" in text
    lines = [line for line in text.splitlines() if "2/2" in line]
    assert [line.split("│")[1].strip() for line in lines] == [
        "all",
        "channel chat",
        "priority high",
    ]
    assert all("1/2" in line and "100%" in line and "50%" in line for line in lines)
