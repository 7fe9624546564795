"""Customer's application layer through its composition root, on the in-memory store (no NATS)."""

from __future__ import annotations

from pathlib import Path

import pytest
from careops_eventstore.memory import InMemoryEventStore

from customer import domain as d
from customer.application import CODEC, STREAM, CustomerApp, PersonalInput
from customer.main import CustomerService, CustomerSettings
from tests.in_memory import logged, types_of
from tests.support import FakeClock

ALICE = PersonalInput(name="Alice Wong", email="Alice@Example.com", phone="", locale="en-GB")


async def bootstrapped(tmp_path: Path) -> tuple[CustomerApp, InMemoryEventStore]:
    """Returns the application the service would run (key store in `tmp_path`), in memory."""
    service = CustomerService(CustomerSettings(data_dir=str(tmp_path)), clock=FakeClock())
    store = InMemoryEventStore()
    return await service.bootstrap(store), store


async def test_registration_appends_sealed_personal_data_only(tmp_path: Path) -> None:
    app, store = await bootstrapped(tmp_path)
    result = await app.register("c-1", ALICE, d.Consent(), command_id="r-1", actor="agent-1")
    [item] = await logged(store, STREAM.name, CODEC)
    assert item.sequence == result.sequence
    assert item.envelope.policy_versions["rfm_model"] == app.model.version
    event = item.event
    assert isinstance(event, d.CustomerRegistered)
    assert event.email_hash == app.hash_contact("email", "alice@example.com")
    assert b"Alice" not in item.envelope.payload.value  # sealed, never plaintext on the log
    personal = app.open_personal("c-1", result.state.personal)
    assert personal is not None
    assert (personal.name, personal.email) == ("Alice Wong", "alice@example.com")


async def test_erasure_destroys_the_key_then_forgets_once(tmp_path: Path) -> None:
    app, store = await bootstrapped(tmp_path)
    registered = await app.register("c-1", ALICE, d.Consent(), command_id="r-1", actor="a")
    reason = d.ErasureReason.CUSTOMER_REQUEST
    erased = await app.erase("c-1", reason, command_id="e-1", actor="a")
    again = await app.erase("c-1", reason, command_id="e-1", actor="a")  # a retry
    assert again.sequence == erased.sequence
    with pytest.raises(d.IllegalTransition):
        await app.erase("c-1", reason, command_id="e-2", actor="a")
    assert types_of(await logged(store, STREAM.name, CODEC)) == [
        "careops.customer.v1.CustomerRegistered",
        "careops.customer.v1.CustomerForgotten",
    ]
    assert app.open_personal("c-1", registered.state.personal) is None
    assert await app.reconcile_erasures() == 0


async def test_an_invalid_contact_is_refused_before_anything_is_appended(tmp_path: Path) -> None:
    app, store = await bootstrapped(tmp_path)
    bad = PersonalInput(name="Bob", email="not-an-address")
    with pytest.raises(d.InvalidCommand):
        await app.register("c-2", bad, d.Consent(), command_id="r-2", actor="a")
    assert await store.last_sequence(STREAM.name) == 0
