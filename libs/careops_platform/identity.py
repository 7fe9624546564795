"""Who is calling: the verified Principal, the roles, and the bearer-JWT verifier.

A token is accepted only if it is signed RS256 or ES256 by a key of the trusted issuer (found by
its `kid` in the issuer's JWKS, cached and refreshed when an unknown `kid` appears), names the
configured issuer and audience, and is within `exp`/`nbf`/`iat` give or take a small leeway.
Every refusal is an `AuthError` whose message says why.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from careops_platform.errors import Unauthenticated

AGENT = "agent"
SENIOR_AGENT = "senior_agent"
SUPERVISOR = "supervisor"
ONCALL = "oncall"
ADMIN = "admin"
INTEGRATION = "integration"
ROLES = frozenset({AGENT, SENIOR_AGENT, SUPERVISOR, ONCALL, ADMIN, INTEGRATION})

# Asymmetric only: an HS256 token could be forged with a public key used as an HMAC secret.
ALGORITHMS = ("RS256", "ES256")
ROLES_CLAIM = "roles"
# The claims a token must carry; `sub` names the caller, `iat` dates the token.
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")


@dataclass(frozen=True)
class Principal:
    """The verified caller: who (`subject`), with which roles, through which client."""

    subject: str
    roles: frozenset[str]
    client_id: str = ""


PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "careops_principal", default=None
)


def current_principal() -> Principal | None:
    """Returns the principal of the call being served, None outside an authenticated call."""
    return PRINCIPAL.get()


def caller() -> Principal:
    """Returns the principal a service's gRPC edge passes to its application for the data rules
    (docs/permissions.md): the one place every service reads its caller. Every call reaching a
    service carries the gateway-verified identity (interceptors.InternalIdentityInterceptor);
    a call without one is refused UNAUTHENTICATED here too, never served as nobody."""
    principal = PRINCIPAL.get()
    if principal is None:
        raise Unauthenticated("the call carries no verified identity")
    return principal


class AuthError(Exception):
    """A credential was refused; the message is the reason given to the caller.

    `unavailable` marks a failure that is not the caller's: the issuer's keys could not be read.
    """

    def __init__(self, reason: str, *, unavailable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unavailable = unavailable


def bearer_token(authorization: str | None) -> str:
    """Returns the token of an `authorization: Bearer <token>` value."""
    if not authorization:
        raise AuthError("no credentials: send 'authorization: Bearer <token>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("the authorization header is not 'Bearer <token>'")
    return token.strip()


class KeySource(Protocol):
    """Where the issuer's public keys come from."""

    blocking: bool

    def key(self, kid: str) -> PyJWK:
        """Returns the key with `kid`; raises AuthError if there is none."""
        ...


class StaticKeys:
    """A fixed key set (the embedded issuer's own): no I/O."""

    blocking = False

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = {key.key_id: key for key in PyJWKSet.from_dict(dict(jwks)).keys}

    def key(self, kid: str) -> PyJWK:
        found = self._keys.get(kid)
        if found is None:
            raise AuthError(f"unknown signing key {kid!r}")
        return found


class JwksKeys:
    """An issuer's JWKS URL, through PyJWKClient: the set is cached for `lifespan` seconds and
    fetched again when a token names a `kid` it lacks (key rotation), at most once per
    `cooldown` seconds so unknown kids cannot make the gateway hammer the issuer."""

    blocking = True

    def __init__(
        self, url: str, *, lifespan: float = 300, cooldown: float = 30, timeout: float = 5
    ) -> None:
        self._client = PyJWKClient(
            url, lifespan=lifespan, cooldown_duration=cooldown, timeout=timeout
        )
        self._url = url

    def key(self, kid: str) -> PyJWK:
        try:
            return self._client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthError(
                f"cannot read the issuer's keys at {self._url}: {exc}", unavailable=True
            ) from exc
        except jwt.PyJWKClientError as exc:
            raise AuthError(f"unknown signing key {kid!r}") from exc
        except jwt.PyJWKSetError as exc:
            raise AuthError(f"the issuer's key set is unusable: {exc}", unavailable=True) from exc


@dataclass(frozen=True)
class TrustedIssuer:
    """What a token must name and be signed by."""

    issuer: str
    audience: str
    keys: KeySource
    leeway: float = 30.0
    roles_claim: str = ROLES_CLAIM


Clock = Callable[[], float]
# Verified tokens remembered at once: a gateway's or service's working set of callers.
TOKEN_MEMORY_CAPACITY = 4096


@dataclass(frozen=True)
class _Remembered:
    principal: Principal
    until: float


class VerifiedTokens:
    """A bounded memory of verified tokens (least recently used forgotten first): a token is
    answered from it until its `exp` by `clock`, never after, and no longer than `max_age`
    after it was verified (so a key the issuer withdraws stops being honoured as its key set
    is re-read). Verifying a signature costs ~0.1 ms; a lookup, a microsecond."""

    def __init__(
        self,
        *,
        capacity: int = TOKEN_MEMORY_CAPACITY,
        max_age: float = float("inf"),
        clock: Clock = time.time,
    ) -> None:
        self._entries: OrderedDict[str, _Remembered] = OrderedDict()
        self._capacity = capacity
        self._max_age = max_age
        self.clock = clock

    def get(self, token: str) -> Principal | None:
        """Returns the principal of a remembered, unexpired token; None otherwise."""
        known = self._entries.get(token)
        if known is None:
            return None
        if self.clock() >= known.until:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return known.principal

    def put(self, token: str, principal: Principal, expires: float) -> None:
        """Remembers a verified token until `expires` (its `exp`) or `max_age` from now."""
        until = min(expires, self.clock() + self._max_age)
        if self.clock() >= until:
            return
        self._entries[token] = _Remembered(principal, until)
        self._entries.move_to_end(token)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)


class TokenVerifier:
    """Verifies bearer JWTs of one trusted issuer into Principals; with `memory`, a token
    verified once is answered from it until it expires."""

    def __init__(self, trusted: TrustedIssuer, memory: VerifiedTokens | None = None) -> None:
        self.trusted = trusted
        self._memory = memory

    async def verify(self, token: str) -> Principal:
        """Returns the principal of a valid token; raises AuthError with the reason otherwise.
        A key source that does network I/O runs in a thread, off the event loop."""
        if self._memory is not None:
            known = self._memory.get(token)
            if known is not None:
                return known
        if self.trusted.keys.blocking:
            claims = await asyncio.to_thread(self.claims_now, token)
        else:
            claims = self.claims_now(token)
        principal = principal_of(claims, self.trusted.roles_claim)
        if self._memory is not None:
            self._memory.put(token, principal, float(claims["exp"]))
        return principal

    def verify_now(self, token: str) -> Principal:
        """Returns the principal of a valid token, blocking on the key source if it must."""
        return principal_of(self.claims_now(token), self.trusted.roles_claim)

    def claims_now(self, token: str) -> dict[str, Any]:
        """Returns the verified claims of a valid token; raises AuthError with the reason."""
        return self._claims(token, self.trusted.keys.key(signing_kid(token)))

    def _claims(self, token: str, key: PyJWK) -> dict[str, Any]:
        if key.algorithm_name not in ALGORITHMS:
            raise AuthError(f"the signing key's algorithm {key.algorithm_name} is not allowed")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                audience=self.trusted.audience,
                issuer=self.trusted.issuer,
                leeway=self.trusted.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthError("the token is not valid yet (nbf/iat in the future)") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError(f"the token's issuer is not {self.trusted.issuer!r}") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError(f"the token's audience is not {self.trusted.audience!r}") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"the token lacks the {exc.claim!r} claim") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthError("the token's signature does not verify") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise AuthError("the token's algorithm does not match its signing key") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        return claims


def signing_kid(token: str) -> str:
    """Returns the `kid` of a token whose header names an allowed algorithm."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"the credential is not a JWT: {exc}") from exc
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise AuthError(f"algorithm {algorithm!r} is not allowed (only {', '.join(ALGORITHMS)})")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise AuthError("the token's header has no 'kid'")
    return kid


def principal_of(claims: Mapping[str, Any], roles_claim: str = ROLES_CLAIM) -> Principal:
    """Returns the principal of verified claims. Roles outside the platform's six are dropped
    (an IdP may carry its own); `client_id` is `azp` or `client_id` when present."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthError("the token's 'sub' is empty")
    raw = claims.get(roles_claim, [])
    if isinstance(raw, str):
        raw = raw.split()
    if not isinstance(raw, list) or not all(isinstance(role, str) for role in raw):
        raise AuthError(f"the token's {roles_claim!r} claim is not a list of role names")
    client = claims.get("azp") or claims.get("client_id") or ""
    return Principal(subject, frozenset(raw) & ROLES, str(client))


def unknown_roles(roles: Iterable[str]) -> list[str]:
    """Returns the names in `roles` that are not platform roles, sorted."""
    return sorted(set(roles) - ROLES)


def run_as(principal: Principal) -> Callable[[], None]:
    """Makes `principal` the current one; returns the function that restores the previous."""
    token = PRINCIPAL.set(principal)
    return lambda: PRINCIPAL.reset(token)
