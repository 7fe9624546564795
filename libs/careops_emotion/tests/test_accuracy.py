"""Accuracy of the emotion library on a hand-labelled sample (labelled_messages.tsv).

Prints a per-class table (run with `-s` to see it) and asserts floors measured on this sample
minus a margin, so a regression in the lexicon or the negation rules fails the test.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from careops_emotion import Emotion, classify

SAMPLE = Path(__file__).with_name("labelled_messages.tsv")
# Measured on the sample (docs/emotion.md: overall 0.985, angry 0.958, the others 1.000) minus a
# margin of two to three messages per class.
OVERALL_FLOOR = 0.95
CLASS_FLOOR = {
    Emotion.ANGRY: 0.90,
    Emotion.ANXIOUS: 0.90,
    Emotion.SATISFIED: 0.90,
    Emotion.NEUTRAL: 0.90,
}


def load_sample() -> list[tuple[Emotion, str]]:
    """Returns the (label, message) pairs of the sample, skipping comment lines."""
    rows = []
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        label, text = line.split("\t", 1)
        rows.append((Emotion(label), text))
    return rows


def accuracy_table(
    rows: list[tuple[Emotion, str]],
) -> tuple[dict[Emotion, float], float, list[str]]:
    """Returns per-class recall, overall accuracy and the misses as printable lines."""
    total: Counter[Emotion] = Counter()
    right: Counter[Emotion] = Counter()
    misses = []
    for label, text in rows:
        got = classify(text).emotion
        total[label] += 1
        if got is label:
            right[label] += 1
        else:
            misses.append(f"  {label.value:>9} read as {got.value:<9} {text}")
    per_class = {label: right[label] / total[label] for label in total}
    return per_class, sum(right.values()) / len(rows), misses


def test_sample_is_large_and_covers_every_class() -> None:
    rows = load_sample()
    assert len(rows) >= 100
    assert {label for label, _ in rows} == set(Emotion)


def test_accuracy_per_class() -> None:
    rows = load_sample()
    per_class, overall, misses = accuracy_table(rows)
    counts = Counter(label for label, _ in rows)
    print("\nclass      messages  accuracy")
    for label in Emotion:
        print(f"{label.value:<10} {counts[label]:>8}  {per_class[label]:.3f}")
    print(f"{'overall':<10} {len(rows):>8}  {overall:.3f}")
    print("misses:", *misses, sep="\n")
    assert overall >= OVERALL_FLOOR
    for label, floor in CLASS_FLOOR.items():
        assert per_class[label] >= floor, label


def test_must_hold_messages() -> None:
    assert classify("I am not happy at all").emotion is not Emotion.SATISFIED
    assert classify("你们太过分了，我要投诉！").emotion is Emotion.ANGRY
