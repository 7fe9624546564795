"""Two customer-profile replicas on one NATS, one PostgreSQL read model and one key store."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import uuid
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from careops.customer.v1 import customer_pb2 as pb
from careops.customer.v1 import customer_pb2_grpc
from careops.customer.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats
from customer.application import CODEC, STREAM, SUBJECT_PREFIX
from customer.domain import SegmentAssigned
from customer.tests.conftest import running_customer

from tests.support import channel_to


async def test_replicas_share_keys_and_append_each_segment_change_once(
    tmp_path: Path, nats_server: EmbeddedNats, postgres_url: str
) -> None:
    secrets = {
        "master_key": base64.b64encode(os.urandom(32)).decode(),
        "contact_hash_key": base64.b64encode(os.urandom(32)).decode(),
    }
    async with contextlib.AsyncExitStack() as stack:
        replicas = [
            await stack.enter_async_context(
                running_customer(
                    tmp_path / f"r{index}", nats_server.url, database_url=postgres_url, **secrets
                )
            )
            for index in range(2)
        ]
        stubs = []
        for replica in replicas:
            assert replica.server is not None
            channel = await stack.enter_async_context(channel_to(replica))
            stubs.append(customer_pb2_grpc.CustomerProfileServiceStub(channel))
        email = f"replica.{uuid.uuid4().hex[:8]}@example.com"
        registered = await stubs[0].RegisterCustomer(
            pb.RegisterCustomerRequest(profile=t.Profile(name="Two Replicas", email=email))
        )
        cid = registered.customer.customer_id
        bought = await stubs[1].RecordPurchase(
            pb.RecordPurchaseRequest(customer_id=cid, order_id="R-1", amount="9", currency="CNY")
        )
        # The key created by one replica decrypts on the other.
        view = await stubs[1].GetCustomer360(
            pb.GetCustomer360Request(customer_id=cid, min_sequence=bought.sequence)
        )
        assert view.view.customer.profile.email == email

        # Both run the periodic recomputation 17 weeks on: the churn flag is appended once.
        for replica in replicas:
            assert replica.app is not None
            now = replica.app.clock() + timedelta(weeks=17)
            replica.app.clock = lambda now=now: now  # type: ignore[misc]
        segmenters = [replica.segmenter for replica in replicas]
        assert all(segmenters)
        await asyncio.gather(*(s.recompute(None) for s in segmenters if s is not None))
        store = replicas[0].store
        assert store is not None
        changes = [
            decoded.event
            for message in await store.read_subject(
                stream=STREAM.name, subject=f"{SUBJECT_PREFIX}.{cid}"
            )
            for decoded in CODEC.decode_batch(message.batch)
            if isinstance(decoded.event, SegmentAssigned)
        ]
        assert [change.churn_risk for change in changes].count(True) == 1, changes

        erased = await stubs[1].EraseCustomer(
            pb.EraseCustomerRequest(customer_id=cid, reason=t.ERASURE_REASON_CUSTOMER_REQUEST)
        )
        anonymised = await stubs[0].GetCustomer360(
            pb.GetCustomer360Request(customer_id=cid, min_sequence=erased.sequence)
        )
        assert anonymised.view.customer.forgotten
        assert not anonymised.view.customer.personal_data_available
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stubs[0].FindCustomer(pb.FindCustomerRequest(email=email))
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND
