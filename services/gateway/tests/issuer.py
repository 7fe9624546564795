"""A test OIDC issuer: real ES256/RS256 keys, a JWKS served over HTTP from a thread, tokens
signed with them; and channels that present a token on every call."""

from __future__ import annotations

import functools
import json
import threading
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import jwt
from careops_platform.client_metadata import metadata_interceptors
from careops_platform.identity import ADMIN
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "careops-test"
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class TestIssuer:
    """An issuer at http://127.0.0.1:<port>/ whose JWKS lists its current keys."""

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(self, audience: str = AUDIENCE) -> None:
        self.audience = audience
        self.keys: dict[str, tuple[str, PrivateKey]] = {}
        self.fetches = 0
        self.kid = self.add_key("ES256")
        self.add_key("RS256")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = self.url + "/"
        self.jwks_url = self.url + "/jwks.json"

    def add_key(self, algorithm: str) -> str:
        """Adds a new signing key to the served set (a rotation); returns its kid."""
        key: PrivateKey = (
            ec.generate_private_key(ec.SECP256R1())
            if algorithm == "ES256"
            else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )
        kid = f"{algorithm.lower()}-{uuid.uuid4().hex[:8]}"
        self.keys[kid] = (algorithm, key)
        return kid

    def jwks(self) -> dict[str, Any]:
        """Returns the public key set as served."""
        keys = []
        for kid, (algorithm, key) in self.keys.items():
            if isinstance(key, ec.EllipticCurvePrivateKey):
                public = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            else:
                public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**public, "kid": kid, "alg": algorithm, "use": "sig"})
        return {"keys": keys}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.fetches += 1
                body = json.dumps(issuer.jwks()).encode()
                self.send_response(200 if self.path == "/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def token(
        self,
        subject: str = "tester",
        roles: Iterable[str] = (ADMIN,),
        *,
        kid: str | None = None,
        ttl: timedelta = timedelta(hours=1),
        now: datetime | None = None,
        **claims: Any,
    ) -> str:
        """Returns a token signed by key `kid` (default the first); `claims` override or, set
        to None, remove the standard ones."""
        kid = kid or self.kid
        algorithm, key = self.keys[kid]
        issued = now or datetime.now(UTC)
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "roles": sorted(roles),
            "azp": "test-client",
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl,
        }
        payload.update(claims)
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})

    def settings(self) -> dict[str, Any]:
        """Returns the gateway settings that trust this issuer."""
        return {
            "auth_issuer": self.issuer,
            "auth_jwks_url": self.jwks_url,
            "auth_audience": self.audience,
            "auth_jwks_refresh_cooldown_seconds": 0,
        }

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@functools.cache
def shared_issuer() -> TestIssuer:
    """Returns the issuer the gateway fixtures trust, started on first use."""
    return TestIssuer()


def bearer(token: str) -> tuple[tuple[str, str]]:
    """Returns the metadata presenting `token`."""
    return (("authorization", f"Bearer {token}"),)


def authorized_channel(address: str, token: str | None = None) -> grpc.aio.Channel:
    """Returns an insecure channel presenting `token` (default: an admin token of the shared
    issuer) on every call."""
    presented = bearer(token or shared_issuer().token())
    return grpc.aio.insecure_channel(address, interceptors=metadata_interceptors(lambda: presented))
