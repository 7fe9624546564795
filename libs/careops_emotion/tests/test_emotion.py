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


def _texts() -> list[str]:
    """The labelled sample, and every lexicon term alone, negated, intensified, inside a
    sentence, next to each other and in the other language's company."""
    from careops_emotion import CHINESE_NEGATORS, ENGLISH_INTENSIFIERS, ENGLISH_NEGATORS, LEXICON
    from careops_emotion.tests.test_accuracy import load_sample

    texts = [text for _label, text in load_sample()]
    terms = sorted(LEXICON)
    for index, term in enumerate(terms):
        neighbour = terms[(index + 7) % len(terms)]
        texts += [
            term,
            term.upper(),
            f"well, {term}!",
            f"{term} {neighbour}",
            f"{neighbour}{term}",
            f"{sorted(ENGLISH_NEGATORS)[index % len(ENGLISH_NEGATORS)]} {term}",
            f"{sorted(ENGLISH_INTENSIFIERS)[index % len(ENGLISH_INTENSIFIERS)]} {term} today",
            f"{CHINESE_NEGATORS[index % len(CHINESE_NEGATORS)]}{term}",
            f"我{term}，order 42 {neighbour}",
        ]
    return texts


def test_the_shortcuts_find_what_the_full_search_finds() -> None:
    """Pairs of tokens are tried only after a word a two-word term starts with, and Chinese
    terms only in a text with a CJK character: the matches are those of trying everything."""
    from careops_emotion import EVERY_PAIR, _chinese, _english

    texts = _texts()
    assert len(texts) > 500
    for text in texts:
        assert _english(text) == _english(text, EVERY_PAIR), text
        assert _chinese(text) == _chinese(text, shortcut=False), text
