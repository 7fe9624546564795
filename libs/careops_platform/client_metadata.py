"""Client interceptors that add metadata to every call (a bearer token, an internal identity),
for grpc.aio channels and for sync ones. The metadata is asked of `supply` at each call, so a
renewed credential is picked up; a key the call already carries is left as the call set it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc

Supply = Callable[[], Sequence[tuple[str, str]]]


def _with(metadata: Any, supply: Supply) -> list[tuple[str, Any]]:
    present = list(metadata or ())
    keys = {key for key, _ in present}
    return present + [(key, value) for key, value in supply() if key not in keys]


class _Adding:
    def __init__(self, supply: Supply) -> None:
        self._supply = supply

    def details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*_with(details.metadata, self._supply)),
            details.credentials,
            details.wait_for_ready,
        )


# One class per call shape: grpc.aio files an interceptor under the first shape it matches.
class _UnaryUnary(_Adding, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self.details(details), request)


class _UnaryStream(_Adding, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self.details(details), request)


class _StreamUnary(_Adding, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self.details(details), requests)


class _StreamStream(_Adding, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self.details(details), requests)


def metadata_interceptors(supply: Supply) -> list[grpc.aio.ClientInterceptor]:
    """Returns grpc.aio client interceptors (every call shape) adding `supply()`'s metadata."""
    return [shape(supply) for shape in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]


class _SyncDetails(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(self, details: Any, metadata: list[tuple[str, Any]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class SyncMetadataInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """The sync counterpart, for `grpc.intercept_channel`."""

    def __init__(self, supply: Supply) -> None:
        self._supply = supply

    def _details(self, details: Any) -> _SyncDetails:
        return _SyncDetails(details, _with(details.metadata, self._supply))

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)
