"""Survey templates: validation of a version, answers checked against their questions,
versioning through the application on the in-memory store (no NATS)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from careops_eventstore.memory import InMemoryEventStore

from quality import domain
from quality import survey_templates as st
from quality.application import CODEC, STREAM, QualityApp
from quality.main import QualityService, QualitySettings
from tests.in_memory import logged, types_of
from tests.support import FakeClock

K = st.QuestionKind
M = st.QuestionMetric
QUESTIONS = (
    st.SurveyQuestion("overall", "How satisfied are you?", K.SCALE_1_5, M.CSAT, required=True),
    st.SurveyQuestion("recommend", "Would you recommend us?", K.SCALE_0_10, M.NPS),
    st.SurveyQuestion("first_time", "Solved the first time?", K.YES_NO, required=True),
    st.SurveyQuestion("clarity", "How clear were the explanations?", K.SCALE_1_5),
    st.SurveyQuestion("better", "What should we do better?", K.OPEN_TEXT),
    st.SurveyQuestion("praise", "What did we do well?", K.OPEN_TEXT),
)
TICKET = domain.TicketFacts("t-1", "c-1", "a-1", "chat", "fault", "normal", resolved=True)


def violations_of(call: object, *args: object) -> list[tuple[str, str]]:
    with pytest.raises(domain.InvalidCommand) as raised:
        call(*args)  # type: ignore[operator]
    return list(raised.value.violations)


def fields(violations: list[tuple[str, str]]) -> list[str]:
    return [name for name, _why in violations]


def test_the_builtin_default_is_a_valid_template_of_five_questions() -> None:
    default = st.DEFAULT.version(1)
    assert len(default.questions) == 5
    assert st.validate_template("other", default.title, default.questions) == []
    assert fields(st.validate_template("default", default.title, default.questions)) == [
        "template_id"
    ]


@pytest.mark.parametrize(
    ("questions", "field", "why"),
    [
        (QUESTIONS[:4], "questions", "must be 5..10, got 4"),
        (QUESTIONS + QUESTIONS[4:] * 3, "questions", "must be 5..10, got 12"),
        (
            (*QUESTIONS[1:], replace(QUESTIONS[3], question_id="other")),
            "questions",
            "exactly one csat question",
        ),
        (
            (*QUESTIONS, replace(QUESTIONS[1], question_id="nps2")),
            "questions",
            "exactly one nps question",
        ),
        (
            (replace(QUESTIONS[0], required=False), *QUESTIONS[1:]),
            "questions[0].metric",
            "required",
        ),
        (
            (QUESTIONS[0], replace(QUESTIONS[1], kind=K.SCALE_1_5), *QUESTIONS[2:]),
            "questions[1].metric",
            "scale_0_10",
        ),
        ((*QUESTIONS[:5], replace(QUESTIONS[4], text="x")), "questions[5].question_id", "twice"),
        (
            (*QUESTIONS[:5], replace(QUESTIONS[5], question_id="Bad Id")),
            "questions[5].question_id",
            "",
        ),
        ((*QUESTIONS[:5], replace(QUESTIONS[5], kind=None)), "questions[5].kind", "given"),
        ((*QUESTIONS[:5], replace(QUESTIONS[5], text=" ")), "questions[5].text", ""),
    ],
)
def test_a_bad_template_version_names_its_field(
    questions: tuple[st.SurveyQuestion, ...], field: str, why: str
) -> None:
    found = st.validate_template("after-chat", "After chat", questions)
    assert any(name == field and why in text for name, text in found), found


def test_a_bad_template_id_or_title_is_refused() -> None:
    assert fields(st.validate_template("Bad id", "", QUESTIONS)) == ["template_id", "title"]


def version(questions: tuple[st.SurveyQuestion, ...] = QUESTIONS) -> st.TemplateVersion:
    return st.TemplateVersion("after-chat", 1, "After chat", questions)


def test_answers_give_the_survey_its_csat_nps_comment_and_recorded_answers() -> None:
    answered = st.answer(
        version(),
        [
            st.Answer("praise", text="Quick"),
            st.Answer("overall", score=4),
            st.Answer("first_time", yes=False),
            st.Answer("better", text="Call back sooner"),
        ],
    )
    assert (answered.csat, answered.nps) == (4, None)
    # Open texts in the template's order make up the comment (personal data, shredded with it).
    assert answered.comment == "Call back sooner\nQuick"
    assert [a.question_id for a in answered.answers] == [
        "overall",
        "first_time",
        "better",
        "praise",
    ]
    assert answered.answers[1] == domain.RecordedAnswer("first_time", K.YES_NO, yes=False)
    assert (answered.template_id, answered.template_version) == ("after-chat", 1)


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([st.Answer("overall", score=6)], [("answers[0]", "must be 1..5, got 6")]),
        ([st.Answer("overall", score=0)], [("answers[0]", "must be 1..5, got 0")]),
        ([st.Answer("recommend", score=11)], [("answers[0]", "must be 0..10, got 11")]),
        ([st.Answer("overall", yes=True)], [("answers[0]", "give a score")]),
        ([st.Answer("first_time", score=1)], [("answers[0]", "give yes")]),
        ([st.Answer("better", score=3)], [("answers[0]", "give text")]),
        ([st.Answer("better", text="x" * 5001)], [("answers[0]", "at most 5000")]),
        ([st.Answer("nope", score=3)], [("answers[0].question_id", "no question 'nope'")]),
        ([st.Answer("clarity", score=3)] * 2, [("answers[1].question_id", "answered twice")]),
        ([], [("answers", "overall is required"), ("answers", "first_time is required")]),
    ],
)
def test_each_answer_is_checked_against_its_question(
    answers: list[st.Answer], expected: list[tuple[str, str]]
) -> None:
    complete = {
        "overall": st.Answer("overall", score=3),
        "first_time": st.Answer("first_time", yes=True),
    }
    given = {a.question_id for a in answers}
    filled = [*answers, *(a for q, a in complete.items() if q not in given)] if answers else []
    found = violations_of(st.answer, version(), filled)
    assert len(found) == len(expected), found
    for (name, text), (want_name, want_text) in zip(found, expected, strict=True):
        assert name == want_name and want_text in text, found


def test_todays_survey_shape_answers_the_default_template_with_the_same_kpi_inputs() -> None:
    for csat, nps, comment in ((5, 10, "Great"), (2, None, ""), (1, 0, "  ")):
        answered = st.answer(st.DEFAULT.version(1), st.legacy_answers(csat, nps, comment))
        assert (answered.csat, answered.nps, answered.comment) == (csat, nps, comment)
        assert (answered.template_id, answered.template_version) == ("default", 1)


def test_a_template_without_a_version_is_not_found() -> None:
    with pytest.raises(st.TemplateNotFound):
        st.initial("after-chat").version()
    with pytest.raises(st.TemplateNotFound, match="no version 2"):
        st.DEFAULT.version(2)


async def bootstrapped(tmp_path: Path, clock: FakeClock) -> tuple[QualityApp, InMemoryEventStore]:
    settings = QualitySettings(data_dir=str(tmp_path))
    store = InMemoryEventStore()
    return await QualityService(settings, clock=clock).bootstrap(store), store


async def test_each_put_that_changes_the_template_is_its_next_version(tmp_path: Path) -> None:
    app, store = await bootstrapped(tmp_path, FakeClock())
    first, _ = await app.put_template(
        "after-chat", "After chat", QUESTIONS, command_id="p-1", actor="sup-1"
    )
    again, _ = await app.put_template(
        "after-chat", "After chat", QUESTIONS, command_id="p-2", actor="sup-1"
    )
    fewer = QUESTIONS[:5]
    second, _ = await app.put_template(
        "after-chat", "After chat", fewer, command_id="p-3", actor="sup-1"
    )
    assert (first.version, again.version, second.version) == (1, 1, 2)
    items = await logged(store, STREAM.name, CODEC)
    assert types_of(items) == ["careops.quality.v1.SurveyTemplatePut"] * 2
    assert {item.envelope.actor for item in items} == {"sup-1"}
    assert items[0].subject == "careops.quality.template.after-chat"
    assert (await app.template("after-chat", 1)).questions == QUESTIONS
    assert (await app.template("after-chat")).questions == fewer
    assert [v.version for v in (await app.template_versions("after-chat")).versions] == [1, 2]


async def test_a_survey_records_the_template_version_it_answered(tmp_path: Path) -> None:
    app, store = await bootstrapped(tmp_path, FakeClock())
    await app.put_template("after-chat", "After chat", QUESTIONS, command_id="p-1", actor="s")
    await app.put_template("after-chat", "After chat", QUESTIONS[:5], command_id="p-2", actor="s")
    old = await app.template("after-chat", 1)
    answered = st.answer(old, [st.Answer("overall", score=2), st.Answer("first_time", yes=False)])
    await app.submit_survey(TICKET, "t-1", answered=answered, command_id="s-1", actor="c-1")
    event = (await logged(store, STREAM.name, CODEC))[-1].event
    assert isinstance(event, domain.SurveySubmitted)
    assert (event.template_id, event.template_version, event.csat, event.has_nps) == (
        "after-chat",
        1,
        2,
        False,
    )
    assert event.answers == answered.answers and event.follow_up_required


async def test_putting_the_default_template_appends_nothing(tmp_path: Path) -> None:
    app, store = await bootstrapped(tmp_path, FakeClock())
    seeded = await store.last_sequence(STREAM.name)  # the policies seeded at start
    with pytest.raises(domain.InvalidCommand):
        await app.put_template("default", "Mine", QUESTIONS, command_id="p-1", actor="s")
    assert await store.last_sequence(STREAM.name) == seeded
    assert (await app.template("default")).version == 1
