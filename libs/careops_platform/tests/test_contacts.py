"""E-mail syntax by email-validator; normalisation (and so every contact hash) as before."""

from __future__ import annotations

import pytest

from careops_platform.contacts import InvalidContact, normalize_email, normalize_phone


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("  Ann.Lee@Example.COM ", "ann.lee@example.com"),
        ("o'brien+vip@mail.example.co.uk", "o'brien+vip@mail.example.co.uk"),
        ("seed@example.test", "seed@example.test"),  # test domains stay usable
    ],
)
def test_valid_emails_normalise_as_before(raw: str, normalized: str) -> None:
    assert normalize_email(raw) == normalized


@pytest.mark.parametrize(
    "bad",
    [
        "ann@host.local",
        "ann@example.c1",
        "ann@1.2.3.4",
        "josé@example.com",
        "ann@exämple.com",
        "a" * 65 + "@x.com",
    ],
)
def test_undeliverable_or_non_ascii_emails_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidContact, match="is not a valid e-mail address"):
        normalize_email(bad)


def test_phones_keep_the_e164_shape_rule() -> None:
    assert normalize_phone("+1 234-567") == "+1234567"  # possible in E.164, kept accepted
    with pytest.raises(InvalidContact):
        normalize_phone("+0123456789")
