"""Quality KPIs of a scripted scenario against hand-computed values, on SQLite and PostgreSQL;
GetKpis agrees with a Prometheus scrape; KPIs survive a restart and a rebuild from the log;
bad surveys get a clear status and append nothing; follow-ups go overdue; what-if replays."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import careops_sla
import grpc
import pytest
import yaml
from careops.common.v1 import admin_pb2, admin_pb2_grpc
from careops.quality.v1 import quality_pb2 as qpb
from careops.quality.v1 import types_pb2 as qt
from careops.ticketing.v1 import types_pb2 as tt
from careops_cli.quality import crisis_summary
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from quality.application import STREAM
from quality.main import QualityService
from quality.projections import FollowUpTimerProjection

from tests.quality_scenario import (
    EXPECTED,
    EXPECTED_CRISIS_A,
    NOW,
    T0,
    Clock,
    Positions,
    quality_service,
    stub_of,
    submit_surveys,
    write_incidents,
    write_tickets,
)
from tests.support import channel_to, eventually, fire_due_timers


@pytest.fixture(scope="module")
def quality_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A NATS server of this module's own: the KPIs count every ticket on the log."""
    server = EmbeddedNats(data_dir=tmp_path_factory.mktemp("nats"), port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def scenario(
    quality_nats: EmbeddedNats, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Positions]:
    """Writes the scenario's tickets and incidents, then submits its surveys over gRPC."""
    nc = await connect(quality_nats.url, name="quality-scenario")
    store = JetStreamEventStore(nc)
    clock = Clock()
    positions = Positions()
    positions.ticketing = await write_tickets(store, clock)
    positions.incident = await write_incidents(store, clock)
    clock.now = NOW
    async with (
        quality_service(tmp_path_factory.mktemp("seed"), quality_nats.url, clock) as service,
        stub_of(service) as stub,
    ):
        positions.quality = await submit_surveys(stub, positions.ticketing)
    yield positions
    await nc.close()


async def caught_up(stub: object, positions: Positions) -> qpb.GetKpisResponse:
    request = qpb.GetKpisRequest(
        ticketing_min_sequence=positions.ticketing,
        incident_min_sequence=positions.incident,
        min_sequence=positions.quality,
    )
    return await stub.GetKpis(request)  # type: ignore[attr-defined,no-any-return]


def scrape(service: QualityService) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Returns every sample of the service's KPI collector in the exposition format, after
    checking the exposition with `promtool check metrics`."""
    registry = CollectorRegistry()
    registry.register(service.collector)
    text = generate_latest(registry).decode()
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run scripts/system-deps.sh"
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


WINDOW_GAUGES = {
    "careops_quality_csat_ratio": "csat_satisfied_ratio",
    "careops_quality_csat_score": "csat_mean",
    "careops_quality_nps_score": "nps",
    "careops_quality_fcr_ratio": "fcr_ratio",
    "careops_quality_sla_compliance_ratio": "sla_compliance_ratio",
    "careops_quality_escalation_ratio": "escalation_ratio",
    "careops_quality_reopen_ratio": "reopen_ratio",
    "careops_quality_survey_response_ratio": "survey_response_ratio",
    "careops_quality_balanced_score": "quality_score",
}


def assert_scrape_agrees(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    window: str,
    channel: str,
    kpis: qpb.Kpis,
) -> None:
    """Every window gauge of (window, channel) equals the KPI GetKpis returned."""
    labels = (("channel", channel), ("window", window))
    for metric, field in WINDOW_GAUGES.items():
        assert samples[(metric, labels)] == pytest.approx(getattr(kpis, field)), metric


NOW_STAMP = Timestamp()
NOW_STAMP.FromDatetime(NOW)


def kpi_dict(kpis: qpb.Kpis) -> dict[str, float]:
    values = MessageToDict(
        kpis, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return {name: float(values[name]) for name in EXPECTED}


async def test_kpis_equal_hand_computed_values_and_the_scrape(
    scenario: Positions, quality_nats: EmbeddedNats, tmp_path: Path, read_model_url: str
) -> None:
    clock = Clock(NOW)
    async with (
        quality_service(tmp_path, quality_nats.url, clock, database_url=read_model_url) as service,
        stub_of(service) as stub,
    ):
        kpis = (await caught_up(stub, scenario)).kpis
        assert kpi_dict(kpis) == pytest.approx(EXPECTED)
        crisis = {c.level: c for c in kpis.crisis}
        # The drill (acknowledged after 1 min) is left out.
        assert {name: getattr(crisis["A"], name) for name in EXPECTED_CRISIS_A} == EXPECTED_CRISIS_A
        assert crisis["B"].incidents == 0

        samples = scrape(service)
        assert_scrape_agrees(samples, "24h", "all", kpis)
        window = (("channel", "all"), ("window", "24h"))
        assert samples[("careops_quality_csat_ratio", window)] == kpis.csat_satisfied_ratio
        assert samples[("careops_quality_csat_score", window)] == kpis.csat_mean
        assert samples[("careops_quality_nps_score", window)] == kpis.nps
        assert samples[("careops_quality_fcr_ratio", window)] == pytest.approx(kpis.fcr_ratio)
        assert samples[("careops_quality_sla_compliance_ratio", window)] == pytest.approx(
            kpis.sla_compliance_ratio
        )
        assert samples[("careops_quality_balanced_score", window)] == kpis.quality_score
        opened = sum(
            v for (n, _), v in samples.items() if n == "careops_quality_tickets_opened_total"
        )
        assert opened == kpis.tickets_opened
        breaches = sum(
            v for (n, _), v in samples.items() if n == "careops_quality_sla_breaches_total"
        )
        assert breaches == kpis.sla_breaches
        chat_high = (("channel", "chat"), ("priority", "high"))
        assert samples[("careops_quality_first_response_seconds_count", chat_high)] == 1
        assert samples[("careops_quality_first_response_seconds_sum", chat_high)] == 1800.0
        assert (
            samples[
                (
                    "careops_quality_first_response_seconds_bucket",
                    tuple(sorted((*chat_high, ("le", "900")))),
                )
            ]
            == 0
        )
        assert (
            samples[
                (
                    "careops_quality_first_response_seconds_bucket",
                    tuple(sorted((*chat_high, ("le", "1800")))),
                )
            ]
            == 1
        )
        assert (
            samples[
                ("careops_quality_backlog_tickets", (("channel", "app"), ("priority", "normal")))
            ]
            == 1
        )
        # I-open, declared 3 h before NOW, is the oldest unacknowledged open incident.
        unacknowledged = ("careops_quality_unacknowledged_incident_age_seconds", (("level", "A"),))
        assert samples[unacknowledged] == 3 * 3600.0

        # Filters, per-day breakdown and scorecards.
        chat = await stub.GetKpis(qpb.GetKpisRequest(filter=qpb.KpiFilter(channel=tt.CHANNEL_CHAT)))
        assert chat.kpis.tickets_opened == 6 and chat.kpis.backlog == 1  # G
        assert_scrape_agrees(samples, "7d", "chat", chat.kpis)
        # The 1 h window starts at the whole hour an hour ago: no ticket opened since, both
        # surveys submitted since.
        hour = qpb.Period()
        hour.start.FromDatetime((NOW - timedelta(hours=1)).replace(minute=0, second=0))
        recent = (await stub.GetKpis(qpb.GetKpisRequest(period=hour))).kpis
        assert (recent.tickets_opened, recent.surveys, recent.csat_mean) == (0, 2, 3.5)
        assert_scrape_agrees(samples, "1h", "all", recent)
        li = await stub.GetScorecard(qpb.GetScorecardRequest(agent_id="agent-li"))
        assert li.kpis.tickets_opened == 2 and li.quality_score == 100.0
        senior = await stub.GetScorecard(qpb.GetScorecardRequest(team="senior"))
        assert senior.kpis.tickets_opened == 1 and senior.quality_score == 0.0
        assert {c.name for c in senior.components if c.present} == {
            "csat",
            "nps",
            "no_reopen",
            "fcr",
            "sla",
        }
        period = qpb.Period()
        period.start.FromDatetime(T0 - timedelta(days=1))
        period.end.FromDatetime(NOW + timedelta(minutes=1))
        daily = await stub.GetKpis(qpb.GetKpisRequest(period=period, by_day=True))
        assert sum(day.tickets_opened for day in daily.by_day) == 7
        assert daily.kpis.tickets_opened == 7

        # A rebuild from the log gives identical KPIs.
        assert service.server is not None
        async with channel_to(service) as channel:
            admin = admin_pb2_grpc.ProjectionAdminServiceStub(channel)
            for name in ("quality_tickets", "quality_surveys", "quality_incidents"):
                await admin.RebuildProjection(
                    admin_pb2.RebuildProjectionRequest(name=name, wait=True)
                )
        assert (await caught_up(stub, scenario)).kpis == kpis
        assert scrape(service) == samples
    # A restart on the same database gives identical KPIs.
    async with (
        quality_service(tmp_path, quality_nats.url, clock, database_url=read_model_url) as service,
        stub_of(service) as stub,
    ):
        assert (await caught_up(stub, scenario)).kpis == kpis


async def test_bad_surveys_get_clear_statuses_and_append_nothing(
    scenario: Positions, quality_nats: EmbeddedNats, tmp_path: Path
) -> None:
    nc = await connect(quality_nats.url, name="quality-check")
    store = JetStreamEventStore(nc)
    before = await store.last_sequence(STREAM.name)
    async with (
        quality_service(tmp_path, quality_nats.url, Clock(NOW)) as service,
        stub_of(service) as stub,
    ):
        await caught_up(stub, scenario)
        cases = [
            (qpb.SubmitSurveyRequest(ticket_id="T-D", csat=6), grpc.StatusCode.INVALID_ARGUMENT),
            (qpb.SubmitSurveyRequest(ticket_id="T-D", csat=0), grpc.StatusCode.INVALID_ARGUMENT),
            (
                qpb.SubmitSurveyRequest(ticket_id="T-D", csat=4, nps=11),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (qpb.SubmitSurveyRequest(ticket_id="T-nope", csat=4), grpc.StatusCode.NOT_FOUND),
            (qpb.SubmitSurveyRequest(ticket_id="T-A", csat=3), grpc.StatusCode.ALREADY_EXISTS),
            (qpb.SubmitSurveyRequest(ticket_id="T-C", csat=3), grpc.StatusCode.FAILED_PRECONDITION),
            (
                qpb.SubmitSurveyRequest(ticket_id="bad id!", csat=3),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
        ]
        for request, code in cases:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await stub.SubmitSurvey(request)
            assert error.value.code() == code, request
            assert error.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.SubmitSurvey(qpb.SubmitSurveyRequest(ticket_id="T-D", csat=6))
        assert "csat" in (error.value.details() or "")
        # A retry with the original idempotency-key returns the original survey, appending nothing.
        retried = await stub.SubmitSurvey(
            qpb.SubmitSurveyRequest(ticket_id="T-A", csat=5, nps=10, comment="again"),
            metadata=(("idempotency-key", "survey-T-A"),),
        )
        assert retried.survey.comment == "Thank you, excellent and quick support"
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.GetKpis(qpb.GetKpisRequest(filter=qpb.KpiFilter(team="nobody")))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        for bad in (
            qpb.GetKpisRequest(filter=qpb.KpiFilter(channel=99)),  # type: ignore[arg-type]
            qpb.GetKpisRequest(filter=qpb.KpiFilter(agent_id="agent-li", team="senior")),
            qpb.GetKpisRequest(period=qpb.Period(start=NOW_STAMP, end=NOW_STAMP)),
            qpb.GetKpisRequest(period=qpb.Period(start=Timestamp(seconds=10**13))),  # year > 9999
        ):
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await stub.GetKpis(bad)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.RecordFollowUp(
                qpb.RecordFollowUpRequest(ticket_id="T-A", agent_id="agent-li", note="called")
            )
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await store.last_sequence(STREAM.name) == before
    await nc.close()


async def test_negative_feedback_follow_up_goes_overdue_then_is_recorded(
    scenario: Positions, quality_nats: EmbeddedNats, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    async with (
        quality_service(tmp_path, quality_nats.url, clock) as service,
        stub_of(service) as stub,
    ):
        await caught_up(stub, scenario)
        survey = (await stub.GetSurvey(qpb.GetSurveyRequest(ticket_id="T-B"))).survey
        assert survey.emotion == qt.EMOTION_ANGRY and survey.follow_up_required
        assert survey.follow_up_due_at.ToDatetime() == NOW.replace(tzinfo=None) + timedelta(
            hours=24
        )
        pending = await stub.ListFollowUps(
            qpb.ListFollowUpsRequest(status=qt.FOLLOW_UP_STATUS_PENDING)
        )
        assert [f.ticket_id for f in pending.follow_ups] == ["T-B"]
        clock.now = NOW + timedelta(hours=25)
        await fire_due_timers(service, FollowUpTimerProjection.name)

        async def overdue_listed() -> qpb.ListFollowUpsResponse | None:
            listed = await stub.ListFollowUps(
                qpb.ListFollowUpsRequest(status=qt.FOLLOW_UP_STATUS_OVERDUE)
            )
            return listed if listed.follow_ups else None

        overdue = await eventually(overdue_listed, what="the follow-up overdue")
        assert [f.ticket_id for f in overdue.follow_ups] == ["T-B"]
        samples = scrape(service)
        assert samples[("careops_quality_overdue_follow_ups", ())] == 1
        recorded = await stub.RecordFollowUp(
            qpb.RecordFollowUpRequest(
                ticket_id="T-B", agent_id="agent-zhang", note="called back", solved=True
            )
        )
        assert recorded.follow_up.status == qt.FOLLOW_UP_STATUS_DONE
        done = await stub.ListFollowUps(
            qpb.ListFollowUpsRequest(
                status=qt.FOLLOW_UP_STATUS_DONE, min_sequence=recorded.sequence
            )
        )
        assert [f.note for f in done.follow_ups] == ["called back"]
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.RecordFollowUp(
                qpb.RecordFollowUpRequest(ticket_id="T-B", agent_id="agent-zhang", note="again")
            )
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_what_if_replays_history_under_another_policy(
    scenario: Positions, quality_nats: EmbeddedNats, tmp_path: Path
) -> None:
    default = Path(careops_sla.__file__).parent / "sla_default.yaml"
    policy = yaml.safe_load(default.read_text())
    policy["version"] = "what-if-1"
    policy["channels"]["chat"]["first_response"] = "5m"
    policy["resolution"]["normal"] = "30m"
    async with (
        quality_service(tmp_path, quality_nats.url, Clock(NOW)) as service,
        stub_of(service) as stub,
    ):
        # A fresh process: WhatIf itself waits until the ticket timelines have the scenario.
        result = await stub.WhatIf(
            qpb.WhatIfRequest(
                policy_yaml=yaml.safe_dump(policy), ticketing_min_sequence=scenario.ticketing
            )
        )
        assert result.tickets == 7
        # Replayed under the policy in force, the recorded outcomes and GetKpis' definitions
        # come back: the same clock model and the same compliance function.
        actual = result.actual
        assert actual.policy_version == careops_sla.default_policy().version
        assert (actual.first_responses, actual.first_responses_on_time) == (
            EXPECTED["first_responses"],
            EXPECTED["first_responses_on_time"],
        )
        assert actual.first_response_breaches == EXPECTED["sla_breaches"]
        assert actual.sla_compliance_ratio == pytest.approx(EXPECTED["sla_compliance_ratio"])
        assert (actual.resolutions, actual.resolution_breaches) == (EXPECTED["tickets_resolved"], 0)
        # Chat 5 min (high: 2.5 min): A (10 min) and B are late; D, E and G (5 min of clock)
        # just on time; F was resolved unanswered after 10 min: breached like the never-answered
        # C, so compliance is 3 / (5 answered + 2 unanswered breaches). Normal resolution
        # 30 min: A (1 h), the still-open C (5 h) and G (5 + 60 min) breach, E (10 + 10) not.
        alternative = result.alternative
        assert alternative.policy_version == "what-if-1"
        assert (alternative.first_responses_on_time, alternative.first_response_breaches) == (3, 4)
        assert alternative.sla_compliance_ratio == pytest.approx(3 / 7)
        assert (alternative.resolutions, alternative.resolution_breaches) == (5, 3)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.WhatIf(qpb.WhatIfRequest(policy_yaml="version: x\nchannels: 3\n"))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_the_cli_prints_no_mean_for_incidents_not_yet_acknowledged_or_resolved() -> None:
    unresolved = qpb.CrisisKpis(level="A", incidents=1)
    assert crisis_summary(unresolved) == "1 incidents, ack: none yet, resolve: none yet"
    some = qpb.CrisisKpis(
        level="A",
        incidents=3,
        acknowledged=1,
        acknowledge_seconds_mean=600,
        resolved=2,
        resolve_seconds_mean=2700,
    )
    assert crisis_summary(some) == "3 incidents, ack 600 s (1 of 3), resolve 2700 s (2 of 3)"
