"""Emotion labels of Chinese and English customer words, with negation and intensity."""

from __future__ import annotations

import pytest

from careops_emotion import Emotion, classify


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("This is unacceptable, the worst service ever", Emotion.ANGRY),
        ("太差了，我要投诉！", Emotion.ANGRY),
        ("I am worried, please help urgently", Emotion.ANXIOUS),
        ("订单还没到，我很着急，怎么办", Emotion.ANXIOUS),
        ("Thank you, excellent and quick support", Emotion.SATISFIED),
        ("非常满意，客服很耐心，谢谢", Emotion.SATISFIED),
        ("My order number is 12345", Emotion.NEUTRAL),
        ("请问发票什么时候开", Emotion.NEUTRAL),
        ("", Emotion.NEUTRAL),
    ],
)
def test_labels(text: str, expected: Emotion) -> None:
    assert classify(text).emotion is expected


def test_negated_satisfaction_is_unhappy() -> None:
    english = classify("I am not happy, not satisfied at all")
    chinese = classify("我对这次服务不满意")
    assert english.emotion is Emotion.ANGRY and english.score < 0
    assert chinese.emotion is Emotion.ANGRY and chinese.score == -1.5
    assert all(match.negated for match in english.matches)
    assert chinese.matches[0].negated and chinese.matches[0].emotion is Emotion.ANGRY


def test_negated_anger_does_not_count() -> None:
    assert classify("I'm not angry, just asking").emotion is Emotion.NEUTRAL
    assert classify("我没有生气").emotion is Emotion.NEUTRAL


def test_intensifier_raises_weight() -> None:
    plain = classify("good")
    strong = classify("very good")
    assert plain.emotion is Emotion.SATISFIED
    assert strong.scores[Emotion.SATISFIED] == 1.5 * plain.scores[Emotion.SATISFIED]


def test_mixed_languages_sum() -> None:
    result = classify("Thanks 谢谢 great")
    assert result.scores[Emotion.SATISFIED] == pytest.approx(1.0 + 1.0 + 1.5)
    assert result.score == pytest.approx(3.5)


def test_anger_wins_ties() -> None:
    result = classify("angry thanks great")  # 2.0 angry vs 2.5 satisfied
    assert result.emotion is Emotion.SATISFIED
    assert classify("angry excellent").emotion is Emotion.ANGRY  # 2.0 vs 2.0
