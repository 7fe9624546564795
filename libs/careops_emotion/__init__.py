"""Customer emotion from words (DOMAIN §4): a documented lexicon, Chinese and English, stdlib only.

`classify(text)` scores the text per emotion, `E(s) = Σ w_i · f_i(s)`, where f_i counts the
occurrences of lexicon term i and w_i is its weight, and returns the strongest emotion:

- angry      -> urgent handling (senior agent first, fast response)
- anxious    -> patient explanation
- satisfied  -> relationship care
- neutral    -> nothing stronger than `THRESHOLD` was found

Negation: a term preceded (within `NEGATION_WINDOW` tokens in English, or directly in Chinese) by
a negator is flipped: a negated satisfied term ("not happy", "不满意") counts as angry with its
weight; a negated angry or anxious term ("not angry", "不着急") counts for nothing.
Intensifiers ("very", "非常", …) directly before a term multiply its weight by 1.5.
Precedence on equal scores: angry > anxious > satisfied (the costlier miss first).
The overall `score` is satisfied − angry − 0.5·anxious: negative means an unhappy customer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

THRESHOLD = 1.0
NEGATION_WINDOW = 3
INTENSITY = 1.5


class Emotion(StrEnum):
    ANGRY = "angry"
    ANXIOUS = "anxious"
    NEUTRAL = "neutral"
    SATISFIED = "satisfied"


# term -> (emotion, weight). English terms are matched as whole words (lower-cased); multi-word
# terms as phrases. Chinese terms are matched as substrings. Weight 2: strong, 1: mild.
LEXICON: dict[str, tuple[Emotion, float]] = {
    # English, angry
    "angry": (Emotion.ANGRY, 2.0),
    "furious": (Emotion.ANGRY, 2.0),
    "outraged": (Emotion.ANGRY, 2.0),
    "unacceptable": (Emotion.ANGRY, 2.0),
    "ridiculous": (Emotion.ANGRY, 2.0),
    "terrible": (Emotion.ANGRY, 2.0),
    "awful": (Emotion.ANGRY, 2.0),
    "worst": (Emotion.ANGRY, 2.0),
    "scam": (Emotion.ANGRY, 2.0),
    "useless": (Emotion.ANGRY, 1.5),
    "disappointed": (Emotion.ANGRY, 1.0),
    "annoyed": (Emotion.ANGRY, 1.0),
    "rude": (Emotion.ANGRY, 1.5),
    "complaint": (Emotion.ANGRY, 1.0),
    "refund now": (Emotion.ANGRY, 2.0),
    # Added after measuring the labelled sample (docs/emotion.md).
    "unhappy": (Emotion.ANGRY, 1.5),
    "horrible": (Emotion.ANGRY, 2.0),
    "disgusting": (Emotion.ANGRY, 2.0),
    "fed up": (Emotion.ANGRY, 2.0),
    "sick of": (Emotion.ANGRY, 1.5),
    # English, anxious
    "worried": (Emotion.ANXIOUS, 1.5),
    "anxious": (Emotion.ANXIOUS, 2.0),
    "urgent": (Emotion.ANXIOUS, 1.5),
    "urgently": (Emotion.ANXIOUS, 1.5),
    "asap": (Emotion.ANXIOUS, 1.5),
    "hurry": (Emotion.ANXIOUS, 1.0),
    "nervous": (Emotion.ANXIOUS, 1.5),
    "still waiting": (Emotion.ANXIOUS, 1.5),
    "confused": (Emotion.ANXIOUS, 1.0),
    "help": (Emotion.ANXIOUS, 0.5),
    "scared": (Emotion.ANXIOUS, 1.5),
    "panicking": (Emotion.ANXIOUS, 2.0),
    "can't wait": (Emotion.ANXIOUS, 1.0),
    # English, satisfied
    "thanks": (Emotion.SATISFIED, 1.0),
    "thank you": (Emotion.SATISFIED, 1.0),
    "great": (Emotion.SATISFIED, 1.5),
    "excellent": (Emotion.SATISFIED, 2.0),
    "happy": (Emotion.SATISFIED, 1.5),
    "satisfied": (Emotion.SATISFIED, 1.5),
    "helpful": (Emotion.SATISFIED, 1.5),
    "perfect": (Emotion.SATISFIED, 2.0),
    "love": (Emotion.SATISFIED, 1.5),
    "good": (Emotion.SATISFIED, 1.0),
    "quick": (Emotion.SATISFIED, 1.0),
    "solved": (Emotion.SATISFIED, 1.0),
    "awesome": (Emotion.SATISFIED, 2.0),
    "appreciate": (Emotion.SATISFIED, 1.5),
    "thrilled": (Emotion.SATISFIED, 2.0),
    "the best": (Emotion.SATISFIED, 1.5),
    # Chinese, angry
    "生气": (Emotion.ANGRY, 2.0),
    "愤怒": (Emotion.ANGRY, 2.0),
    "气死": (Emotion.ANGRY, 2.0),
    "太差": (Emotion.ANGRY, 2.0),
    "垃圾": (Emotion.ANGRY, 2.0),
    "骗子": (Emotion.ANGRY, 2.0),
    "投诉": (Emotion.ANGRY, 1.5),
    "失望": (Emotion.ANGRY, 1.0),
    "差劲": (Emotion.ANGRY, 2.0),
    "不能接受": (Emotion.ANGRY, 2.0),
    "无法接受": (Emotion.ANGRY, 2.0),
    "态度恶劣": (Emotion.ANGRY, 2.0),
    "退款": (Emotion.ANGRY, 1.0),
    "恶心": (Emotion.ANGRY, 2.0),
    "过分": (Emotion.ANGRY, 2.0),
    "被坑": (Emotion.ANGRY, 2.0),
    "烦": (Emotion.ANGRY, 1.0),
    # Chinese, anxious
    "着急": (Emotion.ANXIOUS, 1.5),
    "焦虑": (Emotion.ANXIOUS, 2.0),
    "担心": (Emotion.ANXIOUS, 1.5),
    "紧急": (Emotion.ANXIOUS, 1.5),
    "尽快": (Emotion.ANXIOUS, 1.0),
    "马上": (Emotion.ANXIOUS, 1.0),
    "怎么办": (Emotion.ANXIOUS, 1.5),
    "还在等": (Emotion.ANXIOUS, 1.5),
    "急": (Emotion.ANXIOUS, 1.0),
    "担忧": (Emotion.ANXIOUS, 1.5),
    "快点": (Emotion.ANXIOUS, 1.0),
    # Chinese, satisfied
    "谢谢": (Emotion.SATISFIED, 1.0),
    "感谢": (Emotion.SATISFIED, 1.0),
    "满意": (Emotion.SATISFIED, 1.5),
    "很好": (Emotion.SATISFIED, 1.5),
    "专业": (Emotion.SATISFIED, 1.0),
    "及时": (Emotion.SATISFIED, 1.0),
    "耐心": (Emotion.SATISFIED, 1.0),
    "好评": (Emotion.SATISFIED, 2.0),
    "解决了": (Emotion.SATISFIED, 1.0),
    "点赞": (Emotion.SATISFIED, 1.5),
    "给力": (Emotion.SATISFIED, 1.5),
    "棒": (Emotion.SATISFIED, 1.0),
}

ENGLISH_NEGATORS = frozenset(
    {
        "not",
        "no",
        "never",
        "don't",
        "dont",
        "didn't",
        "isn't",
        "wasn't",
        "aren't",
        "hardly",
        "cannot",
        "won't",
        "nothing",
    }
)
# Longest first, so "没有" wins over "没".
CHINESE_NEGATORS = ("没有", "并不", "不是", "不太", "不", "没", "别", "未", "无")
ENGLISH_INTENSIFIERS = frozenset({"very", "really", "so", "extremely", "totally", "absolutely"})
CHINESE_INTENSIFIERS = ("非常", "特别", "十分", "极其", "太", "很", "超")

_WORD = re.compile(r"[a-z']+")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_ENGLISH = {term: value for term, value in LEXICON.items() if not _CJK.search(term)}
_CHINESE = sorted(
    ((term, value) for term, value in LEXICON.items() if _CJK.search(term)),
    key=lambda item: -len(item[0]),
)
# The words a two-word English term starts with: only there can a pair of tokens match.
_PAIR_STARTS = frozenset(term.partition(" ")[0] for term in _ENGLISH if " " in term)
_EMOTIONS = tuple(Emotion)
_LABELS = (Emotion.ANGRY, Emotion.ANXIOUS, Emotion.SATISFIED)


@dataclass(frozen=True)
class Match:
    """One lexicon hit: the term, the emotion it counted for and its effective weight."""

    term: str
    emotion: Emotion
    weight: float
    negated: bool = False


@dataclass(frozen=True)
class EmotionResult:
    """The label, the overall score E(s) and the hits that produced them."""

    emotion: Emotion
    score: float
    scores: dict[Emotion, float]
    matches: tuple[Match, ...]


def _flip(emotion: Emotion, weight: float) -> tuple[Emotion, float]:
    if emotion is Emotion.SATISFIED:
        return Emotion.ANGRY, weight
    return Emotion.NEUTRAL, 0.0


class _Every:
    """Contains every word: `_english` then tries each pair of tokens (no shortcut)."""

    def __contains__(self, word: object) -> bool:
        return True


EVERY_PAIR = _Every()


def _english(text: str, pair_starts: frozenset[str] | _Every = _PAIR_STARTS) -> list[Match]:
    tokens = _WORD.findall(text.lower())
    matches = []
    index = 0
    while index < len(tokens):
        for size in (2, 1):
            if size == 2 and (index + 1 >= len(tokens) or tokens[index] not in pair_starts):
                continue
            term = " ".join(tokens[index : index + size])
            if term not in _ENGLISH:
                continue
            emotion, weight = _ENGLISH[term]
            before = tokens[max(0, index - NEGATION_WINDOW) : index]
            if index and tokens[index - 1] in ENGLISH_INTENSIFIERS:
                weight *= INTENSITY
            negated = any(token in ENGLISH_NEGATORS for token in before)
            if negated:
                emotion, weight = _flip(emotion, weight)
            matches.append(Match(term, emotion, weight, negated))
            index += size - 1
            break
        index += 1
    return matches


def _chinese(text: str, *, shortcut: bool = True) -> list[Match]:
    if shortcut and not _CJK.search(text):
        return []  # every Chinese term has a CJK character
    matches = []
    taken = [False] * len(text)
    for term, (emotion, weight) in _CHINESE:
        start = text.find(term)
        while start >= 0:
            end = start + len(term)
            if not any(taken[start:end]):
                for position in range(start, end):
                    taken[position] = True
                prefix = text[max(0, start - 3) : start]
                found_emotion, found_weight = emotion, weight
                negated = any(prefix.endswith(neg) for neg in CHINESE_NEGATORS) or any(
                    prefix.endswith(neg + intensifier)
                    for neg in CHINESE_NEGATORS
                    for intensifier in CHINESE_INTENSIFIERS
                )
                if any(prefix.endswith(word) for word in CHINESE_INTENSIFIERS) and not negated:
                    found_weight *= INTENSITY
                if negated:
                    found_emotion, found_weight = _flip(emotion, weight)
                matches.append(Match(term, found_emotion, found_weight, negated))
            start = text.find(term, end)
    return matches


def classify(text: str) -> EmotionResult:
    """Returns the emotion of `text` (Chinese, English or both mixed)."""
    matches = tuple(_english(text) + _chinese(text))
    scores = dict.fromkeys(_EMOTIONS, 0.0)
    for match in matches:
        scores[match.emotion] += match.weight
    scores[Emotion.NEUTRAL] = 0.0
    score = scores[Emotion.SATISFIED] - scores[Emotion.ANGRY] - 0.5 * scores[Emotion.ANXIOUS]
    label = Emotion.NEUTRAL
    best = 0.0
    for emotion in _LABELS:
        if scores[emotion] >= THRESHOLD and scores[emotion] > best:
            label, best = emotion, scores[emotion]
    return EmotionResult(label, round(score, 3), scores, matches)
