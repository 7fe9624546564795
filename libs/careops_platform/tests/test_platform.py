"""Settings validation and structured logs."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, Counter, generate_latest

from careops_platform.collectors import cached_labels
from careops_platform.logs import JsonFormatter
from careops_platform.settings import ServiceSettings, load_settings
from careops_platform.telemetry import tracer_provider


def test_bad_settings_exit_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAREOPS_STREAM_REPLICAS", "0")
    monkeypatch.setenv("CAREOPS_LOG_LEVEL", "CHATTY")
    with pytest.raises(SystemExit) as caught:
        load_settings(ServiceSettings)
    assert caught.value.code == 2
    message = capsys.readouterr().err
    assert "CAREOPS_STREAM_REPLICAS" in message and "CAREOPS_LOG_LEVEL" in message


def test_settings_read_careops_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREOPS_NATS_URL", "nats://10.0.0.1:4222")
    assert load_settings(ServiceSettings).nats_url == "nats://10.0.0.1:4222"


def test_json_log_lines_carry_fields_and_the_trace_id() -> None:
    formatter = JsonFormatter("ticketing")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        record = logging.LogRecord("x", logging.WARNING, __file__, 1, "sla %s", ("breach",), None)
        record.ticket_id = "T-1"
        line = json.loads(formatter.format(record))
    assert line["message"] == "sla breach"
    assert line["level"] == "warning"
    assert line["service"] == "ticketing"
    assert line["ticket_id"] == "T-1"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")


def test_without_an_endpoint_spans_are_not_recorded_but_their_ids_still_flow() -> None:
    tracer = tracer_provider("ticketing").get_tracer("test")
    with tracer.start_as_current_span("command") as root:
        record = logging.LogRecord("x", logging.WARNING, __file__, 1, "opened", (), None)
        line = json.loads(JsonFormatter("ticketing").format(record))
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    assert not root.is_recording()
    assert root.get_span_context().is_valid
    assert line["trace_id"] == format(root.get_span_context().trace_id, "032x")
    # Propagated with the sampled bit clear.
    assert int(carrier["traceparent"].rsplit("-", 1)[1], 16) & 1 == 0
    # A caller that samples (it exports) is honoured.
    sampled = trace.set_span_in_context(
        trace.NonRecordingSpan(
            trace.SpanContext(1, 2, is_remote=True, trace_flags=trace.TraceFlags(1))
        )
    )
    with tracer.start_as_current_span("continued", context=sampled) as child:
        assert child.is_recording()


def test_cached_labels_return_the_series_labels_returns_created_at_first_use() -> None:
    registry = CollectorRegistry()
    counter = Counter("calls_total", "Calls.", ["method", "code"], registry=registry)
    labels = cached_labels(counter)
    assert b"calls_total{" not in generate_latest(registry)
    labels("/a", "OK").inc()
    labels("/a", "OK").inc(2)
    assert labels("/a", "OK") is counter.labels("/a", "OK")
    counter.labels("/a", "NOT_FOUND").inc()
    assert labels("/a", "NOT_FOUND") is counter.labels("/a", "NOT_FOUND")
    text = generate_latest(registry).decode()
    assert 'calls_total{code="OK",method="/a"} 3.0' in text
    assert 'calls_total{code="NOT_FOUND",method="/a"} 1.0' in text
