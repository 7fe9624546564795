"""The embedded default issuer: the platform signs its own short-lived tokens.

An ES256 key is created in the data dir on first use (`auth/signing-key.pem`, mode 0600); the
gateway trusts it when no external issuer is configured and serves its public half as a JWKS.
`careops token issue` and `careops login` mint tokens with it; `login` keeps its token in
`auth/token` (mode 0600), where the CLI finds it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from careops_platform.identity import ROLES, StaticKeys, TrustedIssuer, unknown_roles

LOCAL_ISSUER = "urn:careops:local"
DEFAULT_AUDIENCE = "careops"
DEFAULT_CLIENT = "careops-cli"
KEY_FILE = Path("auth") / "signing-key.pem"
TOKEN_FILE = Path("auth") / "token"
MAX_TTL = timedelta(days=1)
_TTL = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str, maximum: timedelta = MAX_TTL) -> timedelta:
    """Returns the duration of `30s`, `15m`, `8h`, `1d` (bare numbers are seconds), at most
    `maximum` (a day by default: local tokens are meant to be short-lived)."""
    match = _TTL.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 8h)")
    ttl = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if not timedelta(0) < ttl <= maximum:
        raise ValueError(f"a lifetime must be more than 0 and at most {maximum}")
    return ttl


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> dict[str, str]:
    """Returns the public JWK of a P-256 key (either half), its `kid` the RFC 7638 thumbprint
    (so a new key has a new kid, and the same key always the same)."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    numbers = public.public_numbers()
    jwk = {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    return {**jwk, "kid": _b64(hashlib.sha256(canonical).digest()), "alg": "ES256", "use": "sig"}


def write_private(path: Path, data: bytes) -> None:
    """Writes `data` to `path` readable by the owner only (0600 from creation on, never
    wider), replacing it atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Returns the P-256 signing key at `path`, creating it on first use. Two processes
    starting at once agree on one key: the first link wins and the other reads it."""
    if not path.exists():
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        candidate = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        write_private(candidate, pem)
        with contextlib.suppress(FileExistsError):
            os.link(candidate, path)
        candidate.unlink()
    return load_private_key(path)


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Returns the unencrypted PEM P-256 private key at `path`; ValueError naming the file
    when it is unreadable or not one."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(f"{path} is not a P-256 (ES256) private key")
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """Returns the PEM P-256 public key at `path`; ValueError naming the file when it is
    unreadable or not one."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable PEM public key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError(f"{path} is not a P-256 (ES256) public key")
    return key


class LocalIssuer:
    """Mints and trusts tokens signed by the data dir's key."""

    def __init__(self, data_dir: Path | str, audience: str = DEFAULT_AUDIENCE) -> None:
        self.data_dir = Path(data_dir)
        self.audience = audience
        self._key: ec.EllipticCurvePrivateKey | None = None

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            self._key = load_or_create_key(self.data_dir / KEY_FILE)
        return self._key

    def jwks(self) -> dict[str, Any]:
        """Returns the public key set served at /.well-known/jwks.json."""
        return {"keys": [public_jwk(self.key)]}

    def trusted(self, leeway: float = 30.0) -> TrustedIssuer:
        """Returns this issuer as the one a verifier trusts."""
        return TrustedIssuer(LOCAL_ISSUER, self.audience, StaticKeys(self.jwks()), leeway)

    def issue(
        self,
        *,
        subject: str,
        roles: Iterable[str],
        ttl: timedelta = timedelta(minutes=15),
        client_id: str = DEFAULT_CLIENT,
        now: datetime | None = None,
    ) -> str:
        """Returns a signed token for `subject` with `roles`, valid for `ttl` from `now`."""
        roles = sorted(set(roles))
        unknown = unknown_roles(roles)
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}; roles are {sorted(ROLES)}")
        if not subject.strip():
            raise ValueError("the subject must not be empty")
        issued = now or datetime.now(UTC)
        claims = {
            "iss": LOCAL_ISSUER,
            "aud": self.audience,
            "sub": subject,
            "roles": roles,
            "azp": client_id,
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl,
            "jti": uuid.uuid4().hex,
        }
        kid = public_jwk(self.key)["kid"]
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": kid})


def store_token(data_dir: Path | str, token: str) -> Path:
    """Keeps `token` where the CLI finds it (mode 0600); returns its path."""
    path = Path(data_dir) / TOKEN_FILE
    write_private(path, (token + "\n").encode())
    return path


def stored_token(data_dir: Path | str) -> str | None:
    """Returns the token `careops login` stored, None if there is none."""
    path = Path(data_dir) / TOKEN_FILE
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
