"""The pure parts: amounts and currencies, contacts, decide/evolve, RFM quintiles and tiers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from careops_platform.contacts import InvalidContact, normalize_email, normalize_phone

from customer import currencies
from customer import domain as d

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SEALED = d.Sealed(1, b"n" * 12, b"ciphertext")


def registered(customer_id: str = "C-1") -> d.Customer:
    event = d.CustomerRegistered(customer_id, SEALED, "eh", "ph", "en-GB", d.Consent())
    return d.evolve(d.initial(customer_id), event, NOW)


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("199.00", "CNY", 19900),
        ("199", "cny", 19900),
        ("1500", "JPY", 1500),
        ("1.234", "KWD", 1234),
    ],
)
def test_amounts_become_minor_units(amount: str, currency: str, minor: int) -> None:
    assert currencies.to_minor(amount, currencies.currency_code(currency)) == minor
    assert currencies.to_decimal(minor, currencies.currency_code(currency)).replace(".", "") in (
        str(minor),
        f"{minor:03d}",
    )


@pytest.mark.parametrize(
    ("amount", "currency", "field", "reason"),
    [
        ("-5.00", "EUR", "amount", "must not be negative"),
        ("0", "EUR", "amount", "must be greater than zero"),
        ("1.5", "JPY", "amount", "JPY has 0 decimal places"),
        ("1e3", "EUR", "amount", "is not a decimal number"),
        ("10.00", "XYZ", "currency", "not an ISO 4217 currency code"),
        ("10.00", "XAU", "currency", "not an ISO 4217 currency code"),
    ],
)
def test_bad_amounts_are_rejected(amount: str, currency: str, field: str, reason: str) -> None:
    with pytest.raises(currencies.InvalidAmount) as caught:
        currencies.to_minor(amount, currencies.currency_code(currency))
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_contacts_are_normalised() -> None:
    assert normalize_email("  Ann.Lee@Example.COM ") == "ann.lee@example.com"
    assert normalize_phone("0086 138-0013 (8000)") == "+8613800138000"
    for bad in ("ann", "ann@", "@example.com", "a..b@example.com", "ann@example"):
        with pytest.raises(InvalidContact):
            normalize_email(bad)
    for bad in ("12345", "13800138000", "+0123456789", "+86 abc"):
        with pytest.raises(InvalidContact):
            normalize_phone(bad)


def test_purchase_rules() -> None:
    state = registered()
    [event] = d.decide(state, d.RecordPurchase("O-1", "10.50", "eur"), now=NOW)
    assert event == d.PurchaseRecorded("O-1", 1050, "EUR", NOW)
    state = d.evolve(state, event, NOW)
    assert d.decide(state, d.RecordPurchase("O-1", "10.50", "EUR"), now=NOW) == []
    with pytest.raises(d.CustomerAlreadyExists):
        d.decide(state, d.RecordPurchase("O-1", "11.00", "EUR"), now=NOW)
    with pytest.raises(d.InvalidCommand) as caught:
        d.decide(
            state,
            d.RecordPurchase("bad id!", "-1", "EUR", purchased_at=NOW + timedelta(days=1)),
            now=NOW,
        )
    assert {name for name, _ in caught.value.violations} == {"order_id", "amount", "purchased_at"}


def test_tags_are_labels() -> None:
    state = registered()
    [event] = d.decide(state, d.TagCustomer(("VIP", "technical"), ()), now=NOW)
    assert event == d.CustomerTagged(("vip", "technical"), ())
    state = d.evolve(state, event, NOW)
    assert d.decide(state, d.TagCustomer(("vip",), ()), now=NOW) == []
    with pytest.raises(d.InvalidCommand):
        d.decide(state, d.TagCustomer(("not a label",), ()), now=NOW)
    with pytest.raises(d.InvalidCommand):
        d.decide(state, d.TagCustomer((), ()), now=NOW)


def test_forgetting_is_final() -> None:
    state = registered()
    with pytest.raises(d.InvalidCommand):
        d.decide(state, d.ForgetCustomer(None), now=NOW)
    [event] = d.decide(state, d.ForgetCustomer(d.ErasureReason.CUSTOMER_REQUEST), now=NOW)
    state = d.evolve(state, event, NOW)
    assert state.personal is None and state.email_hash == "" and state.tags == frozenset()
    with pytest.raises(d.IllegalTransition):
        d.decide(state, d.ForgetCustomer(d.ErasureReason.CUSTOMER_REQUEST), now=NOW)
    with pytest.raises(d.IllegalTransition):
        d.decide(state, d.RecordPurchase("O-2", "1.00", "EUR"), now=NOW)
    assert d.decide(state, d.AssignSegment(d.Segment(d.Tier.HIGH_VALUE), "v"), now=NOW) == []
    with pytest.raises(d.CustomerNotFound):
        d.decide(d.initial("C-2"), d.TagCustomer(("vip",)), now=NOW)


def test_quintiles_use_mid_ranks() -> None:
    population = [1, 1, 1, 1, 10]
    assert d.quintile(population, 1) == 2
    assert d.quintile(population, 10) == 5
    assert d.quintile([5], 5) == 3
    assert [d.quintile(list(range(10)), v) for v in range(10)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def activity(customer_id: str, purchases: int, spent: int, days_ago: float) -> d.Activity:
    return d.Activity(
        customer_id,
        registered_at=NOW - timedelta(days=400),
        last_purchase_at=NOW - timedelta(days=days_ago) if purchases else None,
        frequency=purchases,
        monetary=spent,
    )


def test_tiers_follow_rfm_and_churn() -> None:
    model = d.RfmModel()
    big = activity("big", 12, 900_000, 2)
    small = [activity(f"s{i}", 1, 1_000, 30 + i) for i in range(8)]
    dormant = activity("dormant", 1, 500, 200)
    newcomer = d.Activity("new", registered_at=NOW - timedelta(days=1))
    population = d.Population.of([big, *small, dormant, newcomer])
    assert len(population) == 10

    assert d.segment(big, population, model, NOW) == d.Segment(d.Tier.HIGH_VALUE, 5, 5, 5, False)
    churned = d.segment(dormant, population, model, NOW)
    assert churned.churn_risk and churned.tier is d.Tier.LOW_FREQUENCY
    assert d.segment(newcomer, population, model, NOW) == d.Segment(d.Tier.REGULAR, 1, 1, 1, False)
    # A recent contact (a ticket) clears the churn flag; the purchase history still rules.
    contacted = d.Activity(**{**dormant.__dict__, "last_contact_at": NOW - timedelta(days=3)})
    assert not d.segment(contacted, population, model, NOW).churn_risk
    # Recency decays: the same facts, evaluated 17 weeks later, are a churn risk.
    later = NOW + timedelta(weeks=17)
    assert d.segment(big, population, model, later).tier is d.Tier.LOW_FREQUENCY


@pytest.mark.parametrize("order_id", ["O-1\n", "O 1", ""])
def test_an_order_id_with_a_trailing_newline_or_space_is_invalid(order_id: str) -> None:
    with pytest.raises(d.InvalidCommand):
        d.decide(registered(), d.RecordPurchase(order_id, "10.50", "EUR"), now=NOW)


def test_a_locale_with_a_trailing_newline_is_invalid() -> None:
    violations = d.validate_personal(
        name="A", address="", notes="", locale="en-GB\n", has_contact=True
    )
    assert [field for field, _ in violations] == ["profile.locale"]
