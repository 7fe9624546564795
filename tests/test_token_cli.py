"""`careops token issue` and `careops login`: tokens of the data dir's issuer, verified."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from careops_cli.main import app
from careops_platform.api_keys import ApiKeyStore
from careops_platform.identity import ADMIN, TokenVerifier
from careops_platform.local_issuer import LocalIssuer, stored_token
from typer.testing import CliRunner


def test_careops_token_issue_and_login(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    issued = runner.invoke(
        app, ["token", "issue", "--role", "agent", "--role", "oncall", "--subject", "al", *data]
    )
    assert issued.exit_code == 0, issued.output
    verifier = TokenVerifier(LocalIssuer(tmp_path).trusted())
    principal = verifier.verify_now(issued.stdout.strip())
    assert (principal.subject, principal.roles) == ("al", {"agent", "oncall"})

    logged = runner.invoke(app, ["login", *data])
    assert logged.exit_code == 0, logged.output
    stored = stored_token(tmp_path)
    assert stored is not None
    assert verifier.verify_now(stored).roles == {ADMIN}

    refused = runner.invoke(app, ["token", "issue", "--role", "root", "--subject", "x", *data])
    assert refused.exit_code == 2 and "unknown role" in refused.output


def test_careops_apikey_create_list_revoke(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    created = runner.invoke(
        app,
        ["apikey", "create", "--role", "integration", "--subject", "crm", "--name", "CRM", *data],
    )
    assert created.exit_code == 0, created.output
    value = created.stdout.strip()
    store = ApiKeyStore.of(tmp_path)
    assert store.verify(value).subject == "crm"
    (key,) = store.list()
    listed = runner.invoke(app, ["apikey", "list", *data], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and key.prefix in listed.stdout and "active" in listed.stdout
    # The secret is all after `cok_<prefix>_` (url-safe base64: it may itself hold '_').
    secret = value.removeprefix(f"cok_{key.prefix}_")
    assert len(secret) >= 40 and secret not in listed.stdout
    assert runner.invoke(app, ["apikey", "revoke", key.prefix, *data]).exit_code == 0
    assert store.list()[0].state(datetime.now(UTC)) == "revoked"
    assert runner.invoke(app, ["apikey", "revoke", "nope", *data]).exit_code == 1
