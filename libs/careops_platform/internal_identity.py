"""The second wall: services believe only identities the gateway signed.

The gateway verifies the caller's credential into a Principal, then forwards it to the service
as a short-lived ES256 JWT in the `careops-identity` metadata (iss `urn:careops:gateway`, aud
`careops-services`, sub, roles, azp, iat, exp). A service verifies it with the gateway's public
key and refuses any call without a valid one; `careops-actor` is no longer believed.

Both sides cache: the signer reuses a principal's token until half its life is gone (signing per
call would cost CPU on the hot path), the verifier remembers a verified token until its `exp`.
Keys: embedded, `<data dir>/auth/internal-signing-key.pem` (created by whichever process starts
first; services read its public half); deployed, a PEM private key for the gateway and the
matching PEM public key for the services.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from careops_platform.client_metadata import (
    SyncMetadataInterceptor,
    metadata_interceptors,
)
from careops_platform.identity import (
    AuthError,
    Clock,
    Principal,
    StaticKeys,
    TokenVerifier,
    TrustedIssuer,
    VerifiedTokens,
    principal_of,
)
from careops_platform.local_issuer import load_or_create_key, public_jwk

INTERNAL_ISSUER = "urn:careops:gateway"
INTERNAL_AUDIENCE = "careops-services"
IDENTITY_METADATA = "careops-identity"
EMBEDDED_KEY_FILE = Path("auth") / "internal-signing-key.pem"
TOKEN_LIFETIME_SECONDS = 120.0
# Clock skew allowed on iat between the gateway's host and a service's.
LEEWAY_SECONDS = 30.0
CACHE_CAPACITY = 4096
# Reason classes of a refused internal call (the refusal counter's label values).
REFUSAL_REASONS = ("missing", "malformed", "unknown_key", "signature", "expired", "claims")

MetadataPairs = Sequence[tuple[str, str]]


def embedded_key_path(data_dir: Path | str) -> Path:
    """Returns where the embedded internal signing key lives in a data dir."""
    return Path(data_dir) / EMBEDDED_KEY_FILE


class InternalRefusal(Exception):
    """A call's internal identity was refused: `kind` is one of REFUSAL_REASONS."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _refusal_kind(error: AuthError) -> str:
    """Returns the reason class of a verifier's refusal, from the PyJWT error behind it."""
    cause = error.__cause__
    if isinstance(cause, jwt.ExpiredSignatureError):
        return "expired"
    if isinstance(cause, jwt.InvalidSignatureError):
        return "signature"
    if isinstance(
        cause,
        (
            jwt.InvalidAudienceError,
            jwt.InvalidIssuerError,
            jwt.MissingRequiredClaimError,
            jwt.ImmatureSignatureError,
        ),
    ):
        return "claims"
    if error.reason.startswith("unknown signing key"):
        return "unknown_key"
    return "malformed"


@dataclass(frozen=True)
class _Minted:
    token: str
    renew_at: float


class InternalSigner:
    """Mints the gateway's internal tokens, one per principal, reused until half-life."""

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        *,
        lifetime: float = TOKEN_LIFETIME_SECONDS,
        clock: Clock = time.time,
        capacity: int = CACHE_CAPACITY,
    ) -> None:
        self._key = key
        self._kid = public_jwk(key)["kid"]
        self._lifetime = lifetime
        self._clock = clock
        self._capacity = capacity
        self._cache: OrderedDict[Principal, _Minted] = OrderedDict()

    @classmethod
    def embedded(cls, data_dir: Path | str, **options: Any) -> InternalSigner:
        """Returns the signer of the data dir's key, creating the key on first use."""
        return cls(load_or_create_key(embedded_key_path(data_dir)), **options)

    def token(self, principal: Principal) -> str:
        """Returns a valid token for `principal`: the cached one while more than half its
        life is left, else a new one."""
        now = self._clock()
        minted = self._cache.get(principal)
        if minted is not None and now < minted.renew_at:
            self._cache.move_to_end(principal)
            return minted.token
        minted = _Minted(self._mint(principal, now), now + self._lifetime / 2)
        self._cache[principal] = minted
        self._cache.move_to_end(principal)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        return minted.token

    def metadata(self, principal: Principal) -> tuple[tuple[str, str]]:
        """Returns the metadata presenting `principal` to a service."""
        return ((IDENTITY_METADATA, self.token(principal)),)

    def _mint(self, principal: Principal, now: float) -> str:
        issued = int(now)
        claims = {
            "iss": INTERNAL_ISSUER,
            "aud": INTERNAL_AUDIENCE,
            "sub": principal.subject,
            "roles": sorted(principal.roles),
            "azp": principal.client_id,
            "iat": issued,
            "exp": issued + int(self._lifetime),
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self._kid})


class InternalVerifier:
    """Verifies internal tokens with the gateway's public key; a verified token is remembered
    (bounded) and accepted from memory until its `exp` by `clock`, never after."""

    def __init__(
        self,
        public_key: ec.EllipticCurvePublicKey,
        *,
        leeway: float = LEEWAY_SECONDS,
        clock: Clock = time.time,
        capacity: int = CACHE_CAPACITY,
    ) -> None:
        keys = StaticKeys({"keys": [public_jwk(public_key)]})
        trusted = TrustedIssuer(INTERNAL_ISSUER, INTERNAL_AUDIENCE, keys, leeway)
        self._tokens = TokenVerifier(trusted)
        self._clock = clock
        self._memory = VerifiedTokens(capacity=capacity, clock=clock)

    @classmethod
    def embedded(cls, data_dir: Path | str, **options: Any) -> InternalVerifier:
        """Returns the verifier of the data dir's key (created if no process has yet)."""
        key = load_or_create_key(embedded_key_path(data_dir))
        return cls(key.public_key(), **options)

    def verify(self, token: str | None) -> Principal:
        """Returns the principal of a valid internal token; raises InternalRefusal."""
        if not token:
            raise InternalRefusal("missing", f"no {IDENTITY_METADATA} metadata")
        known = self._memory.get(token)
        if known is not None:
            return known
        try:
            claims = self._tokens.claims_now(token)
            principal = principal_of(claims)
        except AuthError as error:
            raise InternalRefusal(_refusal_kind(error), error.reason) from error
        expires = float(claims["exp"])
        if self._clock() >= expires:  # by this verifier's clock, as the memory decides
            raise InternalRefusal("expired", "the token has expired")
        self._memory.put(token, principal, expires)
        return principal


def identity_interceptors(
    signer: InternalSigner, principal: Principal
) -> list[grpc.aio.ClientInterceptor]:
    """Returns grpc.aio client interceptors presenting `principal`, signed by `signer`, on
    every call (renewed as the signer renews it): how tests, benches and tools call a
    service port directly."""
    return metadata_interceptors(lambda: signer.metadata(principal))


def identity_channel(channel: grpc.Channel, signer: InternalSigner, principal: Principal) -> Any:
    """Returns the sync `channel` presenting `principal`, signed by `signer`, on every call."""
    return grpc.intercept_channel(
        channel, SyncMetadataInterceptor(lambda: signer.metadata(principal))
    )
