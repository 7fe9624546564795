"""`careops token issue` and `careops login`: tokens from the embedded issuer (the data dir's
signing key, the one the gateway trusts when no external issuer is configured)."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from careops_platform.identity import ADMIN, ROLES
from careops_platform.local_issuer import LocalIssuer, parse_ttl, store_token

from careops_cli.client import console

token_app = typer.Typer(help="Tokens of the embedded issuer.", no_args_is_help=True)

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
