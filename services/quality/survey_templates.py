"""Survey templates (004 §4.2) as versioned data, and answering one. Pure: no I/O, no clock,
no protobuf.

A template aggregate (one per template id) holds every version put; version n is its n-th
event. "default" is built in (version 1) and answers today's SubmitSurvey shape (csat, nps,
comment). Exactly one CSAT question (a required 1..5 scale) and one NPS question (0..10) map
each template to the KPIs; yes/no questions get their own distribution.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from quality.domain import (
    MAX_COMMENT,
    InvalidCommand,
    QualityError,
    QuestionKind,
    RecordedAnswer,
    validate_survey,
)

DEFAULT_TEMPLATE = "default"
MIN_QUESTIONS = 5
MAX_QUESTIONS = 10
MAX_QUESTION_TEXT = 500
MAX_TITLE = 200
MAX_VERSIONS = 1_000
TEMPLATE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
QUESTION_ID = re.compile(r"[a-z0-9_]{1,40}")


class QuestionMetric(StrEnum):
    CSAT = "csat"
    NPS = "nps"


SCALES = {QuestionKind.SCALE_1_5: (1, 5), QuestionKind.SCALE_0_10: (0, 10)}


class TemplateNotFound(QualityError):
    """No such template, or no such version of it."""


@dataclass(frozen=True)
class SurveyQuestion:
    question_id: str
    text: str
    kind: QuestionKind | None
    metric: QuestionMetric | None = None
    required: bool = False


@dataclass(frozen=True)
class SurveyTemplatePut:
    template_id: str
    title: str
    questions: tuple[SurveyQuestion, ...]


@dataclass(frozen=True)
class TemplateVersion:
    template_id: str
    version: int
    title: str
    questions: tuple[SurveyQuestion, ...]
    put_at: datetime | None = None

    def question(self, question_id: str) -> SurveyQuestion | None:
        """Returns the question of that id, or None."""
        return next((q for q in self.questions if q.question_id == question_id), None)


@dataclass(frozen=True)
class Template:
    template_id: str
    versions: tuple[TemplateVersion, ...] = field(default_factory=tuple)

    def version(self, number: int = 0) -> TemplateVersion:
        """Returns version `number` (0: the latest); TemplateNotFound when there is none."""
        if not self.versions:
            raise TemplateNotFound(f"no survey template {self.template_id!r}")
        if number == 0:
            return self.versions[-1]
        if not 1 <= number <= len(self.versions):
            raise TemplateNotFound(
                f"survey template {self.template_id!r} has no version {number} "
                f"(latest: {len(self.versions)})"
            )
        return self.versions[number - 1]


DEFAULT = Template(
    DEFAULT_TEMPLATE,
    (
        TemplateVersion(
            DEFAULT_TEMPLATE,
            1,
            "After your ticket",
            (
                SurveyQuestion(
                    "csat",
                    "How satisfied are you with how we handled your request?",
                    QuestionKind.SCALE_1_5,
                    QuestionMetric.CSAT,
                    required=True,
                ),
                SurveyQuestion(
                    "nps",
                    "How likely are you to recommend us to a friend or colleague?",
                    QuestionKind.SCALE_0_10,
                    QuestionMetric.NPS,
                ),
                SurveyQuestion("solved", "Was your problem solved?", QuestionKind.YES_NO),
                SurveyQuestion("effort", "How easy was it to get help?", QuestionKind.SCALE_1_5),
                SurveyQuestion(
                    "comment", "Anything else you want to tell us?", QuestionKind.OPEN_TEXT
                ),
            ),
        ),
    ),
)


def initial(template_id: str) -> Template:
    """Returns the state of a template never put ("default": the built-in one)."""
    return DEFAULT if template_id == DEFAULT_TEMPLATE else Template(template_id)


def evolve(state: Template, event: SurveyTemplatePut, at: datetime) -> Template:
    """Returns the template with the event's version appended."""
    version = TemplateVersion(
        state.template_id, len(state.versions) + 1, event.title, tuple(event.questions), at
    )
    return replace(state, versions=(*state.versions, version))


# ----------------------------------------------------------------------------- putting


def validate_template(
    template_id: str, title: str, questions: Sequence[SurveyQuestion]
) -> list[tuple[str, str]]:
    """Returns the violations of a template version: 5..10 questions with unique ids, known
    kinds, exactly one CSAT question (required 1..5) and one NPS question (0..10)."""
    violations: list[tuple[str, str]] = []
    if template_id == DEFAULT_TEMPLATE:
        violations.append(("template_id", "default is built in and cannot be put"))
    elif not TEMPLATE_ID.fullmatch(template_id):
        violations.append(("template_id", "must be 1-64 of a-z, 0-9, _ and -"))
    if not title.strip() or len(title) > MAX_TITLE:
        violations.append(("title", f"must be 1..{MAX_TITLE} characters"))
    if not MIN_QUESTIONS <= len(questions) <= MAX_QUESTIONS:
        violations.append(
            ("questions", f"must be {MIN_QUESTIONS}..{MAX_QUESTIONS}, got {len(questions)}")
        )
    seen: set[str] = set()
    for index, question in enumerate(questions):
        violations += _question(f"questions[{index}]", question, seen)
    for metric, kind in ((QuestionMetric.CSAT, "scale_1_5"), (QuestionMetric.NPS, "scale_0_10")):
        count = sum(q.metric is metric for q in questions)
        if count != 1:
            violations.append(
                ("questions", f"need exactly one {metric.value} question ({kind}), got {count}")
            )
    return violations


def _question(path: str, question: SurveyQuestion, seen: set[str]) -> list[tuple[str, str]]:
    violations = []
    if not QUESTION_ID.fullmatch(question.question_id):
        violations.append((f"{path}.question_id", "must be 1-40 of a-z, 0-9 and _"))
    elif question.question_id in seen:
        violations.append((f"{path}.question_id", f"{question.question_id} is used twice"))
    seen.add(question.question_id)
    if not question.text.strip() or len(question.text) > MAX_QUESTION_TEXT:
        violations.append((f"{path}.text", f"must be 1..{MAX_QUESTION_TEXT} characters"))
    if question.kind is None:
        violations.append((f"{path}.kind", "must be given"))
    is_csat = question.metric is QuestionMetric.CSAT
    if is_csat and (question.kind is not QuestionKind.SCALE_1_5 or not question.required):
        violations.append((f"{path}.metric", "the CSAT question is a required scale_1_5"))
    if question.metric is QuestionMetric.NPS and question.kind is not QuestionKind.SCALE_0_10:
        violations.append((f"{path}.metric", "the NPS question is a scale_0_10"))
    return violations


def decide_put(
    state: Template, title: str, questions: Sequence[SurveyQuestion]
) -> list[SurveyTemplatePut]:
    """Returns the event of the template's next version; nothing when it equals the latest."""
    violations = validate_template(state.template_id, title, questions)
    if violations:
        raise InvalidCommand(violations)
    if state.versions:
        latest = state.versions[-1]
        if (latest.title, latest.questions) == (title, tuple(questions)):
            return []
    if len(state.versions) >= MAX_VERSIONS:
        raise InvalidCommand([("template_id", f"has {MAX_VERSIONS} versions already")])
    return [SurveyTemplatePut(state.template_id, title, tuple(questions))]


# ----------------------------------------------------------------------------- answering


@dataclass(frozen=True)
class Answer:
    """One answer as a request gives it: exactly one of score, yes, text."""

    question_id: str
    score: int | None = None
    yes: bool | None = None
    text: str | None = None


@dataclass(frozen=True)
class AnsweredSurvey:
    """A template version's answers, checked, and what they give the KPIs."""

    template_id: str
    template_version: int
    answers: tuple[RecordedAnswer, ...]
    csat: int
    nps: int | None
    comment: str


def answer(template: TemplateVersion, answers: Sequence[Answer]) -> AnsweredSurvey:
    """Checks every answer against its question (INVALID_ARGUMENT listing each bad one) and
    returns the recorded answers with the survey's CSAT, NPS and comment (open texts joined)."""
    violations: list[tuple[str, str]] = []
    recorded: dict[str, RecordedAnswer] = {}
    for index, given in enumerate(answers):
        path = f"answers[{index}]"
        question = template.question(given.question_id)
        if question is None or question.kind is None:
            violations.append((f"{path}.question_id", f"no question {given.question_id!r}"))
        elif given.question_id in recorded:
            violations.append((f"{path}.question_id", f"{given.question_id} is answered twice"))
        else:
            value, why = _value(question.kind, given)
            if value is None:
                violations.append((path, why))
            else:
                recorded[given.question_id] = value
    given_ids = {given.question_id for given in answers}
    for question in template.questions:
        if question.required and question.question_id not in given_ids:
            violations.append(("answers", f"question {question.question_id} is required"))
    if violations:
        raise InvalidCommand(violations)
    ordered = tuple(
        recorded[q.question_id] for q in template.questions if q.question_id in recorded
    )
    return AnsweredSurvey(
        template.template_id,
        template.version,
        ordered,
        csat=_metric(template, recorded, QuestionMetric.CSAT) or 0,
        nps=_metric(template, recorded, QuestionMetric.NPS),
        comment="\n".join(a.text for a in ordered if a.kind is QuestionKind.OPEN_TEXT and a.text),
    )


def _value(kind: QuestionKind, given: Answer) -> tuple[RecordedAnswer | None, str]:
    qid = given.question_id
    if kind in SCALES:
        low, high = SCALES[kind]
        if given.score is None:
            return None, f"{qid} is a {kind.value}: give a score"
        if not low <= given.score <= high:
            return None, f"{qid} must be {low}..{high}, got {given.score}"
        return RecordedAnswer(qid, kind, score=given.score), ""
    if kind is QuestionKind.YES_NO:
        if given.yes is None:
            return None, f"{qid} is yes/no: give yes"
        return RecordedAnswer(qid, kind, yes=given.yes), ""
    if given.text is None:
        return None, f"{qid} is open text: give text"
    if len(given.text) > MAX_COMMENT:
        return None, f"{qid} must be at most {MAX_COMMENT} characters"
    return RecordedAnswer(qid, kind, text=given.text), ""


def _metric(
    template: TemplateVersion, recorded: dict[str, RecordedAnswer], metric: QuestionMetric
) -> int | None:
    question = next(q for q in template.questions if q.metric is metric)
    given = recorded.get(question.question_id)
    return given.score if given is not None else None


def legacy_answers(csat: int, nps: int | None, comment: str) -> list[Answer]:
    """Returns today's SubmitSurvey fields as answers to the built-in default template."""
    answers = [Answer("csat", score=csat)]
    if nps is not None:
        answers.append(Answer("nps", score=nps))
    if comment:
        answers.append(Answer("comment", text=comment))
    return answers


def legacy_survey(csat: int, nps: int | None, comment: str) -> AnsweredSurvey:
    """Returns today's SubmitSurvey fields, checked as before (field names csat, nps, comment),
    as an answered survey of the built-in default template."""
    violations = validate_survey(csat, nps, comment)
    if violations:
        raise InvalidCommand(violations)
    return answer(DEFAULT.version(1), legacy_answers(csat, nps, comment))
