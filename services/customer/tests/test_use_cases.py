"""The use cases of the customer API on the in-memory event store: contact uniqueness,
idempotency-key reuse, the CSAT average and the data-export document."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from careops_eventstore.memory import InMemoryEventStore
from careops_platform.errors import AlreadyExists, InvalidArgument
from sqlalchemy import create_engine

from customer import domain as d
from customer.application import (
    CustomerApp,
    PersonalInput,
    Profiles,
    average_csat,
    export_document,
)
from customer.keystore import KeyStore

HASH_KEY = b"h" * 32
AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


class Owners:
    """Contact owners as the customer read model would answer (kind, digest) -> id."""

    def __init__(self) -> None:
        self.owners: dict[tuple[str, str], str] = {}

    async def __call__(self, kind: str, digest: str) -> str | None:
        return self.owners.get((kind, digest))


@pytest.fixture
async def app(tmp_path: Path) -> CustomerApp:
    keys = KeyStore(create_engine(f"sqlite:///{tmp_path / 'keys.db'}"), os.urandom(32))
    keys.create_schema()
    app = CustomerApp(store=InMemoryEventStore(), keys=keys, hash_key=HASH_KEY, clock=lambda: AT)
    await app.provision()
    return app


async def test_an_e_mail_of_another_customer_is_already_registered(app: CustomerApp) -> None:
    owners = Owners()
    owners.owners[("email", app.hash_contact("email", "ann@example.com"))] = "C-other"
    profiles = Profiles(app, owners)
    with pytest.raises(AlreadyExists) as raised:
        await profiles.register(
            "C1",
            PersonalInput(name="Ann", email="ANN@example.com"),
            d.Consent(),
            command_id="r1",
            actor="test",
        )
    assert raised.value.message == "customer C-other already has this e-mail"
    assert [v.field for v in raised.value.violations] == ["profile.email"]


async def test_a_customer_keeps_its_own_contact_and_changes_name_freely(app: CustomerApp) -> None:
    owners = Owners()
    profiles = Profiles(app, owners)
    await profiles.register(
        "C1",
        PersonalInput(name="Ann", phone="+8613800138000"),
        d.Consent(),
        command_id="r1",
        actor="t",
    )
    owners.owners[("phone", app.hash_contact("phone", "+8613800138000"))] = "C1"
    result = await profiles.update_profile(
        "C1", {"phone": "+8613800138000", "name": "Anna"}, None, command_id="u1", actor="t"
    )
    assert result.events


async def test_a_new_phone_of_another_customer_is_refused_on_update(app: CustomerApp) -> None:
    owners = Owners()
    owners.owners[("phone", app.hash_contact("phone", "+4930123456"))] = "C2"
    with pytest.raises(AlreadyExists) as raised:
        await Profiles(app, owners).update_profile(
            "C1", {"phone": "+4930123456"}, None, command_id="u1", actor="t"
        )
    assert [v.field for v in raised.value.violations] == ["phone"]


async def test_an_invalid_registration_is_refused_before_contacts_are_looked_up(
    app: CustomerApp,
) -> None:
    looked_up: list[str] = []

    async def owner_of(kind: str, digest: str) -> str | None:
        looked_up.append(kind)
        return None

    with pytest.raises(d.InvalidCommand):
        await Profiles(app, owner_of).register(
            "C1",
            PersonalInput(name="Ann", email="not-an-address"),
            d.Consent(),
            command_id="r",
            actor="t",
        )
    assert looked_up == []


async def test_a_registration_answers_with_the_record_the_key_store_would_open(
    app: CustomerApp,
) -> None:
    """register_opened decrypts the reply with the key it just created: the same record
    open_personal reads through the key store, on the first call and on a retry."""
    profiles = Profiles(app, Owners())
    ann = PersonalInput(name=" Ann ", email="ANN@example.com", phone="0086 138 0013 8000")
    first, opened = await profiles.register_opened(
        "C1", ann, d.Consent(), command_id="r1", actor="t"
    )
    again, reopened = await profiles.register_opened(
        "C1", ann, d.Consent(), command_id="r1", actor="t"
    )
    assert again.sequence == first.sequence and not again.events
    expected = app.open_personal("C1", first.state.personal)
    assert expected is not None and (expected.name, expected.email) == ("Ann", "ann@example.com")
    assert opened == expected and reopened == expected
    event = first.events[0]
    assert isinstance(event, d.CustomerRegistered)
    assert event.email_hash == app.hash_contact("email", "ann@example.com")
    assert event.phone_hash == app.hash_contact("phone", "+8613800138000")


async def registered(app: CustomerApp) -> Profiles:
    profiles = Profiles(app, Owners())
    await profiles.register(
        "C1",
        PersonalInput(name="Ann", email="ann@example.com"),
        d.Consent(),
        command_id="r1",
        actor="t",
    )
    return profiles


async def test_a_purchase_answers_with_what_was_recorded(app: CustomerApp) -> None:
    profiles = await registered(app)
    command = d.RecordPurchase("O1", "12.50", "EUR", purchased_at=AT)
    _, bought = await profiles.record_purchase("C1", command, command_id="k1", actor="t")
    assert (bought.order_id, bought.amount_minor, bought.currency) == ("O1", 1250, "EUR")
    assert bought.purchased_at == AT
    _, again = await profiles.record_purchase("C1", command, command_id="k1", actor="t")
    assert again == bought


async def test_an_idempotency_key_reused_for_another_order_is_invalid(app: CustomerApp) -> None:
    profiles = await registered(app)
    await profiles.record_purchase(
        "C1", d.RecordPurchase("O1", "1.00", "EUR"), command_id="k1", actor="t"
    )
    with pytest.raises(InvalidArgument) as raised:
        await profiles.record_purchase(
            "C1", d.RecordPurchase("O2", "2.00", "EUR"), command_id="k1", actor="t"
        )
    assert [v.field for v in raised.value.violations] == ["idempotency-key"]


def test_the_csat_average_is_rounded_and_absent_without_surveys() -> None:
    assert average_csat([5, 4, 4]) == 4.333
    assert average_csat([]) is None


@dataclass(frozen=True)
class Ticket:
    ticket_id: str = "T1"
    channel: str = "email"
    type: str = "fault"
    priority: str = "high"
    status: str = "open"
    opened_at: datetime = AT


def test_the_export_lists_every_purchase_and_ticket_and_says_what_remains() -> None:
    view = {"customer": {"customer_id": "C1"}, "recent_purchases": [{"order_id": "O9"}]}
    document = export_document(
        view=view, purchases=[{"order_id": "O1"}], tickets=[Ticket()], erased=False
    )
    assert "recent_purchases" not in document and "recent_purchases" in view
    assert document["purchases"] == [{"order_id": "O1"}]
    assert document["tickets"] == [
        {
            "ticket_id": "T1",
            "channel": "email",
            "type": "fault",
            "priority": "high",
            "status": "open",
            "opened_at": AT.isoformat(),
        }
    ]
    assert document["erased"] is False
    assert document["note"].startswith("Personal data is decrypted")
    erased = export_document(view=view, purchases=[], tickets=[], erased=True)
    assert erased["note"] == "Personal data was erased; only non-personal facts remain."
