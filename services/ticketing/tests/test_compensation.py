"""Pure tests of compensation within limits (decide/evolve) and of the limits file."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from careops_platform.config_files import ConfigError

from ticketing import domain as d
from ticketing.config import load_compensation_limits
from ticketing.tests.test_domain import T0, opened, run

AGENT_LIMIT = Decimal(2000)
SUPERVISOR_LIMIT = Decimal(20000)


def grant(amount: str, cid: str = "C-1", limit: Decimal = AGENT_LIMIT, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "compensation_id": cid,
        "kind": d.CompensationKind.REFUND,
        "amount": amount,
        "currency": "CNY",
        "reason": "late delivery",
        "by": "agent-wang",
        "limit": limit,
    }
    fields.update(overrides)
    return d.GrantCompensation(**fields)


def test_within_the_limit_is_granted_above_it_requested() -> None:
    state, events = run(opened(), grant("2000"), T0)
    assert [type(e) for e in events] == [d.CompensationGranted]
    state, events = run(state, grant("0.01", "C-2"), T0 + timedelta(minutes=1))
    assert [type(e) for e in events] == [d.CompensationRequested]
    assert [c.status for c in state.compensations] == [
        d.CompensationStatus.GRANTED,
        d.CompensationStatus.PENDING,
    ]
    assert d.granted_total(state.compensations, "CNY") == Decimal(2000)


def test_2500_by_an_agent_waits_by_a_supervisor_is_granted() -> None:
    _state, by_agent = run(opened(), grant("2500"), T0)
    _state, by_supervisor = run(opened(), grant("2500", limit=SUPERVISOR_LIMIT, by="lead"), T0)
    assert isinstance(by_agent[0], d.CompensationRequested) and by_agent[0].limit == "2000"
    assert isinstance(by_supervisor[0], d.CompensationGranted)
    assert by_supervisor[0].granted_by == "lead"


def test_approval_needs_the_approvers_limit_to_cover_the_tickets_total() -> None:
    state, _ = run(opened(), grant("1500", "C-1", limit=SUPERVISOR_LIMIT), T0)
    state, _ = run(state, grant("19000", "C-2"), T0)
    with pytest.raises(d.LimitExceeded, match="20000 CNY"):
        run(state, d.ApproveCompensation("C-2", by="lead", limit=SUPERVISOR_LIMIT), T0)
    state, events = run(state, d.ApproveCompensation("C-2", by="boss", limit=Decimal(50000)), T0)
    assert events == [
        d.CompensationApproved(
            "C-2", d.CompensationKind.REFUND, "19000", "CNY", "agent-wang", "boss"
        )
    ]
    [_, approved] = state.compensations
    assert (approved.status, approved.decided_by) == (d.CompensationStatus.GRANTED, "boss")


def test_only_a_pending_compensation_is_decided() -> None:
    state, _ = run(opened(), grant("10"), T0)
    with pytest.raises(d.IllegalTransition, match="it is granted"):
        run(state, d.RejectCompensation("C-1", "no", by="lead"), T0)
    with pytest.raises(d.CompensationNotFound):
        run(state, d.ApproveCompensation("C-9", by="lead", limit=SUPERVISOR_LIMIT), T0)
    state, _ = run(state, grant("5000", "C-2"), T0)
    state, events = run(state, d.RejectCompensation("C-2", "out of policy", by="lead"), T0)
    assert isinstance(events[0], d.CompensationRejected) and events[0].rejected_by == "lead"
    assert state.compensations[1].status is d.CompensationStatus.REJECTED
    assert d.granted_total(state.compensations, "CNY") == Decimal(10)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"amount": "0"}, "amount"),
        ({"amount": "-1"}, "amount"),
        ({"amount": "1.005"}, "amount"),
        ({"amount": "1e3"}, "amount"),
        ({"amount": "ten"}, "amount"),
        ({"currency": "RMB1"}, "currency"),
        ({"currency": "usd"}, "currency"),
        ({"kind": None}, "kind"),
        ({"reason": " "}, "reason"),
        ({"reason": "x" * 201}, "reason"),
    ],
)
def test_a_bad_grant_names_its_field(overrides: dict[str, Any], field: str) -> None:
    command = grant("10", **{k: v for k, v in overrides.items() if k != "amount"})
    if "amount" in overrides:
        command = grant(overrides["amount"])
    with pytest.raises(d.InvalidCommand) as raised:
        run(opened(), command, T0)
    assert [name for name, _why in raised.value.violations] == [field]


def test_a_closed_ticket_takes_no_compensation() -> None:
    state, _ = run(opened(), d.ResolveTicket("done"), T0)
    state, _ = run(state, grant("10"), T0)  # a resolved ticket still does
    state, _ = run(state, d.CloseTicket(), T0)
    with pytest.raises(d.IllegalTransition):
        run(state, grant("10", "C-2"), T0)


def test_the_same_compensation_id_is_recorded_once() -> None:
    state, _ = run(opened(), grant("10"), T0)
    _state, events = run(state, grant("10"), T0)
    assert events == []


def test_limits_take_the_best_role_and_the_currency_before_the_wildcard() -> None:
    limits = d.CompensationLimits(
        {"agent": {"*": Decimal(2000), "USD": Decimal(300)}, "senior_agent": {"*": Decimal(5000)}}
    )
    assert limits.limit_for({"agent"}, "CNY") == 2000
    assert limits.limit_for({"agent"}, "USD") == 300
    assert limits.limit_for({"agent", "senior_agent"}, "USD") == 5000
    assert limits.limit_for({"integration"}, "CNY") == 0
    assert limits.grants({"agent"}) and not limits.grants({"integration", "oncall"})


def test_the_packaged_limits_default_to_2000_for_agents() -> None:
    limits = load_compensation_limits(None)
    assert limits.limit_for({"agent"}, "CNY") == Decimal(2000)
    assert limits.limit_for({"supervisor"}, "EUR") == Decimal(20000)
    assert not limits.grants({"integration"})


def _write(tmp_path: Path, data: Any) -> str:
    path = tmp_path / "limits.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def test_a_limits_file_is_configurable_per_role_and_currency(tmp_path: Path) -> None:
    path = _write(tmp_path, {"limits": {"agent": {"CNY": 500, "*": "100.50"}}})
    limits = load_compensation_limits(path)
    assert limits.limit_for({"agent"}, "CNY") == 500
    assert limits.limit_for({"agent"}, "USD") == Decimal("100.50")
    assert limits.limit_for({"supervisor"}, "CNY") == 0


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"integration": {"*": 10}}, r"integration is not a role that grants"),
        ({"agent": {"cny": 10}}, r"'cny' is not a currency code"),
        ({"agent": {"CNY": -1}}, r"at least 0"),
        ({"agent": {"CNY": "lots"}}, r"must be an amount"),
        ({"agent": [10]}, r"must map currencies"),
    ],
)
def test_a_bad_limits_file_is_refused_with_a_located_error(
    tmp_path: Path, limits: Any, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_compensation_limits(_write(tmp_path, {"limits": limits}))
