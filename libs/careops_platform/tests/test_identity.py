"""The verifier's pieces and the embedded issuer: header parsing, roles, lifetimes, the key
file and the stored token (modes 0600)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jwt import PyJWK

from careops_platform.errors import Unauthenticated
from careops_platform.identity import (
    ADMIN,
    AGENT,
    ROLES,
    AuthError,
    Principal,
    StaticKeys,
    TokenVerifier,
    TrustedIssuer,
    VerifiedTokens,
    bearer_token,
    caller,
    principal_of,
    run_as,
)
from careops_platform.local_issuer import (
    KEY_FILE,
    TOKEN_FILE,
    LocalIssuer,
    parse_ttl,
    store_token,
    stored_token,
)


def test_the_six_roles() -> None:
    assert sorted(ROLES) == [
        "admin",
        "agent",
        "integration",
        "oncall",
        "senior_agent",
        "supervisor",
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "no credentials"),
        ("", "no credentials"),
        ("Bearer", "not 'Bearer <token>'"),
        ("Token abc", "not 'Bearer <token>'"),
    ],
)
def test_a_bad_authorization_value_is_refused_with_a_reason(value: str | None, reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        bearer_token(value)


def test_bearer_token_takes_any_case_of_the_scheme() -> None:
    assert bearer_token("bearer abc.def.ghi ") == "abc.def.ghi"


def test_principal_keeps_the_platform_roles_and_the_client() -> None:
    claims = {"sub": "ann", "roles": ["agent", "idp:reader"], "client_id": "web"}
    assert principal_of(claims) == Principal("ann", frozenset({AGENT}), "web")
    assert principal_of({"sub": "bo", "roles": "agent oncall"}).roles == {"agent", "oncall"}
    with pytest.raises(AuthError, match="not a list"):
        principal_of({"sub": "cy", "roles": {"agent": True}})


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("8h", 28800), ("1d", 86400), ("90", 90)]
)
def test_parse_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0m", "2d", "15 minutes", "-5m"])
def test_a_bad_ttl_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ttl(text)


def test_the_key_is_created_once_owner_only_and_keeps_its_kid(tmp_path: Path) -> None:
    first = LocalIssuer(tmp_path).jwks()
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / KEY_FILE).parent.stat().st_mode) == 0o700
    assert LocalIssuer(tmp_path).jwks() == first
    assert LocalIssuer(tmp_path / "other").jwks()["keys"][0]["kid"] != first["keys"][0]["kid"]


async def test_a_local_token_verifies_and_expires(tmp_path: Path) -> None:
    issuer = LocalIssuer(tmp_path)
    verifier = TokenVerifier(issuer.trusted(leeway=0))
    token = issuer.issue(subject="ops", roles=[ADMIN, AGENT])
    assert await verifier.verify(token) == Principal(
        "ops", frozenset({ADMIN, AGENT}), "careops-cli"
    )
    old = issuer.issue(subject="ops", roles=[ADMIN], now=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(AuthError, match="expired"):
        await verifier.verify(old)
    with pytest.raises(ValueError, match="unknown role"):
        issuer.issue(subject="ops", roles=["root"])


def test_the_stored_token_is_owner_only(tmp_path: Path) -> None:
    assert stored_token(tmp_path) is None
    path = store_token(tmp_path, "abc")
    assert path == tmp_path / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stored_token(tmp_path) == "abc"


def test_a_service_edge_without_a_verified_caller_refuses_unauthenticated() -> None:
    with pytest.raises(Unauthenticated):
        caller()
    restore = run_as(Principal("agent-wang", frozenset({"agent"})))
    try:
        assert caller().subject == "agent-wang"
    finally:
        restore()


class Now:
    """A clock in epoch seconds that moves only when told."""

    def __init__(self) -> None:
        self.value = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.value


class CountingKeys:
    """A key source that counts how often a signature had to be checked against it."""

    blocking = False

    def __init__(self, keys: StaticKeys) -> None:
        self._keys = keys
        self.lookups = 0

    def key(self, kid: str) -> PyJWK:
        self.lookups += 1
        return self._keys.key(kid)


def remembering_verifier(
    tmp_path: Path, memory: VerifiedTokens
) -> tuple[LocalIssuer, TokenVerifier, CountingKeys]:
    issuer = LocalIssuer(tmp_path)
    keys = CountingKeys(StaticKeys(issuer.jwks()))
    trusted = TrustedIssuer(issuer.trusted().issuer, issuer.audience, keys)
    return issuer, TokenVerifier(trusted, memory), keys


async def test_a_verified_token_is_answered_from_memory_until_it_expires(tmp_path: Path) -> None:
    clock = Now()
    memory = VerifiedTokens(clock=clock)
    issuer, verifier, keys = remembering_verifier(tmp_path, memory)
    token = issuer.issue(subject="agent-wang", roles=[AGENT], ttl=timedelta(minutes=5))
    first = await verifier.verify(token)
    assert await verifier.verify(token) == first and keys.lookups == 1
    clock.value += 299
    assert memory.get(token) == first
    clock.value += 1  # at its exp by the memory's clock: checked again (jwt's clock is real)
    assert memory.get(token) is None
    await verifier.verify(token)
    assert keys.lookups == 2


async def test_memory_is_bounded_by_age_and_size_and_never_holds_a_refusal(
    tmp_path: Path,
) -> None:
    clock = Now()
    memory = VerifiedTokens(capacity=2, max_age=60, clock=clock)
    issuer, verifier, keys = remembering_verifier(tmp_path, memory)
    tokens = [issuer.issue(subject=f"agent-{n}", roles=[AGENT]) for n in range(3)]
    for token in tokens:
        await verifier.verify(token)
    assert memory.get(tokens[0]) is None  # the least recently used of three, capacity two
    assert memory.get(tokens[2]) is not None
    clock.value += 60
    assert memory.get(tokens[2]) is None  # older than max_age, although its exp is later
    forged = tokens[1][:-4] + ("AAAA" if not tokens[1].endswith("AAAA") else "BBBB")
    for _ in range(2):
        with pytest.raises(AuthError):
            await verifier.verify(forged)
    assert memory.get(forged) is None
