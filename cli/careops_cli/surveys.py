"""`careops survey-template …` (put, get, versions) and `careops survey answer`: survey
templates as versioned data (supervisors put them) and surveys answering a template version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import grpc
import typer
import yaml
from careops.quality.v1 import quality_pb2 as pb
from careops.quality.v1 import quality_pb2_grpc
from careops.quality.v1 import types_pb2 as t
from rich.table import Table

from careops_cli.client import call, channel, console, print_message, report
from careops_cli.quality import survey_app

template_app = typer.Typer(
    help="Survey templates: 5-10 questions, one CSAT and one NPS question (versioned).",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the response as JSON.")]
YES = {"yes", "y", "true", "1"}
NO = {"no", "n", "false", "0"}


def _stub(opened: grpc.Channel) -> quality_pb2_grpc.QualityServiceStub:
    return quality_pb2_grpc.QualityServiceStub(opened)


def _name(enum: Any, prefix: str, number: int) -> str:
    return str(enum.Name(number)).removeprefix(prefix + "_").lower()


def _number(enum: Any, prefix: str, value: str, where: str) -> int:
    try:
        return int(enum.Value(f"{prefix}_{value.upper()}"))
    except ValueError:
        names = [n.removeprefix(prefix + "_").lower() for n in enum.keys()[1:]]
        raise ValueError(f"{where}: {value!r} is not one of {', '.join(names)}") from None


def template_request(text: str) -> pb.PutSurveyTemplateRequest:
    """Returns the PutSurveyTemplate request of a YAML document:
    `{template_id, title, questions: [{id, text, kind, metric?, required?}]}`; kinds scale_1_5,
    scale_0_10, yes_no, open_text; metrics csat, nps. ValueError names what is wrong."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise ValueError("the template must be a mapping with a list of questions")
    request = pb.PutSurveyTemplateRequest(
        template_id=str(data.get("template_id", "")), title=str(data.get("title", ""))
    )
    for index, item in enumerate(data["questions"]):
        if not isinstance(item, dict):
            raise ValueError(f"questions[{index}] must be a mapping")
        where = f"questions[{index}]"
        question = request.questions.add(
            question_id=str(item.get("id", "")),
            text=str(item.get("text", "")),
            kind=_number(t.QuestionKind, "QUESTION_KIND", str(item.get("kind", "")), where),  # type: ignore[arg-type]
            required=bool(item.get("required", False)),
        )
        if item.get("metric"):
            question.metric = _number(  # type: ignore[assignment]
                t.QuestionMetric, "QUESTION_METRIC", str(item["metric"]), where
            )
    return request


def answers_of(template: pb.SurveyTemplate, given: list[str]) -> list[pb.Answer]:
    """Returns `question=value` pairs as answers typed by the template's questions (a score for
    the scales, yes/no, text); ValueError for an unknown question or a value of the wrong kind."""
    kinds = {q.question_id: q.kind for q in template.questions}
    answers = []
    for pair in given:
        question, separator, value = pair.partition("=")
        if not separator or question not in kinds:
            known = ", ".join(kinds)
            raise ValueError(f"--answer {pair!r}: give question=value, question one of {known}")
        kind = kinds[question]
        if kind in (t.QUESTION_KIND_SCALE_1_5, t.QUESTION_KIND_SCALE_0_10):
            if not value.isdigit():
                raise ValueError(f"--answer {pair!r}: {question} takes a score")
            answers.append(pb.Answer(question_id=question, score=int(value)))
        elif kind == t.QUESTION_KIND_YES_NO:
            if value.lower() not in YES | NO:
                raise ValueError(f"--answer {pair!r}: {question} takes yes or no")
            answers.append(pb.Answer(question_id=question, yes=value.lower() in YES))
        else:
            answers.append(pb.Answer(question_id=question, text=value))
    return answers


def template_table(template: pb.SurveyTemplate) -> Table:
    """Returns one template version as a table of its questions."""
    table = Table(
        "question",
        "kind",
        "metric",
        "required",
        "text",
        title=f"{template.template_id} v{template.version}: {template.title}",
    )
    for q in template.questions:
        table.add_row(
            q.question_id,
            _name(t.QuestionKind, "QUESTION_KIND", q.kind),
            _name(t.QuestionMetric, "QUESTION_METRIC", q.metric) if q.metric else "-",
            "yes" if q.required else "",
            q.text,
        )
    return table


@template_app.command("put")
def put(path: Path, as_json: JsonOption = False) -> None:
    """Put the next version of a template from a YAML file (nothing new when unchanged)."""
    try:
        request = template_request(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        report(f"{path}: {exc}")
        raise typer.Exit(2) from None
    with channel() as opened:
        response = call(_stub(opened).PutSurveyTemplate, request)
    if as_json:
        print_message(response)
        return
    console.print(template_table(response.template))


@template_app.command("get")
def get(
    template_id: str,
    version: Annotated[int, typer.Option(help="0: the latest.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Show a version of a template ("default": the built-in one)."""
    request = pb.GetSurveyTemplateRequest(template_id=template_id, version=version)
    with channel() as opened:
        response = call(_stub(opened).GetSurveyTemplate, request)
    if as_json:
        print_message(response.template)
        return
    console.print(template_table(response.template))


@template_app.command("versions")
def versions(template_id: str, as_json: JsonOption = False) -> None:
    """List every version of a template, oldest first."""
    request = pb.ListSurveyTemplateVersionsRequest(template_id=template_id)
    with channel() as opened:
        response = call(_stub(opened).ListSurveyTemplateVersions, request)
    if as_json:
        print_message(response)
        return
    table = Table("version", "put at", "title", "questions")
    for item in response.versions:
        put_at = item.put_at.ToJsonString() if item.HasField("put_at") else "built in"
        table.add_row(str(item.version), put_at, item.title, str(len(item.questions)))
    console.print(table)


@survey_app.command("answer")
def answer(
    ticket_id: str,
    answers: Annotated[
        list[str], typer.Option("--answer", help="question=value, once per question answered.")
    ],
    template_id: Annotated[str, typer.Option("--template")] = "default",
    version: Annotated[int, typer.Option(help="0: the latest.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Submit the survey of a resolved ticket answering a template version."""
    with channel() as opened:
        stub = _stub(opened)
        template = call(
            stub.GetSurveyTemplate,
            pb.GetSurveyTemplateRequest(template_id=template_id, version=version),
        ).template
        try:
            given = answers_of(template, answers)
        except ValueError as exc:
            report(str(exc))
            raise typer.Exit(2) from None
        request = pb.SubmitSurveyRequest(
            ticket_id=ticket_id,
            template_id=template_id,
            template_version=template.version,
            answers=given,
        )
        survey = call(stub.SubmitSurvey, request).survey
    if as_json:
        print_message(survey)
        return
    console.print(
        f"survey of [bold]{survey.ticket_id}[/] ({survey.template_id} v{survey.template_version})"
        f": CSAT {survey.csat}" + (f", NPS {survey.nps}" if survey.HasField("nps") else "")
    )
