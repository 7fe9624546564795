"""Customer-profile: GetCustomer360 on a big read model, register / purchase throughput.

GetCustomer360 is a read benchmark: the read model is bulk-loaded straight into SQL (100,000
customers with sealed profiles and their data keys, 1,000,000 timeline entries across the four
timeline sources) on SQLite and on PostgreSQL, then read through gRPC from the running service,
one call at a time, for random customers. Register and purchase are measured with 32 commands in
flight against the raw JetStream publish baseline measured on the same server in the same run.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from careops.customer.v1 import customer_pb2 as pb
from careops.customer.v1 import customer_pb2_grpc
from careops.customer.v1 import types_pb2 as t
from careops.customer.v1.types_pb2 import PersonalData
from careops_eventstore.nats_embedded import free_port
from customer import readmodels as rm
from customer.keystore import KeyStore, customer_keys, seal
from customer.tests.conftest import running_customer
from sqlalchemy import Engine, Table

from bench.baselines import jetstream_publish
from bench.common import (
    CLIENTS,
    Report,
    embedded_nats,
    latency_summary,
    ratio,
    scratch_postgres,
    service_process,
)
from bench.grpc_load import LoadSpec, load_from_child
from bench.workload import sample_batch
from tests.support import channel_to, service_channel

Stub = customer_pb2_grpc.CustomerProfileServiceStub
NOW = datetime(2026, 11, 1, tzinfo=UTC)
CHANNELS = ("email", "phone", "chat", "app", "web")
# Issue 16 item 3: RegisterCustomer / RecordPurchase against the 32-publisher JetStream baseline.
GOAL_COMMAND_RATIO = 0.3


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def bulk_insert(engine: Engine, table: Table, rows: Iterable[tuple[Any, ...]]) -> int:
    """Inserts tuples in column order of `columns` below: COPY on PostgreSQL, executemany on
    SQLite (the raw driver, in one transaction)."""
    columns = [c.name for c in table.columns if not (c.primary_key and c.name == "entry_id")]
    count = 0
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            names = ", ".join(columns)
            with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
                    count += 1
        else:
            marks = ", ".join("?" for _ in columns)
            statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
            chunk: list[tuple[Any, ...]] = []
            for row in rows:
                chunk.append(tuple(_sqlite_value(value) for value in row))
                if len(chunk) == 20_000:
                    cursor.executemany(statement, chunk)
                    count += len(chunk)
                    chunk = []
            cursor.executemany(statement, chunk)
            count += len(chunk)
        raw.commit()
    finally:
        raw.close()
    return count


def load(engine: Engine, keys: KeyStore, keys_engine: Engine, customers: int) -> dict[str, Any]:
    """Bulk-loads `customers` customers and 10 timeline entries each (the 1:10 of the goal)."""
    started = time.perf_counter()
    rng = random.Random(7)
    ids = [f"C-bench{index:08d}" for index in range(customers)]
    key_rows, customer_rows = [], []
    for sequence, customer_id in enumerate(ids, start=1):
        data_key = os.urandom(32)
        wrapped = keys._wrap(customer_id, data_key)
        key_rows.append((customer_id, wrapped, keys.master_key_id, NOW, None, None, False))
        personal = PersonalData(
            name=f"Customer {sequence}", email=f"c{sequence}@example.com", phone="+8613800000000"
        )
        sealed = seal(data_key, customer_id, personal.SerializeToString())
        at = NOW - timedelta(days=rng.randint(1, 700))
        customer_rows.append(
            (
                customer_id,
                sequence,
                sealed.key_version,
                sealed.nonce,
                sealed.ciphertext,
                uuid.uuid4().hex + uuid.uuid4().hex,
                None,
                "zh-CN",
                True,
                False,
                rng.choice(("high_value", "potential", "regular", "low_frequency")),
                rng.randint(1, 5),
                rng.randint(1, 5),
                rng.randint(1, 5),
                rng.random() < 0.1,
                2,
                at,
                at - timedelta(days=30),
                at,
                False,
                None,
                sequence,
            )
        )
    counts = {
        "keys": bulk_insert(keys_engine, customer_keys, key_rows),
        "customers": bulk_insert(engine, rm.customers, customer_rows),
    }

    def when() -> datetime:
        return NOW - timedelta(minutes=rng.randint(1, 700 * 24 * 60))

    counts["activity"] = bulk_insert(
        engine,
        rm.activity,
        ((cid, when(), "purchase", "purchase O-1: 99.00 CNY", 1) for cid in ids for _ in range(3)),
    )
    counts["purchases"] = bulk_insert(
        engine,
        rm.purchases,
        ((cid, f"O-{n}", 9900, "CNY", when(), 1) for cid in ids for n in range(2)),
    )
    tickets = [(f"T-{cid}-{n}", cid, rng.choice(CHANNELS)) for cid in ids for n in range(2)]
    counts["tickets"] = bulk_insert(
        engine,
        rm.tickets,
        (
            (
                tid,
                cid,
                ch,
                "fault",
                "normal",
                rng.choice(("open", "resolved", "closed")),
                when(),
                NOW,
            )
            for tid, cid, ch in tickets
        ),
    )
    counts["ticket_activity"] = bulk_insert(
        engine,
        rm.ticket_activity,
        (
            (cid, tid, when(), "ticket_event", ch, "agent replied", 1, "")
            for tid, cid, ch in tickets
            for _ in range(2 if tid.endswith("0") else 3)
        ),
    )
    counts["incidents"] = bulk_insert(
        engine,
        rm.incidents,
        ((f"I-{n % 500}", cid, when(), "incident_linked", "linked") for n, cid in enumerate(ids)),
    )
    counts["surveys"] = bulk_insert(
        engine,
        rm.surveys,
        (
            (tid, cid, rng.randint(1, 5), rng.randint(0, 10), "neutral", ch, when())
            for tid, cid, ch in tickets[::2]
        ),
    )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE")  # planner statistics, as in a steady state
    timeline = sum(counts[name] for name in ("activity", "ticket_activity", "incidents", "surveys"))
    return {"seconds": round(time.perf_counter() - started, 1), "timeline": timeline, **counts}


async def read_360(stub: Stub, ids: Sequence[str], calls: int) -> dict[str, Any]:
    rng = random.Random(11)
    for customer_id in ids[:50]:  # warm-up
        await stub.GetCustomer360(pb.GetCustomer360Request(customer_id=customer_id))
    latencies = []
    entries = 0
    for _ in range(calls):
        customer_id = rng.choice(ids)
        begun = time.perf_counter()
        reply = await stub.GetCustomer360(pb.GetCustomer360Request(customer_id=customer_id))
        latencies.append(time.perf_counter() - begun)
        assert reply.view.customer.personal_data_available
        entries += len(reply.view.timeline)
    return {
        "calls": calls,
        "mean_timeline_entries": round(entries / calls, 1),
        **latency_summary(latencies),
    }


async def backend_360(
    label: str, nats_url: str, directory: Path, url: str, customers: int, calls: int
) -> dict[str, Any]:
    master = base64.b64encode(os.urandom(32)).decode()
    async with running_customer(
        directory / label, nats_url, database_url=url, master_key=master
    ) as service:
        assert service.server is not None and service.app is not None
        loaded = await asyncio.to_thread(
            load, service.engine, service.app.keys, service.keys_engine, customers
        )
        ids = [f"C-bench{index:08d}" for index in range(customers)]
        async with channel_to(service) as channel:
            read = await read_360(customer_pb2_grpc.CustomerProfileServiceStub(channel), ids, calls)
    return {"load": loaded, **read}


REGISTER = "/careops.customer.v1.CustomerProfileService/RegisterCustomer"
PURCHASE = "/careops.customer.v1.CustomerProfileService/RecordPurchase"
WARMUP = 320


def _registrations(count: int) -> tuple[str, ...]:
    """Serialized RegisterCustomer requests, each a new customer (its own email)."""
    requests = []
    for _ in range(count):
        token = uuid.uuid4().hex[:12]
        profile = t.Profile(name=f"Bench {token}", email=f"{token}@example.com")
        requests.append(pb.RegisterCustomerRequest(profile=profile).SerializeToString().hex())
    return tuple(requests)


def _purchases(customers: Sequence[str], count: int) -> tuple[str, ...]:
    """Serialized RecordPurchase requests for random `customers`, each its own order."""
    rng = random.Random(3)
    return tuple(
        pb.RecordPurchaseRequest(
            customer_id=rng.choice(customers),
            order_id=uuid.uuid4().hex,
            amount="99.50",
            currency="CNY",
        )
        .SerializeToString()
        .hex()
        for _ in range(count)
    )


async def _registered_pool(channel: Any) -> list[str]:
    """Registers the purchases' customers (unmeasured); returns their ids."""
    stub = customer_pb2_grpc.CustomerProfileServiceStub(channel)
    pool = []
    for request in _registrations(CLIENTS):
        message = pb.RegisterCustomerRequest.FromString(bytes.fromhex(request))
        pool.append((await stub.RegisterCustomer(message)).customer.customer_id)
    return pool


async def _measured(
    target: str, data_dir: str, pool: Sequence[str], total: int, pids: tuple[int, ...]
) -> dict[str, Any]:
    """RegisterCustomer, then RecordPurchase, 32 in flight from a child process; the CPU of
    `pids` per call (the first: the process serving the calls)."""
    figures = {}
    loads = {
        "register": (REGISTER, _registrations(WARMUP + total)),
        "purchase": (PURCHASE, _purchases(pool, WARMUP + total)),
    }
    for name, (method, requests) in loads.items():
        result = await load_from_child(
            LoadSpec(
                target=target,
                method=method,
                request_hex="",
                requests=total,
                warmup=WARMUP,
                idempotency_keys=True,
                identity_data_dir=data_dir,
                watch_pids=pids,
                requests_hex=requests,
            )
        )
        calls = max(1, len(result.latencies))
        figures[name] = {
            **result.summary(),
            "cpu_ms_per_op": round(result.watched_cpu_s[0] / calls * 1000, 3),
            "service_cpu_share": result.cpu_share(0),
            "first_error": result.first_error,
        }
        if len(pids) > 1:
            figures[name]["worker_cpu_ms_per_op"] = round(result.watched_cpu_s[1] / calls * 1000, 3)
            figures[name]["worker_cpu_share"] = result.cpu_share(1)
    return figures


async def commands(nats_url: str, directory: Path, total: int) -> dict[str, Any]:
    """RegisterCustomer, then RecordPurchase, 32 in flight from a child process (the service
    has this process to itself); purchases go to customers registered beforehand."""
    async with running_customer(directory / "commands", nats_url) as service:
        assert service.server is not None
        async with channel_to(service) as channel:
            pool = await _registered_pool(channel)
        target = f"127.0.0.1:{service.server.port}"
        return await _measured(target, service.settings.data_dir, pool, total, (os.getpid(),))


async def split_roles(nats_url: str, data_dir: Path, total: int) -> dict[str, Any]:
    """The same against `customer.main --role api`, its projections and reactions (the
    segments) in a `--role worker` process on the same log, database and key store."""
    api_port, worker_port = free_port(), free_port()
    env = {
        "CAREOPS_NATS_URL": nats_url,
        "CAREOPS_DATA_DIR": str(data_dir),
        "CAREOPS_LOG_LEVEL": "WARNING",
        "CAREOPS_CUSTOMER_METRICS_PORT": "0",
        "CAREOPS_SEGMENT_INITIAL_DELAY_SECONDS": "3600",  # as running_customer: no full pass
    }
    api, worker = f"127.0.0.1:{api_port}", f"127.0.0.1:{worker_port}"
    port = "CAREOPS_CUSTOMER_GRPC_PORT"
    with (
        service_process(
            "customer.main", {**env, port: str(worker_port)}, worker, ("--role", "worker")
        ) as worker_pid,
        service_process(
            "customer.main", {**env, port: str(api_port)}, api, ("--role", "api")
        ) as api_pid,
    ):
        async with service_channel(api, data_dir) as channel:
            pool = await _registered_pool(channel)
        return await _measured(api, str(data_dir), pool, total, (api_pid, worker_pid))


async def run(quick: bool) -> dict[str, Any]:
    customers = 10_000 if quick else 100_000
    calls = 500 if quick else 2_000
    total = 640 if quick else 3_200
    results: dict[str, Any] = {"customers": customers}
    payload = await sample_batch()
    with TemporaryDirectory() as tmp:
        directory = Path(tmp)
        with embedded_nats() as server:
            published = await jetstream_publish(server.url, total, payload)
            results["raw_publish"] = published["concurrent_32"]
            results.update(await commands(server.url, directory, total))
        with embedded_nats() as server:
            results["api_role"] = await split_roles(server.url, directory / "split", total)
    # A fresh log: the read benchmark's service must not be projecting the commands above.
    with embedded_nats() as server, TemporaryDirectory() as tmp:
        directory = Path(tmp)
        results["sqlite"] = await backend_360("sqlite", server.url, directory, "", customers, calls)
        with scratch_postgres() as url:
            if url is not None:
                results["postgresql"] = await backend_360(
                    "postgresql", server.url, directory, url, customers, calls
                )

    report = Report(
        f"8. Customer 360 ({customers:,} customers, "
        f"{results['sqlite']['load']['timeline']:,} timeline entries) and customer commands"
    )
    raw = results["raw_publish"]
    report.add(
        measure="raw: JetStream publish, 32 publishers",
        ops_s=raw["ops_s"],
        p50_ms=raw["p50_ms"],
        p99_ms=raw["p99_ms"],
    )
    layouts = (
        (results, "{} over gRPC, 32 in flight (client in a child process)"),
        (results["api_role"], "{}, `--role api` + `--role worker` processes"),
    )
    for figures, layout in layouts:
        for name in ("register", "purchase"):
            row = figures[name]
            report.add(
                measure=layout.format(name),
                ops_s=row["ops_s"],
                p50_ms=row["p50_ms"],
                p99_ms=row["p99_ms"],
                ratio_to_raw=ratio(row["ops_s"], raw["ops_s"]),
                cpu_ms_per_op=row["cpu_ms_per_op"],
                cpu_service=row["service_cpu_share"],
            )
    split = results["api_role"]
    report.note(
        "cpu_ms_per_op: CPU of the process serving the calls per call over the measured window "
        "(in one process: the benchmark's, which hosts the service, its projections and "
        "reactions; the load runs in a child); cpu_service: cores it kept busy; the worker of "
        f"the split spent {split['register']['worker_cpu_ms_per_op']} ms per registration, "
        f"{split['purchase']['worker_cpu_ms_per_op']} ms per purchase"
    )
    for name in ("register", "purchase"):
        for label, row in ((name, results[name]), (f"{name} (--role api)", split[name])):
            if row["errors"]:
                report.note(f"{label}: {row['errors']} errors, first: {row['first_error']}")
        value = ratio(results[name]["ops_s"], raw["ops_s"])
        report.goal(
            f"{name} vs the 32-publisher baseline",
            f">= {GOAL_COMMAND_RATIO} x raw, load in a child process",
            str(value),
            value is not None and value >= GOAL_COMMAND_RATIO,
        )
    for backend in ("sqlite", "postgresql"):
        if backend not in results:
            continue
        row = results[backend]
        report.add(
            measure=f"GetCustomer360, {backend}, one at a time",
            ops_s=None,
            p50_ms=row["p50_ms"],
            p99_ms=row["p99_ms"],
            timeline_per_call=row["mean_timeline_entries"],
        )
        report.note(f"{backend} bulk load: {row['load']}")
        report.goal(
            f"GetCustomer360 on {backend}",
            "p99 < 20 ms",
            f"p99 {row['p99_ms']} ms",
            row["p99_ms"] < 20,
        )
    report.show()
    return {"report": report.to_json(), **results}
