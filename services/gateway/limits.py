"""Limits at the gateway: a token bucket per principal, the size of a request, and the
deadline a forwarded call gets.

Over the rate a call is answered RESOURCE_EXHAUSTED with a `retry-after` trailer and a
google.rpc.RetryInfo detail (HTTP 429 with `Retry-After`), and nothing is forwarded.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from careops_platform.collectors import preinitialise
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from prometheus_client import Counter

from gateway.backends import STATUS_DETAILS_KEY
from gateway.errors import error_body, error_response

RATE_LIMITED = Counter(
    "careops_gateway_rate_limited_total",
    "Calls refused at the gateway because their principal was over its rate, by edge.",
    ["edge"],
)
EDGES = ("grpc", "http")
RETRY_AFTER = "retry-after"
# The most buckets kept: beyond it the least recently used goes (it refills as a new one).
MAX_BUCKETS = 10_000
# gRPC's timeout header: up to 8 digits and a unit (hours … nanoseconds).
GRPC_TIMEOUT = re.compile(r"^([0-9]{1,8})([HMSmun])$")
GRPC_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
CONNECT_TIMEOUT = re.compile(r"^[0-9]{1,10}$")


@dataclass
class Bucket:
    """One principal's tokens as of `updated` (the limiter's clock)."""

    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by principal subject: `rate` tokens a second, at most `burst` held.
    Memory is bounded: a bucket idle long enough to be full again is the same as none and is
    dropped, and at most `max_buckets` are kept."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self._rate = rate
        self._burst = burst
        # Public: tests drive it instead of sleeping.
        self.clock = clock
        self._max = max_buckets
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, subject: str) -> float | None:
        """Takes one token of `subject`'s bucket; returns None when granted, else the seconds
        until a token is there. A rate of 0 grants everything."""
        if self._rate <= 0:
            return None
        now = self.clock()
        bucket = self._buckets.pop(subject, None) or Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        self._buckets[subject] = bucket  # most recently used last
        self._evict(now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self._rate

    def _evict(self, now: float) -> None:
        refill = self._burst / self._rate
        while self._buckets:
            subject, oldest = next(iter(self._buckets.items()))
            if len(self._buckets) <= self._max and now - oldest.updated < refill:
                return
            del self._buckets[subject]


@dataclass(frozen=True)
class Limits:
    """What the gateway allows one call: its principal's rate and its request's size."""

    rate: RateLimiter
    max_request_bytes: int

    @classmethod
    def of(cls, rate: float, burst: float, max_request_bytes: int) -> Limits:
        """Returns the limits, with the refusal counter's series at 0."""
        preinitialise(RATE_LIMITED, EDGES)
        return cls(RateLimiter(rate, burst), max_request_bytes)

    def too_large(self, request: Any) -> str | None:
        """Returns why a gRPC request (raw bytes when proxied, else a message) is too large,
        or None."""
        size = len(request) if isinstance(request, bytes) else _byte_size(request)
        if size <= self.max_request_bytes:
            return None
        return too_large_message(size, self.max_request_bytes)


def _byte_size(request: Any) -> int:
    byte_size = getattr(request, "ByteSize", None)
    return int(byte_size()) if callable(byte_size) else 0


def retry_status(code: grpc.StatusCode, message: str, retry_after: float) -> status_pb2.Status:
    """Returns the google.rpc.Status of a refusal with its RetryInfo detail."""
    status = status_pb2.Status(code=code.value[0], message=message)
    info = error_details_pb2.RetryInfo()
    info.retry_delay.FromNanoseconds(round(retry_after * 1e9))
    status.details.add().Pack(info)
    return status


def retry_seconds(retry_after: float) -> int:
    """Returns the whole seconds to announce (at least 1: HTTP's Retry-After is whole)."""
    return max(1, math.ceil(retry_after))


def over_rate_message(subject: str) -> str:
    """Returns the message of a refusal for `subject`'s rate."""
    return f"rate limit exceeded for {subject}; retry later"


def grpc_refusal_trailers(subject: str, retry_after: float) -> tuple[str, tuple[Any, ...]]:
    """Returns the message and trailers (`retry-after`, the Status with RetryInfo) of a
    RESOURCE_EXHAUSTED refusal over gRPC; counts it."""
    RATE_LIMITED.labels("grpc").inc()
    message = over_rate_message(subject)
    status = retry_status(grpc.StatusCode.RESOURCE_EXHAUSTED, message, retry_after)
    trailers = (
        (RETRY_AFTER, str(retry_seconds(retry_after))),
        (STATUS_DETAILS_KEY, status.SerializeToString()),
    )
    return message, trailers


def http_refusal(subject: str, retry_after: float) -> web.Response:
    """Returns the 429 of a refusal over HTTP, with `Retry-After`; counts it."""
    RATE_LIMITED.labels("http").inc()
    status = retry_status(
        grpc.StatusCode.RESOURCE_EXHAUSTED, over_rate_message(subject), retry_after
    )
    body = json_format.MessageToDict(status, always_print_fields_with_no_presence=True)
    return error_response(body, headers={"Retry-After": str(retry_seconds(retry_after))})


def too_large_message(size: int | None, limit: int) -> str:
    """Returns the message of a request over the size limit (`size` None: not known, as for a
    chunked HTTP body)."""
    measured = f"{size} bytes, " if size is not None else ""
    return f"the request is {measured}over the gateway's limit of {limit} bytes"


def header_timeout(headers: Mapping[str, str]) -> float | None | web.Response:
    """Returns the caller's timeout from `grpc-timeout` (e.g. `500m`) or `connect-timeout-ms`,
    None without one, or the 400 for a malformed value."""
    value = headers.get("grpc-timeout")
    if value is not None:
        match = GRPC_TIMEOUT.fullmatch(value.strip())
        if match is None:
            return _bad_timeout("grpc-timeout", "digits and a unit of H, M, S, m, u, n")
        return int(match[1]) * GRPC_TIMEOUT_UNITS[match[2]]
    value = headers.get("connect-timeout-ms")
    if value is not None:
        if CONNECT_TIMEOUT.fullmatch(value.strip()) is None:
            return _bad_timeout("connect-timeout-ms", "a whole number of milliseconds")
        return int(value) / 1000
    return None


def _bad_timeout(header: str, form: str) -> web.Response:
    return error_response(
        error_body(grpc.StatusCode.INVALID_ARGUMENT, f"header {header} must be {form}")
    )


def bounded(timeout: float | None, limit: float | None) -> float | None:
    """Returns the shorter of two timeouts (None: unbounded)."""
    if timeout is None:
        return limit
    if limit is None:
        return timeout
    return min(timeout, limit)
