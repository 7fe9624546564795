"""`careops customer …`: register, show the 360, find, list, tag, record purchases, erase and
export."""

from __future__ import annotations

import json
from typing import Annotated, Any

import grpc
import typer
from careops.customer.v1 import customer_pb2 as pb
from careops.customer.v1 import customer_pb2_grpc
from careops.customer.v1 import types_pb2 as t
from careops.quality.v1 import quality_pb2 as qa
from careops.quality.v1 import quality_pb2_grpc
from careops.ticketing.v1 import ticketing_pb2 as tk
from careops.ticketing.v1 import ticketing_pb2_grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.table import Table

from careops_cli.client import call, channel, console, failure, metadata, print_message, report

customer_app = typer.Typer(
    help="Customers: profiles, the 360 view, purchases and erasure.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the response as JSON.")]
TIERS = ("high_value", "potential", "regular", "low_frequency")
REASONS = ("customer_request", "consent_withdrawn", "retention_expired", "legal_order")


def _stub(opened: grpc.Channel) -> customer_pb2_grpc.CustomerProfileServiceStub:
    return customer_pb2_grpc.CustomerProfileServiceStub(opened)


def _tier(number: t.CustomerTier.ValueType) -> str:
    return str(t.CustomerTier.Name(number)).removeprefix("CUSTOMER_TIER_").lower()


def _show_customer(customer: t.Customer) -> None:
    profile = customer.profile
    state = " [red](erased)[/]" if customer.forgotten else ""
    console.print(f"[bold]{customer.customer_id}[/] {profile.name or '-'}{state}")
    console.print(
        f"  e-mail {profile.email or '-'}  phone {profile.phone or '-'}  "
        f"locale {profile.locale or '-'}"
    )
    rfm = customer.rfm
    console.print(
        f"  tier [bold]{_tier(customer.tier)}[/] (R{rfm.recency} F{rfm.frequency} "
        f"M{rfm.monetary}){'  [yellow]churn risk[/]' if customer.churn_risk else ''}; "
        f"{customer.purchase_count} purchases; tags {', '.join(customer.tags) or '-'}"
    )


@customer_app.command("register")
def register(
    name: Annotated[str, typer.Option(help="Full name.")],
    email: Annotated[str, typer.Option(help="E-mail address.")] = "",
    phone: Annotated[str, typer.Option(help="Phone, international format (+86…).")] = "",
    locale: Annotated[str, typer.Option(help="BCP 47 tag, e.g. zh-CN.")] = "",
    address: str = "",
    marketing: Annotated[bool, typer.Option(help="Consents to marketing.")] = False,
    profiling: Annotated[bool, typer.Option(help="Consents to profiling.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Register a customer (personal data is encrypted with the customer's own key)."""
    request = pb.RegisterCustomerRequest(
        profile=t.Profile(name=name, email=email, phone=phone, locale=locale, address=address),
        consent=t.Consent(marketing=marketing, profiling=profiling),
    )
    with channel() as opened:
        response = call(_stub(opened).RegisterCustomer, request)
    if as_json:
        print_message(response.customer)
        return
    _show_customer(response.customer)


@customer_app.command("show")
def show(
    customer_id: str,
    timeline: Annotated[int, typer.Option(help="Timeline entries to show.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Show the customer 360: profile, tier, satisfaction, open tickets and timeline."""
    request = pb.GetCustomer360Request(customer_id=customer_id, timeline_limit=timeline)
    with channel() as opened:
        response = call(_stub(opened).GetCustomer360, request)
    view = response.view
    if as_json:
        print_message(view)
        return
    _show_customer(view.customer)
    satisfaction = view.satisfaction
    if satisfaction.surveys:
        console.print(
            f"  satisfaction: {satisfaction.surveys} surveys, mean CSAT "
            f"{satisfaction.average_csat:.2f}"
        )
    for ticket in view.open_tickets:
        console.print(
            f"  open ticket {ticket.ticket_id} {ticket.type} via {ticket.channel} "
            f"({ticket.priority}, {ticket.status})"
        )
    table = Table("when", "source", "what")
    for entry in view.timeline:
        table.add_row(
            entry.at.ToDatetime().isoformat(timespec="seconds"), entry.source, _entry(entry)
        )
    console.print(table)


def _entry(entry: Any) -> str:
    extra = f" [{entry.emotion}]" if entry.emotion else ""
    return f"{entry.summary}{extra}"


@customer_app.command("find")
def find(
    email: Annotated[str, typer.Option(help="E-mail address.")] = "",
    phone: Annotated[str, typer.Option(help="Phone number.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Find a customer by e-mail or phone."""
    request = pb.FindCustomerRequest(email=email) if email else pb.FindCustomerRequest(phone=phone)
    with channel() as opened:
        response = call(_stub(opened).FindCustomer, request)
    if as_json:
        print_message(response.customer)
        return
    _show_customer(response.customer)


@customer_app.command("list")
def list_customers(
    tier: Annotated[str, typer.Option(help="high_value, potential, regular, low_frequency")] = "",
    tag: Annotated[str, typer.Option(help="Only customers with this tag.")] = "",
    churn_risk: Annotated[bool, typer.Option("--churn-risk", help="Only churn risks.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many (≤ 500).")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List customers, newest first, by tier, tag or churn risk."""
    if tier and tier not in TIERS:
        raise typer.BadParameter(f"tier must be one of {', '.join(TIERS)}")
    request = pb.ListCustomersRequest(
        tier=t.CustomerTier.Value("CUSTOMER_TIER_" + tier.upper()) if tier else 0,  # type: ignore[arg-type]
        tag=tag,
        churn_risk_only=churn_risk,
        page_size=limit,
    )
    with channel() as opened:
        response = call(_stub(opened).ListCustomers, request)
    if as_json:
        print_message(response)
        return
    table = Table("customer", "name", "tier", "RFM", "churn risk", "tags")
    for customer in response.customers:
        rfm = customer.rfm
        table.add_row(
            customer.customer_id,
            customer.profile.name,
            _tier(customer.tier),
            f"{rfm.recency}{rfm.frequency}{rfm.monetary}",
            "yes" if customer.churn_risk else "",
            ", ".join(customer.tags),
        )
    console.print(table)


@customer_app.command("tag")
def tag(
    customer_id: str,
    add: Annotated[list[str] | None, typer.Option(help="Tag to add (repeatable).")] = None,
    remove: Annotated[list[str] | None, typer.Option(help="Tag to remove (repeatable).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Add or remove tags: vip, sensitive, technical or your own labels."""
    request = pb.TagCustomerRequest(customer_id=customer_id, add=add or [], remove=remove or [])
    with channel() as opened:
        response = call(_stub(opened).TagCustomer, request)
    if as_json:
        print_message(response.customer)
        return
    _show_customer(response.customer)


@customer_app.command("purchase")
def purchase(
    customer_id: str,
    order: Annotated[str, typer.Option(help="Order id (unique per customer).")],
    amount: Annotated[str, typer.Option(help="Decimal amount, e.g. 199.00.")],
    currency: Annotated[str, typer.Option(help="ISO 4217 code, e.g. CNY.")],
    as_json: JsonOption = False,
) -> None:
    """Record a purchase (segments are recomputed as it arrives)."""
    request = pb.RecordPurchaseRequest(
        customer_id=customer_id, order_id=order, amount=amount, currency=currency
    )
    with channel() as opened:
        response = call(_stub(opened).RecordPurchase, request, key=f"{customer_id}:{order}")
    if as_json:
        print_message(response.purchase)
        return
    bought = response.purchase
    console.print(f"recorded {bought.order_id}: {bought.amount} {bought.currency}")


@customer_app.command("erase")
def erase(
    customer_id: str,
    reason: Annotated[str, typer.Option(help=f"One of {', '.join(REASONS)}.")] = REASONS[0],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Erase a customer's personal data for good (destroys the customer's key)."""
    if reason not in REASONS:
        raise typer.BadParameter(f"reason must be one of {', '.join(REASONS)}")
    if not yes:
        typer.confirm(
            f"Erase the personal data of {customer_id}? This cannot be undone", abort=True
        )
    request = pb.EraseCustomerRequest(
        customer_id=customer_id,
        reason=t.ErasureReason.Value("ERASURE_REASON_" + reason.upper()),  # type: ignore[arg-type]
    )
    with channel() as opened:
        response = call(_stub(opened).EraseCustomer, request)
    if as_json:
        print_message(response)
        return
    console.print(f"erased {response.customer_id} (log sequence {response.sequence})")


@customer_app.command("export")
def export(customer_id: str) -> None:
    """Print everything held about a customer as JSON (data-subject access request): the
    profile's export, then, under `ticketing` and `quality`, each of their tickets with its
    texts and conversation and each of their surveys (every context keeps its own free text)."""
    with channel() as opened:
        response = call(
            _stub(opened).ExportCustomerData, pb.ExportCustomerDataRequest(customer_id=customer_id)
        )
        document = json.loads(response.document_json)
        tickets = _tickets_of(opened, customer_id)
        document["ticketing"] = tickets
        document["quality"] = _surveys_of(opened, [ticket["ticket_id"] for ticket in tickets])
    print(json.dumps(document, indent=2, ensure_ascii=False))


def _as_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _tickets_of(opened: grpc.Channel, customer_id: str) -> list[dict[str, Any]]:
    """Every ticket of the customer as GetTicket shows it, with its whole conversation."""
    stub = ticketing_pb2_grpc.TicketingServiceStub(opened)
    found: list[dict[str, Any]] = []
    token = ""
    while True:
        page = call(
            stub.ListTickets,
            tk.ListTicketsRequest(customer_id=customer_id, page_size=500, page_token=token),
        )
        for summary in page.tickets:
            ticket = call(stub.GetTicket, tk.GetTicketRequest(ticket_id=summary.ticket_id))
            entry = _as_dict(ticket.ticket)
            entry["conversation"] = _conversation(stub, summary.ticket_id)
            found.append(entry)
        token = page.next_page_token
        if not token:
            return found


def _conversation(stub: ticketing_pb2_grpc.TicketingServiceStub, ticket_id: str) -> list[Any]:
    messages: list[Any] = []
    token = ""
    while True:
        request = tk.GetConversationRequest(ticket_id=ticket_id, page_size=500, page_token=token)
        page = call(stub.GetConversation, request)
        messages += [_as_dict(message) for message in page.messages]
        token = page.next_page_token
        if not token:
            return messages


def _surveys_of(opened: grpc.Channel, ticket_ids: list[str]) -> list[dict[str, Any]]:
    """The surveys of those tickets (a ticket without one is skipped)."""
    stub = quality_pb2_grpc.QualityServiceStub(opened)
    surveys = []
    for ticket_id in ticket_ids:
        try:
            reply = stub.GetSurvey(
                qa.GetSurveyRequest(ticket_id=ticket_id), metadata=metadata(), timeout=30
            )
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                continue
            report(failure(exc))
            raise typer.Exit(1) from None
        surveys.append(_as_dict(reply.survey))
    return surveys
