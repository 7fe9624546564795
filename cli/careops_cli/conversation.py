"""The agent's desk in the CLI: a ticket's conversation (GetConversation, every page) and the
macros (`careops macro put|list|delete`), through the gateway like every command."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc, types_pb2
from rich.table import Table
from rich.text import Text

from careops_cli.client import call, channel, console, print_message

macro_app = typer.Typer(
    help="Prepared answers with placeholders (supervisors manage them).", no_args_is_help=True
)

PAGE = 200


def conversation(
    stub: ticketing_pb2_grpc.TicketingServiceStub, ticket_id: str, min_sequence: int = 0
) -> list[pb.ConversationMessage]:
    """Returns every entry of the ticket's conversation, oldest first (all pages), as of at
    least `min_sequence`."""
    messages: list[pb.ConversationMessage] = []
    token = ""
    while True:
        request = pb.GetConversationRequest(
            ticket_id=ticket_id, page_size=PAGE, page_token=token, min_sequence=min_sequence
        )
        page = call(stub.GetConversation, request)
        messages.extend(page.messages)
        token = page.next_page_token
        if not token:
            return messages


def _who(message: pb.ConversationMessage) -> str:
    """The entry's author as an agent reads it: `customer C-1`, `agent ag-1`, or the actor."""
    if message.author == types_pb2.AUTHOR_UNSPECIFIED:
        return message.author_id or "-"
    role = types_pb2.Author.Name(message.author).removeprefix("AUTHOR_").lower()
    return f"{role} {message.author_id}".strip()


def conversation_table(messages: list[pb.ConversationMessage]) -> Table:
    """Returns the conversation as a table: time, what, who, channel, text (notes marked)."""
    table = Table("at", "kind", "who", "channel", "text", title="conversation")
    for message in messages:
        kind = message.kind
        if message.visibility == pb.VISIBILITY_INTERNAL:
            kind += " (internal)"
        text = f"{message.subject}\n{message.body}" if message.subject else message.body
        if message.macro_id:
            text += f"\n[macro {message.macro_id} v{message.macro_version}]"
        channel_name = (
            types_pb2.Channel.Name(message.channel).removeprefix("CHANNEL_").lower()
            if message.channel
            else "-"
        )
        at = message.at.ToDatetime().isoformat(timespec="seconds") + "Z"
        # Text cells, not markup: what people wrote is printed as written ("[x]" included).
        table.add_row(at, kind, Text(_who(message)), channel_name, Text(text))
    return table


def print_conversation(
    stub: ticketing_pb2_grpc.TicketingServiceStub, ticket_id: str, min_sequence: int = 0
) -> None:
    """Prints the ticket's conversation (`careops ticket show`: as of the ticket's version)."""
    console.print(conversation_table(conversation(stub, ticket_id, min_sequence)))


def _stub(opened: Any) -> ticketing_pb2_grpc.TicketingServiceStub:
    return ticketing_pb2_grpc.TicketingServiceStub(opened)


@macro_app.command("put")
def macro_put(
    macro_id: str,
    title: Annotated[str, typer.Option(help="What the answer is for.")],
    body: Annotated[
        str,
        typer.Option(help="Text; placeholders {customer_name} {agent_name} {ticket_id} {product}"),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the response as JSON.")] = False,
    key: Annotated[str, typer.Option("--idempotency-key", help="Safe to retry.")] = "",
) -> None:
    """Create or change a macro (each change is a new version)."""
    request = pb.PutMacroRequest(macro_id=macro_id, title=title, body=body)
    with channel() as opened:
        response = call(_stub(opened).PutMacro, request, key)
    if as_json:
        print_message(response)
        return
    console.print(f"macro {response.macro.macro_id} version {response.macro.version}")


@macro_app.command("list")
def macro_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the response as JSON.")] = False,
) -> None:
    """List the macros."""
    with channel() as opened:
        response = call(_stub(opened).ListMacros, pb.ListMacrosRequest())
    if as_json:
        print_message(response)
        return
    table = Table("macro", "version", "title", "body")
    for macro in response.macros:
        table.add_row(macro.macro_id, str(macro.version), Text(macro.title), Text(macro.body))
    console.print(table)


@macro_app.command("delete")
def macro_delete(
    macro_id: str,
    key: Annotated[str, typer.Option("--idempotency-key", help="Safe to retry.")] = "",
) -> None:
    """Delete a macro."""
    with channel() as opened:
        call(_stub(opened).DeleteMacro, pb.DeleteMacroRequest(macro_id=macro_id), key)
    console.print(f"macro {macro_id} deleted")


def macro_values(pairs: list[str]) -> dict[str, str]:
    """Returns `name=value` options as a dict; BadParameter for one without `=`."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r}: write name=value, e.g. customer_name=Li")
        values[name.strip()] = value
    return values
