"""The same erasure guarantees with PostgreSQL read models and key store."""

from __future__ import annotations

from pathlib import Path

from careops.customer.v1 import customer_pb2 as pb
from careops.customer.v1 import customer_pb2_grpc
from careops.customer.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats
from careops_platform.db import make_engine
from sqlalchemy import Engine, inspect, text

from customer.tests.conftest import running_customer
from customer.tests.test_api import unique_contacts
from tests.support import channel_to


def rows_containing(engine: Engine, *needles: bytes) -> list[str]:
    """Returns table rows (any column, text or bytea) that contain a needle."""
    hits = []
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    data = value if isinstance(value, bytes | memoryview) else str(value).encode()
                    data = bytes(data)
                    hits += [f"{table}: {needle!r}" for needle in needles if needle in data]
    return hits


async def test_erasure_leaves_nothing_in_postgresql(
    postgres_url: str, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    email, phone = unique_contacts()
    engine = make_engine(postgres_url)
    try:
        async with running_customer(tmp_path, nats_server.url, database_url=postgres_url) as svc:
            assert svc.server is not None and svc.app is not None
            async with channel_to(svc) as channel:
                stub = customer_pb2_grpc.CustomerProfileServiceStub(channel)
                reply = await stub.RegisterCustomer(
                    pb.RegisterCustomerRequest(
                        profile=t.Profile(name="Pg Person", email=email, phone=phone)
                    )
                )
                cid = reply.customer.customer_id
                bought = await stub.RecordPurchase(
                    pb.RecordPurchaseRequest(
                        customer_id=cid, order_id="PG-1", amount="12.34", currency="CNY"
                    )
                )
                view = await stub.GetCustomer360(
                    pb.GetCustomer360Request(customer_id=cid, min_sequence=bought.sequence)
                )
                assert view.view.customer.profile.name == "Pg Person"
                needles = [email.lower().encode(), reply.customer.profile.phone.encode()]
                assert rows_containing(engine, *needles) == []
                digest = svc.app.hash_contact("email", email).encode()
                assert rows_containing(engine, digest)  # the scan sees what is there

                erased = await stub.EraseCustomer(
                    pb.EraseCustomerRequest(customer_id=cid, reason=t.ERASURE_REASON_LEGAL_ORDER)
                )
                after = await stub.GetCustomer360(
                    pb.GetCustomer360Request(customer_id=cid, min_sequence=erased.sequence)
                )
                assert after.view.customer.forgotten
                assert after.view.customer.profile == t.Profile()
                assert after.view.monetary_minor == 1234
                assert rows_containing(engine, *needles) == []
                assert rows_containing(engine, digest) == []
                state = svc.app.keys.state(cid)
                assert state is not None and not state.live
                with engine.connect() as connection:
                    wrapped = connection.execute(
                        text("SELECT wrapped_key FROM customer_keys WHERE customer_id = :c"),
                        {"c": cid},
                    ).scalar_one()
                assert wrapped is None
    finally:
        engine.dispose()
