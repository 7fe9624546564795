"""`careops survey-template put/get/versions` and `careops survey answer` through the gateway:
a supervisor puts versions from YAML, an agent may not, a survey answers a version and the
KPI table shows the full-scale distributions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from careops.quality.v1 import quality_pb2 as pb
from careops.quality.v1 import types_pb2 as qt
from careops_cli.surveys import answers_of, template_request
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from gateway.tests.conftest import address

from tests.quality_scenario import NOW, Clock, quality_service, write_tickets
from tests.test_cli_gateway import careops, local_gateway

TEMPLATE = """
template_id: after-chat
title: After chat
questions:
  - {id: overall, text: "How satisfied are you?", kind: scale_1_5, metric: csat, required: true}
  - {id: recommend, text: "Would you recommend us?", kind: scale_0_10, metric: nps}
  - {id: first_time, text: "Solved the first time?", kind: yes_no}
  - {id: clarity, text: "How clear were we?", kind: scale_1_5}
  - {id: better, text: "What should we do better?", kind: open_text}
"""


def test_a_yaml_template_becomes_the_put_request_and_answers_are_typed_by_it() -> None:
    request = template_request(TEMPLATE)
    assert (request.template_id, len(request.questions)) == ("after-chat", 5)
    assert request.questions[0].metric == qt.QUESTION_METRIC_CSAT and request.questions[0].required
    assert request.questions[2].kind == qt.QUESTION_KIND_YES_NO
    with pytest.raises(ValueError, match=r"questions\[0\]: 'stars' is not one of scale_1_5"):
        template_request("questions: [{id: a, kind: stars}]")
    template = pb.SurveyTemplate(questions=request.questions)
    answers = answers_of(template, ["overall=4", "first_time=no", "better=a=b"])
    assert [a.WhichOneof("value") for a in answers] == ["score", "yes", "text"]
    assert (answers[1].yes, answers[2].text) == (False, "a=b")
    for bad in ("overall=good", "first_time=maybe", "nope=1", "overall"):
        with pytest.raises(ValueError):
            answers_of(template, [bad])


@pytest.fixture
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(data_dir=tmp_path_factory.mktemp("nats"), port=free_port())
    server.start()
    yield server
    server.stop()


async def test_supervisors_put_templates_and_a_survey_answers_one(
    tmp_path: Path, nats: EmbeddedNats
) -> None:
    data_dir = tmp_path / "var"
    nc = await connect(nats.url, name="survey-cli")
    clock = Clock()
    ticketing = await write_tickets(JetStreamEventStore(nc), clock)
    clock.now = NOW
    await nc.close()
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    async with (
        quality_service(data_dir, nats.url, clock) as quality,
        local_gateway(data_dir, quality=address(quality)) as gateway,  # type: ignore[arg-type]
    ):
        tokens = {}
        for role in ("supervisor", "agent"):
            issued = await careops(
                "token",
                "issue",
                "--role",
                role,
                "--subject",
                f"{role}-1",
                "--data-dir",
                str(data_dir),
            )
            assert issued.exit_code == 0, issued.output
            tokens[role] = issued.stdout.strip()
        supervisor = {
            "CAREOPS_GATEWAY_ADDR": address(gateway),
            "CAREOPS_TOKEN": tokens["supervisor"],
        }
        agent = {**supervisor, "CAREOPS_TOKEN": tokens["agent"]}

        denied = await careops("survey-template", "put", str(path), **agent)
        assert denied.exit_code == 1 and "quality.survey_template.put" in denied.stderr
        put = await careops("survey-template", "put", str(path), **supervisor)
        assert put.exit_code == 0, put.output
        assert "after-chat v1" in put.stdout
        path.write_text(TEMPLATE.replace("How clear were we?", "How clear was it?"), "utf-8")
        assert (await careops("survey-template", "put", str(path), **supervisor)).exit_code == 0
        listed = await careops("survey-template", "versions", "after-chat", **agent)
        assert listed.exit_code == 0, listed.output
        assert [line.split()[1] for line in listed.stdout.splitlines() if "After chat" in line] == [
            "1",
            "2",
        ]
        shown = await careops("survey-template", "get", "after-chat", "--version", "1", **agent)
        assert "How clear were we?" in shown.stdout

        await quality.wait_for("quality_tickets", ticketing, 10.0)
        answered = await careops(
            "survey", "answer", "T-D", "--template", "after-chat", "--version", "1",
            "--answer", "overall=2", "--answer", "recommend=9", "--answer", "first_time=yes",
            **agent,
        )  # fmt: skip
        assert answered.exit_code == 0, answered.output
        assert "after-chat v1): CSAT 2, NPS 9" in answered.stdout
        wrong = await careops(
            "survey", "answer", "T-E", "--template", "after-chat", "--answer", "overall=9", **agent
        )
        assert wrong.exit_code == 1 and "INVALID_ARGUMENT" in wrong.stderr, wrong.output
        manager = {**supervisor}
        kpis = await careops("kpi", "show", "--days", "0", **manager)
    assert kpis.exit_code == 0, kpis.output
    assert "1:0 2:1 3:0 4:0 5:0" in kpis.stdout
    assert "after-chat/first_time" in kpis.stdout and "yes 1, no 0" in kpis.stdout
