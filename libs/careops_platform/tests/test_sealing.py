"""Free text sealed for its owner: round trip, nested fields, the codec's empty fields, erasure."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from careops.quality.v1 import events_pb2
from careops_eventstore.codec import EnvelopeContext, EventCodec
from careops_published.sealed import SealedText
from prometheus_client import REGISTRY
from sqlalchemy import MetaData

from careops_platform.db import make_engine
from careops_platform.keystore import Cipher, KeyStore, decryption_failures, key_table
from careops_platform.sealing import SEALING_KEY_SECONDS, TextSealer

NOW = datetime(2026, 6, 1, tzinfo=UTC)
FAILURES = decryption_failures("careops_test_sealing_failures_total", "Test text")


@dataclass(frozen=True)
class Answer:
    question_id: str
    text: str = ""


@dataclass(frozen=True)
class SurveySubmitted:
    """A few fields of quality's SurveySubmitted, matched by name."""

    ticket_id: str
    comment: str
    answers: tuple[Answer, ...] = ()
    sealed: SealedText | None = None


FIELDS: dict[type, tuple[str, ...]] = {SurveySubmitted: ("comment", "answers.text")}
CODEC = EventCodec({SurveySubmitted: events_pb2.SurveySubmitted}, sealed_fields=FIELDS)
CONTEXT = EnvelopeContext("T-1", "survey", "cmd-1", NOW)


def corrupt() -> float:
    value = REGISTRY.get_sample_value("careops_test_sealing_failures_total", {"reason": "corrupt"})
    return value or 0.0


def sealer(tmp_path: Path, monotonic: Callable[[], float] = time.monotonic) -> TextSealer:
    table = key_table("test_text_keys", MetaData())
    keys = KeyStore(
        make_engine(f"sqlite:///{tmp_path / 'keys.db'}"),
        os.urandom(32),
        table=table,
        cipher=Cipher("careops-test", FAILURES),
    )
    keys.create_schema()
    return TextSealer(keys, FIELDS, monotonic=monotonic)


def test_sealed_text_is_empty_on_the_log_and_opens_with_the_key(tmp_path: Path) -> None:
    texts = sealer(tmp_path)
    event = SurveySubmitted("T-1", "slow-secret", (Answer("q1", "open-secret"), Answer("q2")))
    sealed = texts.seal(event, "C-1", texts.key_for("C-1", NOW))
    assert sealed.comment == "slow-secret" and sealed.sealed is not None  # clear in memory
    batch = CODEC.encode([sealed], CONTEXT)
    raw = batch.SerializeToString()
    assert b"secret" not in raw
    [decoded] = [item.event for item in CODEC.decode_batch(batch)]
    assert decoded.comment == "" and [a.text for a in decoded.answers] == ["", ""]
    assert texts.open(decoded) == sealed  # both texts back, in their places
    assert texts.open(sealed) is sealed  # already open: nothing read


def test_an_erased_owner_reads_empty_and_writes_nothing(tmp_path: Path) -> None:
    texts = sealer(tmp_path)
    event = SurveySubmitted("T-1", "gone-secret", (Answer("q1", "gone-too"),))
    [decoded] = [
        item.event
        for item in CODEC.decode_batch(
            CODEC.encode([texts.seal(event, "C-1", texts.key_for("C-1", NOW))], CONTEXT)
        )
    ]
    texts.destroy("C-1", NOW, "customer_request")
    texts.destroy("C-1", NOW, "customer_request")  # idempotent
    assert not texts.live("C-1") and texts.key_for("C-1", NOW) is None
    opened = texts.open(decoded)
    assert opened.comment == "" and opened.answers == (Answer("q1", ""),)
    dropped = texts.seal(event, "C-1", None)  # written after the erasure: not kept at all
    assert dropped.comment == "" and dropped.answers == (Answer("q1", ""),)
    assert dropped.sealed is None


def test_a_key_destroyed_by_another_replica_seals_only_unreadable_text(tmp_path: Path) -> None:
    """This process keeps a sealing key a while (SEALING_KEY_SECONDS) without asking the key
    store; what it seals after another replica destroyed the key can never be opened."""
    now = [0.0]
    texts = sealer(tmp_path, monotonic=lambda: now[0])
    key = texts.key_for("C-1", NOW)
    texts.keys.destroy("C-1", NOW, "customer_request")  # the other replica, same key store
    assert texts.key_for("C-1", NOW) == key  # still held here
    late = texts.seal(SurveySubmitted("T-1", "late-secret"), "C-1", key)
    [decoded] = [item.event for item in CODEC.decode_batch(CODEC.encode([late], CONTEXT))]
    assert texts.open(decoded).comment == ""
    now[0] += SEALING_KEY_SECONDS + 1
    assert texts.key_for("C-1", NOW) is None  # read again: erased


def test_keys_read_in_one_batch_scope_are_read_once(tmp_path: Path) -> None:
    texts = sealer(tmp_path)
    sealed = texts.seal(SurveySubmitted("T-1", "once"), "C-1", texts.key_for("C-1", NOW))
    [decoded] = [item.event for item in CODEC.decode_batch(CODEC.encode([sealed], CONTEXT))]
    scope = object()
    assert texts.open(decoded, scope).comment == "once"
    texts.keys.destroy("C-1", NOW, "customer_request")
    assert texts.open(decoded, scope).comment == "once"  # the same batch transaction
    assert texts.open(decoded, object()).comment == ""  # the next batch sees the erasure


def test_without_an_owner_or_text_nothing_is_sealed(tmp_path: Path) -> None:
    texts = sealer(tmp_path)
    event = SurveySubmitted("T-1", "walk-in")
    assert texts.seal(event, "", None) is event
    empty = SurveySubmitted("T-1", "")
    assert texts.seal(empty, "C-1", texts.key_for("C-1", NOW)) is empty
    assert texts.live("C-unknown")  # no key yet is no erasure


def test_a_text_sealed_for_one_owner_does_not_open_as_another(tmp_path: Path) -> None:
    texts = sealer(tmp_path)
    sealed = texts.seal(SurveySubmitted("T-1", "mine"), "C-1", texts.key_for("C-1", NOW))
    assert sealed.sealed is not None
    texts.key_for("C-2", NOW)
    moved = SurveySubmitted(
        "T-1", "", sealed=SealedText("C-2", 1, sealed.sealed.nonce, sealed.sealed.ciphertext)
    )
    before = corrupt()
    assert texts.open(moved).comment == ""  # counted, never raised: no poison
    assert corrupt() == before + 1
