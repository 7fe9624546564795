"""`careops token issue` and `careops login`: tokens from the embedded issuer (the data dir's
signing key, the one the gateway trusts when no external issuer is configured); `careops apikey
…`: the data dir's API keys for machine clients."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from careops_platform.api_keys import ApiKeyStore
from careops_platform.identity import ADMIN, ROLES
from careops_platform.local_issuer import LocalIssuer, parse_ttl, store_token
from rich.table import Table

from careops_cli.client import console

token_app = typer.Typer(help="Tokens of the embedded issuer.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys of machine clients.", no_args_is_help=True)
# An API key outlives a token, but not forever unless asked: at most a year.
MAX_API_KEY_TTL = timedelta(days=366)

DataDirOption = Annotated[
    Path,
    typer.Option(envvar="CAREOPS_DATA_DIR", help="The data dir holding the signing key."),
]
RolesOption = Annotated[
    list[str], typer.Option("--role", help=f"A role ({', '.join(sorted(ROLES))}); repeatable.")
]


def _mint(data_dir: Path, subject: str, roles: list[str], ttl: str, client_id: str) -> str:
    """Returns a token, or exits 2 naming the bad option."""
    try:
        return LocalIssuer(data_dir).issue(
            subject=subject, roles=roles, ttl=parse_ttl(ttl), client_id=client_id
        )
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


@token_app.command("issue")
def token_issue(
    role: RolesOption,
    subject: Annotated[str, typer.Option(help="Who the token speaks for (`sub`).")],
    ttl: Annotated[str, typer.Option(help="Lifetime: 30s, 15m, 8h (at most 1d).")] = "15m",
    client_id: Annotated[str, typer.Option(help="The client (`azp`).")] = "careops-cli",
    data_dir: DataDirOption = Path("var"),
) -> None:
    """Print a signed token on stdout, for scripts and `authorization: Bearer …`."""
    print(_mint(data_dir, subject, role, ttl, client_id))


def default_subject() -> str:
    """Returns the local operator's subject: `operator:<login name>`."""
    try:
        return f"operator:{getpass.getuser()}"
    except (KeyError, OSError):
        return "operator:local"


def login(
    role: Annotated[
        list[str] | None, typer.Option("--role", help="A role; repeatable. Default: admin.")
    ] = None,
    subject: Annotated[str, typer.Option(help="Default: operator:<login name>.")] = "",
    ttl: Annotated[str, typer.Option(help="Lifetime (at most 1d).")] = "8h",
    data_dir: DataDirOption = Path("var"),
) -> None:
    """Store a token for this machine's operator in the data dir (mode 0600)."""
    roles = role or [ADMIN]
    who = subject or default_subject()
    path = store_token(data_dir, _mint(data_dir, who, roles, ttl, "careops-cli"))
    console.print(f"logged in as [bold]{who}[/] ({', '.join(sorted(roles))}); token in {path}")


@apikey_app.command("create")
def apikey_create(
    role: RolesOption,
    subject: Annotated[str, typer.Option(help="The machine client the key speaks for.")],
    ttl: Annotated[str, typer.Option(help="Lifetime (e.g. 90d); empty: no expiry.")] = "90d",
    name: Annotated[str, typer.Option(help="A label for the list.")] = "",
    data_dir: DataDirOption = Path("var"),
) -> None:
    """Print a new API key on stdout (shown once; only its hash is kept)."""
    try:
        lifetime = parse_ttl(ttl, MAX_API_KEY_TTL) if ttl else None
        value, _ = ApiKeyStore.of(data_dir).create(
            subject=subject, roles=role, ttl=lifetime, name=name
        )
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    print(value)


@apikey_app.command("list")
def apikey_list(data_dir: DataDirOption = Path("var")) -> None:
    """List the API keys (prefix, subject, roles, state, expiry); never their secrets."""
    now = datetime.now(UTC)
    table = Table("prefix", "name", "subject", "roles", "state", "expires")
    for key in ApiKeyStore.of(data_dir).list():
        table.add_row(
            key.prefix,
            key.name,
            key.subject,
            ",".join(key.roles),
            key.state(now),
            key.expires_at or "never",
        )
    console.print(table)


@apikey_app.command("revoke")
def apikey_revoke(prefix: str, data_dir: DataDirOption = Path("var")) -> None:
    """Revoke the API key with PREFIX: refused from its next call on."""
    try:
        ApiKeyStore.of(data_dir).revoke(prefix)
    except KeyError:
        console.print(f"[red]no API key {prefix}[/]")
        raise typer.Exit(1) from None
    console.print(f"revoked {prefix}")
