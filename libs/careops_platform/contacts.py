"""Contact lookup without plaintext: normalised e-mail / phone -> keyed hash; service secrets.

Customer-profile puts the keyed hash of each contact on its events; ticketing hashes the
contact of a new ticket with the same key and finds the customer in its own projection. The
key is shared configuration (CAREOPS_CONTACT_HASH_KEY), never on the log.

E-mail syntax is email-validator's (RFC 5321/5322, no DNS). Phone numbers keep their own E.164
shape rule on purpose: phonenumbers would reject numbers accepted (and hashed onto the log) since
the start, so customers registered with them could no longer be found.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

SECRET_BYTES = 32
CONTACT_HASH_KEY_ENV = "CAREOPS_CONTACT_HASH_KEY"
CONTACT_HASH_KEY_FILE = "contact-hash.key"
PHONE_SEPARATORS = re.compile(r"[\s().-]")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class InvalidContact(ValueError):
    """The e-mail address or phone number is malformed; the message says why."""


def normalize_email(value: str) -> str:
    """Returns the e-mail trimmed and lower-cased; raises InvalidContact when malformed."""
    email = value.strip()
    try:
        if not email.isascii():  # ASCII addresses only (domains too), as accepted so far
            raise EmailNotValidError("only ASCII characters are accepted")
        checked = validate_email(
            email,
            check_deliverability=False,  # syntax only: no DNS on the request path
            strict=True,  # at most 64 characters before the @, as so far
            test_environment=True,  # permits @….test addresses, as accepted so far
        )
    except EmailNotValidError as exc:
        raise InvalidContact(f"is not a valid e-mail address (name@example.com): {exc}") from None
    return checked.normalized.lower()


def normalize_phone(value: str) -> str:
    """Returns the phone number as E.164 (+ and 7-15 digits); raises InvalidContact."""
    phone = PHONE_SEPARATORS.sub("", value.strip())
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    if not E164.match(phone):
        raise InvalidContact(
            "is not a phone number in international format (+ country code and number, "
            "e.g. +8613800138000)"
        )
    return phone


def contact_hash(key: bytes, kind: str, normalized: str) -> str:
    """Returns HMAC-SHA256(key, kind:value) in hex; `kind` is "email" or "phone"."""
    return hmac.new(key, f"{kind}:{normalized}".encode(), hashlib.sha256).hexdigest()


def decode_secret(value: str, name: str) -> bytes:
    """Decodes a base64 secret of exactly 32 bytes; raises ValueError naming the variable."""
    try:
        text = value.strip()
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} is not base64") from None
    if len(raw) != SECRET_BYTES:
        raise ValueError(f"{name} must decode to {SECRET_BYTES} bytes, got {len(raw)}")
    return raw


def load_secret(configured: str, data_dir: str, filename: str, name: str) -> bytes:
    """Returns the configured secret, or the one in `data_dir/filename`, created on first use.

    The embedded default (`make run`) has no secret configured: the first process to start
    generates one into the data directory (mode 0600, atomically, so two services starting
    together agree on it). Deployments configure it (a Kubernetes Secret).
    """
    if configured:
        return decode_secret(configured, name)
    directory = Path(data_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    if not path.exists():
        staging = directory / f".{filename}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(staging, path)
        except FileExistsError:
            pass
        finally:
            staging.unlink()
    return decode_secret(path.read_text().strip(), str(path))


def contact_digest(key: bytes, kind: str, value: str) -> str:
    """Normalises an e-mail ("email") or phone ("phone") and returns its keyed hash."""
    normalize = normalize_email if kind == "email" else normalize_phone
    return contact_hash(key, kind, normalize(value))
