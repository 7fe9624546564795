"""A member's on-call shifts as an iCalendar feed (RFC 5545, written by `icalendar`).

`GET /v1/oncall/teams/{team_id}/members/{member_id}/shifts.ics` calls the incident service's
ListMemberShifts (default: the next 28 days; `start` / `end` query parameters, RFC 3339, up to
366 days) and answers `text/calendar`, one VEVENT per shift. Calendar clients cannot send a
bearer header, so this route alone also takes the credential (an API key or a JWT) from the
`token` query parameter; the gateway's authenticator checks it and the permission table holds
it to `incident.oncall.shifts` like the RPC (gateway.auth). Traces and metrics name the path
and the bounded route, never the query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import grpc
from aiohttp import web
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import types_pb2 as t
from careops_platform.errors import ServiceError
from icalendar import Calendar, Event

from gateway.backends import call_unary
from gateway.errors import error_body, error_of, error_response
from gateway.http_api import ROUTE_KEY, Endpoint, forwarded_metadata

SHIFTS_PATH = "/v1/oncall/teams/{team_id}/members/{member_id}/shifts.ics"
SHIFTS_METHOD = "/careops.incident.v1.IncidentService/ListMemberShifts"
SHIFTS_PATTERN = re.compile(r"/v1/oncall/teams/[^/]+/members/[^/]+/shifts\.ics")
PRODID = "-//CareOps//On-call shifts//EN"
SOURCES = {
    t.ON_CALL_SOURCE_OVERRIDE: "override",
    t.ON_CALL_SOURCE_SWAP: "swap",
    t.ON_CALL_SOURCE_LAYER: "layer",
}


# The feed in /openapi.json (the JSON edge's document lists every route the gateway serves).
TOKEN_SCHEME = {"token": {"type": "apiKey", "in": "query", "name": "token"}}


def openapi_paths() -> dict[str, Any]:
    """Returns the feed's OpenAPI path item: a bearer header or the `token` query parameter."""

    def parameter(name: str, where: str, description: str) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if where == "query" and name != "token":
            schema["format"] = "date-time"
        return {
            "name": name,
            "in": where,
            "required": where == "path",
            "description": description,
            "schema": schema,
        }

    return {
        SHIFTS_PATH: {
            "get": {
                "operationId": "oncall_member_shifts_ics",
                "tags": ["careops.incident.v1.IncidentService"],
                "summary": "A member's on-call shifts as iCalendar (ListMemberShifts)",
                "parameters": [
                    parameter("team_id", "path", "The team."),
                    parameter("member_id", "path", "The member."),
                    parameter("token", "query", "An API key or JWT (calendar clients)."),
                    parameter("start", "query", "From (RFC 3339; default now)."),
                    parameter("end", "query", "Until (RFC 3339; default start + 28 days)."),
                ],
                "security": [{"bearer": []}, {"token": []}],
                "responses": {
                    "200": {
                        "description": "RFC 5545 calendar, one VEVENT per shift",
                        "content": {"text/calendar": {"schema": {"type": "string"}}},
                    },
                    "default": {"$ref": "#/components/responses/Error"},
                },
            }
        }
    }


def is_feed(path: str) -> bool:
    """True for a path of the iCal feed (the one route taking `token` from the query)."""
    return SHIFTS_PATTERN.fullmatch(path) is not None


def calendar(team_id: str, member_id: str, shifts: pb.ListMemberShiftsResponse) -> bytes:
    """Returns the iCalendar document of a member's shifts."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"On call: {member_id} ({team_id})")
    for shift in shifts.shifts:
        starts = shift.starts_at.ToDatetime(tzinfo=UTC)
        event = Event()
        event.add("uid", f"{team_id}-{member_id}-{int(starts.timestamp())}@careops")
        event.add("dtstamp", starts)
        event.add("dtstart", starts)
        event.add("dtend", shift.ends_at.ToDatetime(tzinfo=UTC))
        source = SOURCES.get(shift.decided_by, "layer")
        event.add("summary", f"On call: {team_id}")
        event.add("description", f"{member_id} on call for {team_id} ({source} {shift.ref})")
        event.add("categories", [source])
        cal.add_component(event)
    return bytes(cal.to_ical())


class IcalFeed:
    """Registers the feed route on the HTTP edge (a `protocols` entry of gateway.http_api)."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._endpoint: Endpoint | None = None

    def register(self, app: web.Application, endpoints: Mapping[str, Endpoint]) -> None:
        """Adds the GET route, forwarding to the ListMemberShifts endpoint."""
        self._endpoint = endpoints.get(SHIFTS_METHOD)
        if self._endpoint is not None:
            app.router.add_get(SHIFTS_PATH, self._feed)

    async def _feed(self, request: web.Request) -> web.StreamResponse:
        request[ROUTE_KEY] = SHIFTS_PATH
        endpoint = self._endpoint
        assert endpoint is not None and endpoint.route is not None
        team_id, member_id = request.match_info["team_id"], request.match_info["member_id"]
        message = pb.ListMemberShiftsRequest(team_id=team_id, member_id=member_id)
        for name in ("start", "end"):
            value = request.query.get(name)
            if value:
                try:
                    getattr(message, name).FromDatetime(datetime.fromisoformat(value))
                except ValueError:
                    wrong = f"query parameter {name} must be an RFC 3339 time"
                    return error_response(error_body(grpc.StatusCode.INVALID_ARGUMENT, wrong))
        metadata = forwarded_metadata(request.headers)
        if isinstance(metadata, web.Response):
            return metadata
        try:
            route = endpoint.route.for_call(metadata)
        except ServiceError as exc:  # a shared service's call names no (known) backend
            return error_response(error_body(exc.code, exc.message))
        try:
            raw = await call_unary(route, message.SerializeToString(), metadata, self._timeout)
        except grpc.aio.AioRpcError as error:
            return error_response(error_of(route, error))
        reply = pb.ListMemberShiftsResponse()
        reply.ParseFromString(raw)
        return web.Response(
            body=calendar(team_id, member_id, reply),
            content_type="text/calendar",
            charset="utf-8",
            headers={"Cache-Control": "private, max-age=300"},
        )


def query_credential(request: Any) -> str | None:
    """Returns the `Authorization` value of the feed's `token` query parameter (None: none)."""
    token = request.query.get("token")
    return f"Bearer {token}" if token else None
