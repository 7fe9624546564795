"""WatchCustomer360 (issue 15: the agent's customer 360 refreshed when it changes): the view at
once, again when the customer changed, and not for another customer's change; an unknown
customer is NOT_FOUND, as GetCustomer360 answers. Real gRPC, NATS and SQLite."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from careops.customer.v1 import customer_pb2 as pb
from careops.customer.v1 import customer_pb2_grpc
from careops.customer.v1 import types_pb2 as t

Stub = customer_pb2_grpc.CustomerProfileServiceStub


async def register(stub: Stub, name: str) -> pb.RegisterCustomerResponse:
    return await stub.RegisterCustomer(  # type: ignore[no-any-return]
        pb.RegisterCustomerRequest(
            profile=t.Profile(name=name, email=f"{uuid.uuid4().hex[:10]}@example.com")
        )
    )


async def test_the_360_is_pushed_when_the_customer_changes_and_not_for_others(
    stub: Stub,
) -> None:
    watched = await register(stub, "王芳")
    other = await register(stub, "李雷")
    customer_id = watched.customer.customer_id
    query = pb.GetCustomer360Request(customer_id=customer_id, min_sequence=other.sequence)
    stream = stub.WatchCustomer360(pb.WatchCustomer360Request(query=query))
    first = await asyncio.wait_for(stream.read(), 10)
    assert first.view.customer.customer_id == customer_id
    assert list(first.view.customer.tags) == []

    # Another customer's change first, then ours: the next message is ours (nothing for theirs).
    await stub.TagCustomer(pb.TagCustomerRequest(customer_id=other.customer.customer_id, add=["x"]))
    await stub.TagCustomer(pb.TagCustomerRequest(customer_id=customer_id, add=["vip"]))
    pushed = await asyncio.wait_for(stream.read(), 10)
    assert list(pushed.view.customer.tags) == ["vip"]
    stream.cancel()

    unknown = pb.GetCustomer360Request(customer_id="C-nobody")
    refused = stub.WatchCustomer360(pb.WatchCustomer360Request(query=unknown))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await asyncio.wait_for(refused.read(), 10)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
