"""Gateway settings: contract defaults, and bad values stop the process naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from careops_platform.settings import load_settings
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.main import GatewaySettings


def test_defaults_are_the_contract_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TICKETING", "CUSTOMER", "INCIDENT", "QUALITY"):
        monkeypatch.delenv(f"CAREOPS_{name}_ADDR", raising=False)
    for name in ("GRPC", "HTTP", "METRICS"):
        monkeypatch.delenv(f"CAREOPS_GATEWAY_{name}_PORT", raising=False)
    settings = load_settings(GatewaySettings)
    assert (settings.grpc_port, settings.http_port, settings.metrics_port) == (50050, 8080, 9105)
    assert [(b.name, b.address) for b in settings.backends()] == [
        ("ticketing", "127.0.0.1:50051"),
        ("customer", "127.0.0.1:50052"),
        ("incident", "127.0.0.1:50053"),
        ("quality", "127.0.0.1:50054"),
    ]


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREOPS_GATEWAY_HTTP_PORT", "18080")
    monkeypatch.setenv("CAREOPS_INCIDENT_ADDR", "careops-incident-crisis:50053")
    monkeypatch.setenv("CAREOPS_QUALITY_ADDR", "[::1]:50054")
    settings = load_settings(GatewaySettings)
    assert settings.http_port == 18080
    assert settings.incident_addr == "careops-incident-crisis:50053"
    assert settings.quality_addr == "[::1]:50054"


def test_cors_origins_are_none_by_default_and_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CAREOPS_CORS_ALLOWED_ORIGINS", raising=False)
    assert load_settings(GatewaySettings).cors_allowed_origins == ()
    monkeypatch.setenv(
        "CAREOPS_CORS_ALLOWED_ORIGINS", "https://app.example, http://localhost:5173,"
    )
    assert load_settings(GatewaySettings).cors_allowed_origins == (
        "https://app.example",
        "http://localhost:5173",
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CAREOPS_TICKETING_ADDR", "localhost"),
        ("CAREOPS_CUSTOMER_ADDR", "http://customer:50052"),
        ("CAREOPS_GATEWAY_HTTP_PORT", "70000"),
        ("CAREOPS_GATEWAY_GRPC_PORT", "grpc"),
        # An issuer without its JWKS URL, a JWKS URL that is not HTTP(S), a negative leeway.
        ("CAREOPS_AUTH_ISSUER", "https://idp.example/"),
        ("CAREOPS_AUTH_JWKS_URL", "ftp://idp.example/jwks"),
        ("CAREOPS_AUTH_LEEWAY_SECONDS", "-1"),
        # A negative rate, an empty burst, a request limit above gRPC's own receive limit.
        ("CAREOPS_RATE_LIMIT_PER_SECOND", "-1"),
        ("CAREOPS_RATE_LIMIT_BURST", "0"),
        ("CAREOPS_MAX_REQUEST_BYTES", "8388608"),
        ("CAREOPS_CORS_ALLOWED_ORIGINS", "https://app.example/"),
        ("CAREOPS_CORS_ALLOWED_ORIGINS", "https://app.example, app.example"),
        ("CAREOPS_CORS_ALLOWED_ORIGINS", "*"),
        # The internal identity's signing key, missing.
        ("CAREOPS_INTERNAL_SIGNING_KEY_FILE", "/nonexistent/signing-key.pem"),
        # The console: a user without a role, an unknown role, a session of no length, an
        # OIDC client without its endpoints.
        ("CAREOPS_CONSOLE_USERS", "agent-li"),
        ("CAREOPS_CONSOLE_USERS", "agent-li:agent,mallory:wizard"),
        ("CAREOPS_CONSOLE_SESSION_MINUTES", "0"),
        ("CAREOPS_CONSOLE_OIDC_CLIENT_ID", "careops-console"),
        ("CAREOPS_CONSOLE_OIDC_TOKEN_URL", "https://idp.example/token"),
    ],
)
def test_bad_values_stop_the_process_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as stopped:
        load_settings(GatewaySettings)
    assert stopped.value.code == 2
    assert variable in capsys.readouterr().err


def test_a_public_key_as_the_signing_key_stops_the_gateway_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    public = tmp_path / "verify-key.pem"
    public.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    monkeypatch.setenv("CAREOPS_INTERNAL_SIGNING_KEY_FILE", str(public))
    with pytest.raises(SystemExit):
        load_settings(GatewaySettings)
    error = capsys.readouterr().err
    assert "CAREOPS_INTERNAL_SIGNING_KEY_FILE" in error and str(public) in error


def test_console_users_are_for_the_embedded_issuer_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAREOPS_CONSOLE_USERS", "agent-li:agent, agent-zhang:agent+senior_agent")
    console = load_settings(GatewaySettings).console(issuer=None)
    assert console.sign_in == "none"  # no embedded issuer: no sign-in page
    monkeypatch.setenv("CAREOPS_AUTH_ISSUER", "https://idp.example/")
    monkeypatch.setenv("CAREOPS_AUTH_JWKS_URL", "https://idp.example/jwks")
    with pytest.raises(SystemExit):
        load_settings(GatewaySettings)
    assert "CAREOPS_CONSOLE_USERS is for the embedded issuer only" in capsys.readouterr().err
