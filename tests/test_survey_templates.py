"""Survey templates through QualityService's gRPC port: versions put, read and listed; surveys
answering a template version (and today's shape, as the default template); every bad answer
INVALID_ARGUMENT with its field and nothing appended; the full-scale distributions of GetKpis
and of the scrape equal the ones recomputed from the events on the log."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from careops.quality.v1 import quality_pb2 as qpb
from careops.quality.v1 import quality_pb2_grpc
from careops.quality.v1 import types_pb2 as qt
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from quality import domain
from quality.application import CODEC, STREAM
from quality.main import QualityService

from tests.quality_scenario import NOW, Clock, quality_service, stub_of, write_tickets
from tests.test_quality_kpis import scrape

Q = qt.SurveyQuestion
QUESTIONS = [
    Q(
        question_id="overall",
        text="How satisfied are you?",
        kind=qt.QUESTION_KIND_SCALE_1_5,
        metric=qt.QUESTION_METRIC_CSAT,
        required=True,
    ),
    Q(
        question_id="recommend",
        text="Would you recommend us?",
        kind=qt.QUESTION_KIND_SCALE_0_10,
        metric=qt.QUESTION_METRIC_NPS,
    ),
    Q(question_id="first_time", text="Solved the first time?", kind=qt.QUESTION_KIND_YES_NO),
    Q(question_id="polite", text="Was the agent polite?", kind=qt.QUESTION_KIND_YES_NO),
    Q(question_id="better", text="What should we do better?", kind=qt.QUESTION_KIND_OPEN_TEXT),
]
TEMPLATE = qpb.PutSurveyTemplateRequest(
    template_id="after-chat", title="After chat", questions=QUESTIONS
)
A = qpb.Answer
UNKNOWN_KIND = qt.QuestionKind.ValueType(9)


@pytest.fixture
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A NATS server of each test's own: the scenario's tickets are written once per log."""
    server = EmbeddedNats(data_dir=tmp_path_factory.mktemp("nats"), port=free_port())
    server.start()
    yield server
    server.stop()


@dataclass
class Running:
    stub: quality_pb2_grpc.QualityServiceStub
    service: QualityService
    ticketing: int


@pytest.fixture
async def running(nats: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Running]:
    """The service over the scenario's tickets (A, B, D, E, F resolved), no surveys yet."""
    nc = await connect(nats.url, name="survey-templates")
    store = JetStreamEventStore(nc)
    clock = Clock()
    ticketing = await write_tickets(store, clock)
    clock.now = NOW
    async with quality_service(tmp_path, nats.url, clock) as service, stub_of(service) as stub:
        yield Running(stub, service, ticketing)
    await nc.close()


def field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert isinstance(status, status_pb2.Status)
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    return [v.field for v in bad.field_violations]


async def test_templates_are_versioned_and_surveys_count_full_scales(
    running: Running, nats: EmbeddedNats
) -> None:
    q, service, ticketing = running.stub, running.service, running.ticketing
    put = await q.PutSurveyTemplate(TEMPLATE)
    assert (put.template.version, len(put.template.questions)) == (1, 5)
    same = await q.PutSurveyTemplate(TEMPLATE)
    assert same.template.version == 1  # unchanged: no new version
    extra = Q(question_id="speed", text="How fast were we?", kind=qt.QUESTION_KIND_SCALE_1_5)
    second = qpb.PutSurveyTemplateRequest(
        template_id="after-chat", title="After chat", questions=[*QUESTIONS, extra]
    )
    assert (await q.PutSurveyTemplate(second)).template.version == 2
    listed = await q.ListSurveyTemplateVersions(
        qpb.ListSurveyTemplateVersionsRequest(template_id="after-chat")
    )
    assert [v.version for v in listed.versions] == [1, 2]
    first = await q.GetSurveyTemplate(
        qpb.GetSurveyTemplateRequest(template_id="after-chat", version=1)
    )
    assert list(first.template.questions) == QUESTIONS
    default = await q.GetSurveyTemplate(qpb.GetSurveyTemplateRequest(template_id="default"))
    assert default.template.version == 1 and not default.template.HasField("put_at")

    # Today's shape (the default template), version 1 and version 2 of after-chat.
    surveys = [
        qpb.SubmitSurveyRequest(ticket_id="T-A", csat=5, nps=10, comment="Thank you"),
        qpb.SubmitSurveyRequest(
            ticket_id="T-B",
            template_id="after-chat",
            template_version=1,
            answers=[
                A(question_id="overall", score=2),
                A(question_id="recommend", score=3),
                A(question_id="first_time", yes=False),
                A(question_id="polite", yes=True),
                A(question_id="better", text="Answer the phone"),
            ],
        ),
        qpb.SubmitSurveyRequest(
            ticket_id="T-D",
            template_id="after-chat",
            answers=[
                A(question_id="overall", score=4),
                A(question_id="first_time", yes=True),
                A(question_id="speed", score=5),
            ],
        ),
        qpb.SubmitSurveyRequest(
            ticket_id="T-E",
            answers=[A(question_id="csat", score=4), A(question_id="solved", yes=False)],
        ),
    ]
    sequence = 0
    for request in surveys:
        request.ticketing_min_sequence = ticketing
        sequence = (await q.SubmitSurvey(request)).sequence
    got = await q.GetSurvey(qpb.GetSurveyRequest(ticket_id="T-B"))
    assert (got.survey.template_id, got.survey.template_version, got.survey.csat) == (
        "after-chat",
        1,
        2,
    )
    assert got.survey.nps == 3 and got.survey.comment == "Answer the phone"
    assert [a.question_id for a in got.survey.answers][-1] == "better"
    d_survey = await q.GetSurvey(qpb.GetSurveyRequest(ticket_id="T-D"))
    assert d_survey.survey.template_version == 2 and not d_survey.survey.HasField("nps")

    kpis = (await q.GetKpis(qpb.GetKpisRequest(min_sequence=sequence))).kpis
    csat, nps, yes_no = await recomputed_from_the_log(nats)
    assert [(c.score, c.count) for c in kpis.csat_distribution] == [
        (score, csat[score]) for score in range(1, 6)
    ]
    assert [(c.score, c.count) for c in kpis.nps_distribution] == [
        (score, nps[score]) for score in range(0, 11)
    ]
    assert {(c.template_id, c.question_id): (c.yes, c.no) for c in kpis.yes_no} == yes_no
    # The headline KPIs read the same CSAT/NPS answers: 5, 2, 4, 4 and NPS 10, 3.
    assert (kpis.surveys, kpis.csat_mean, kpis.nps_responses, kpis.nps) == (4, 3.75, 2, 0.0)
    assert csat == Counter({4: 2, 5: 1, 2: 1}) and yes_no[("after-chat", "first_time")] == (1, 1)

    samples = scrape(service)
    for score in range(1, 6):
        assert (
            samples[("careops_quality_csat_answers_total", (("score", str(score)),))] == csat[score]
        )
    for score in range(0, 11):
        assert (
            samples[("careops_quality_nps_answers_total", (("score", str(score)),))] == nps[score]
        )
    for (template, question), (yes, no) in yes_no.items():
        labels = (("question", question), ("template", template))
        assert (
            samples[("careops_quality_yes_no_answers_total", (("answer", "yes"), *labels))] == yes
        )
        assert samples[("careops_quality_yes_no_answers_total", (("answer", "no"), *labels))] == no


async def recomputed_from_the_log(
    nats: EmbeddedNats,
) -> tuple[Counter[int], Counter[int], dict[tuple[str, str], tuple[int, int]]]:
    """CSAT, NPS and yes/no counts recomputed from the SurveySubmitted events on the stream."""
    nc = await connect(nats.url, name="survey-log")
    store = JetStreamEventStore(nc)
    csat: Counter[int] = Counter()
    nps: Counter[int] = Counter()
    yes_no: dict[tuple[str, str], tuple[int, int]] = {}
    for message in await store.read_stream(stream=STREAM.name, limit=10_000):
        for envelope in message.batch.events:
            if not CODEC.knows(envelope.type):  # e.g. the quality teams' revisions
                continue
            event = CODEC.decode(envelope)
            if not isinstance(event, domain.SurveySubmitted):
                continue
            csat[event.csat] += 1
            if event.has_nps:
                nps[event.nps] += 1
            for answer in event.answers:
                if answer.kind is domain.QuestionKind.YES_NO:
                    key = (event.template_id, answer.question_id)
                    yes, no = yes_no.get(key, (0, 0))
                    yes_no[key] = (yes + answer.yes, no + (not answer.yes))
    await nc.close()
    return csat, nps, yes_no


async def test_bad_templates_and_answers_are_invalid_and_append_nothing(
    running: Running, nats: EmbeddedNats
) -> None:
    q, ticketing = running.stub, running.ticketing
    await q.PutSurveyTemplate(TEMPLATE)
    nc = await connect(nats.url, name="survey-bad")
    store = JetStreamEventStore(nc)
    before = await store.last_sequence(STREAM.name)
    invalid = [
        (
            qpb.PutSurveyTemplateRequest(template_id="x", title="x", questions=QUESTIONS[:4]),
            "PutSurveyTemplate",
            ["questions"],
        ),
        (
            qpb.PutSurveyTemplateRequest(template_id="default", title="x", questions=QUESTIONS),
            "PutSurveyTemplate",
            ["template_id"],
        ),
        (
            qpb.PutSurveyTemplateRequest(
                template_id="x",
                title="x",
                questions=[*QUESTIONS[:4], Q(question_id="k", text="k", kind=UNKNOWN_KIND)],
            ),
            "PutSurveyTemplate",
            ["questions[4].kind"],
        ),
        (
            qpb.SubmitSurveyRequest(
                ticket_id="T-D",
                template_id="after-chat",
                answers=[A(question_id="overall", score=6), A(question_id="first_time", text="y")],
            ),
            "SubmitSurvey",
            ["answers[0]", "answers[1]"],
        ),
        (
            qpb.SubmitSurveyRequest(
                ticket_id="T-D",
                template_id="after-chat",
                answers=[A(question_id="recommend", score=9)],
            ),
            "SubmitSurvey",
            ["answers"],
        ),
        (
            qpb.SubmitSurveyRequest(
                ticket_id="T-D", csat=4, answers=[A(question_id="csat", score=4)]
            ),
            "SubmitSurvey",
            ["csat"],
        ),
        (
            qpb.SubmitSurveyRequest(ticket_id="T-D", template_id="after-chat"),
            "SubmitSurvey",
            ["answers"],
        ),
        (qpb.SubmitSurveyRequest(ticket_id="T-D", csat=6), "SubmitSurvey", ["csat"]),
    ]
    for request, rpc, expected in invalid:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await getattr(q, rpc)(request)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert field_violations(error.value) == expected, request
    missing = [
        qpb.SubmitSurveyRequest(
            ticket_id="T-D",
            template_id="after-chat",
            template_version=2,
            answers=[A(question_id="overall", score=4)],
        ),
        qpb.SubmitSurveyRequest(
            ticket_id="T-D", template_id="nobody", answers=[A(question_id="overall", score=4)]
        ),
    ]
    for request in missing:
        request.ticketing_min_sequence = ticketing
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await q.SubmitSurvey(request)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND, request
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await q.ListSurveyTemplateVersions(
            qpb.ListSurveyTemplateVersionsRequest(template_id="nobody")
        )
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert await store.last_sequence(STREAM.name) == before
    await nc.close()
