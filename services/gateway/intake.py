"""Alert intake at the HTTP edge: the formats monitoring tools already send, translated into
IncidentService/IngestAlerts (the incident service decides; this module only translates).

- `POST /v1/integrations/alertmanager` — Prometheus Alertmanager's webhook (payload version 4);
  the integration key comes as `Authorization: Bearer <key>` (http_config.authorization).
- `POST /v2/enqueue` — PagerDuty Events API v2: the key is the event's `routing_key`; answered
  exactly as PagerDuty answers (202 with the dedup_key, 400 "invalid event", 429).
- `POST /v1/integrations/webhook/{integration_id}` — any JSON body, mapped by the integration's
  declarative field mapping (policy kind `integrations`, `mapping:`), key as a bearer.

An integration key is a gateway API key (`careops apikey create --role integration --subject
<integration id>`): its subject names the integration, whose rules decide. These paths bypass
the bearer middleware (PagerDuty clients send no header) and authenticate here instead.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import grpc
from aiohttp import web
from careops.incident.v1 import incident_pb2 as ipb
from careops_platform.errors import PermissionDenied
from careops_platform.identity import AuthError, Principal, run_as
from google.protobuf import timestamp_pb2

from gateway.auth import Authenticator
from gateway.backends import AnyRoute, call_unary
from gateway.errors import error_body, error_of, error_response
from gateway.http_api import ROUTE_KEY, Endpoint
from gateway.limits import Limits, retry_seconds
from gateway.limits import http_refusal as over_rate

INGEST = "/careops.incident.v1.IncidentService/IngestAlerts"
ALERTMANAGER_PATH = "/v1/integrations/alertmanager"
PAGERDUTY_PATH = "/v2/enqueue"
WEBHOOK_PATH = "/v1/integrations/webhook/{integration_id}"
ROLE = "integration"
SEVERITIES = ("critical", "error", "warning", "info")
PD_ACTIONS = {
    "trigger": ipb.ALERT_ACTION_TRIGGER,
    "acknowledge": ipb.ALERT_ACTION_ACKNOWLEDGE,
    "resolve": ipb.ALERT_ACTION_RESOLVE,
}
MAX_LABEL = 1024


class IntakeRoutes:
    """The three intake routes, forwarding to the incident service as the integration."""

    def __init__(self, authenticator: Authenticator, limits: Limits | None, timeout: float) -> None:
        self._authenticator = authenticator
        self._limits = limits
        self._timeout = timeout
        self._route: AnyRoute | None = None

    def register(self, app: web.Application, endpoints: Mapping[str, Endpoint]) -> None:
        """Adds the routes (an HttpApi protocol): forwarded through the IngestAlerts route."""
        endpoint = endpoints.get(INGEST)
        if endpoint is None or endpoint.route is None:
            return
        self._route = endpoint.route
        app.router.add_post(ALERTMANAGER_PATH, self._alertmanager)
        app.router.add_post(PAGERDUTY_PATH, self._pagerduty)
        app.router.add_post(WEBHOOK_PATH, self._webhook)

    # ------------------------------------------------------------------ authentication

    async def _principal(self, authorization: str | None) -> Principal:
        """The integration of a key: AuthError unless it is a valid key of role `integration`;
        PermissionDenied when the permission table does not let it call IngestAlerts."""
        principal = await self._authenticator.principal(authorization)
        if ROLE not in principal.roles:
            raise AuthError(f"the key of {principal.subject} is no integration key (role {ROLE})")
        self._authenticator.authorize(principal, INGEST)  # the one table, as for every RPC
        return principal

    def _over_rate(self, principal: Principal) -> float | None:
        return self._limits.rate.acquire(principal.subject) if self._limits else None

    async def _forward(
        self, principal: Principal, request: ipb.IngestAlertsRequest
    ) -> ipb.IngestAlertsResponse:
        """Calls IngestAlerts as the integration; raises grpc.aio.AioRpcError as answered."""
        assert self._route is not None
        restore = run_as(principal)
        try:
            reply = await call_unary(
                self._route.for_call(None), request.SerializeToString(), None, self._timeout
            )
        finally:
            restore()
        return ipb.IngestAlertsResponse.FromString(reply)

    # ------------------------------------------------------------------ Alertmanager

    async def _alertmanager(self, request: web.Request) -> web.Response:
        request[ROUTE_KEY] = ALERTMANAGER_PATH  # careops_http_requests_total's bounded route label
        return await self._alertmanager_reply(request)

    async def _alertmanager_reply(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization")
        try:
            principal = await self._principal(authorization)
        except AuthError as error:
            return _unauthenticated(error)
        except PermissionDenied as denied:
            return _denied(denied)
        wait = self._over_rate(principal)
        if wait is not None:
            return over_rate(principal.subject, wait)
        body = await _json(request)
        try:
            alerts = alertmanager_alerts(body)
        except ValueError as exc:
            return _invalid(str(exc))
        message = ipb.IngestAlertsRequest(
            integration_id=principal.subject,
            source=ipb.ALERT_SOURCE_KIND_ALERTMANAGER,
            alerts=alerts,
        )
        try:
            reply = await self._forward(principal, message)
        except grpc.aio.AioRpcError as error:
            assert self._route is not None
            return error_response(error_of(self._route.for_call(None), error))
        return web.json_response(_outcomes(reply))

    # ------------------------------------------------------------------ PagerDuty Events v2

    async def _pagerduty(self, request: web.Request) -> web.Response:
        request[ROUTE_KEY] = PAGERDUTY_PATH  # careops_http_requests_total's bounded route label
        return await self._pagerduty_reply(request)

    async def _pagerduty_reply(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text() or "null")
        except ValueError:
            return pagerduty_invalid(["Event object is not valid JSON"])
        if not isinstance(body, dict):
            return pagerduty_invalid(["Event object must be a JSON object"])
        routing_key = body.get("routing_key")
        if not isinstance(routing_key, str) or not routing_key:
            return pagerduty_invalid(["'routing_key' is missing or blank"])
        try:
            principal = await self._principal(f"Bearer {routing_key}")
        except AuthError as error:
            if error.unavailable:
                return _unauthenticated(error)
            return pagerduty_invalid([f"'routing_key' is not a valid integration key: {error}"])
        except PermissionDenied as denied:
            return _denied(denied)
        wait = self._over_rate(principal)
        if wait is not None:
            return web.json_response(
                {
                    "status": "throttle event",
                    "message": "Requests for this service are arriving too quickly. "
                    "Please back off and retry later.",
                },
                status=429,
                headers={"Retry-After": str(retry_seconds(wait))},
            )
        errors, alert = pagerduty_alert(body)
        if errors:
            return pagerduty_invalid(errors)
        message = ipb.IngestAlertsRequest(
            integration_id=principal.subject,
            source=ipb.ALERT_SOURCE_KIND_PAGERDUTY,
            alerts=[alert],
        )
        try:
            await self._forward(principal, message)
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.INVALID_ARGUMENT:
                return pagerduty_invalid([error.details() or "invalid"])
            assert self._route is not None
            return error_response(error_of(self._route.for_call(None), error))
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": alert.dedup_key},
            status=202,
        )

    # ------------------------------------------------------------------ generic webhook

    async def _webhook(self, request: web.Request) -> web.Response:
        request[ROUTE_KEY] = WEBHOOK_PATH  # careops_http_requests_total's bounded route label
        return await self._webhook_reply(request)

    async def _webhook_reply(self, request: web.Request) -> web.Response:
        try:
            principal = await self._principal(request.headers.get("Authorization"))
        except AuthError as error:
            return _unauthenticated(error)
        except PermissionDenied as denied:
            return _denied(denied)
        integration_id = request.match_info["integration_id"]
        if principal.subject != integration_id:
            denial = error_body(
                grpc.StatusCode.PERMISSION_DENIED,
                f"the key is integration {principal.subject}'s, not {integration_id}'s",
            )
            return error_response(denial)
        wait = self._over_rate(principal)
        if wait is not None:
            return over_rate(principal.subject, wait)
        body = await _json(request)
        if body is None:
            return _invalid("the body must be JSON")
        alert = ipb.IntakeAlert(group_key="", dedup_key="")
        # The mapping is the integration's data: the incident service applies it (raw body).
        alert.labels["body"] = json.dumps(body, ensure_ascii=False)[:65536]
        message = ipb.IngestAlertsRequest(
            integration_id=integration_id,
            source=ipb.ALERT_SOURCE_KIND_WEBHOOK,
            alerts=[alert],
        )
        try:
            reply = await self._forward(principal, message)
        except grpc.aio.AioRpcError as error:
            assert self._route is not None
            return error_response(error_of(self._route.for_call(None), error))
        return web.json_response(_outcomes(reply), status=202)


# ---------------------------------------------------------------------- translations


def alertmanager_alerts(body: Any) -> list[ipb.IntakeAlert]:
    """Returns the alerts of an Alertmanager webhook payload (version 4); ValueError naming
    what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("the body must be Alertmanager's webhook JSON object")
    if str(body.get("version", "")) != "4":
        version = body.get("version")
        raise ValueError(f"version: Alertmanager's payload version 4, got {version!r}")
    group_key = body.get("groupKey")
    if not isinstance(group_key, str) or not group_key:
        raise ValueError("groupKey: required")
    raw = body.get("alerts")
    if not isinstance(raw, list) or not raw:
        raise ValueError("alerts: at least one alert")
    alerts = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"alerts[{index}]: must be an object")
        labels = _strings(item.get("labels"))
        annotations = _strings(item.get("annotations"))
        fingerprint = item.get("fingerprint") or _fingerprint(labels)
        status = item.get("status", body.get("status"))
        if status not in ("firing", "resolved"):
            raise ValueError(f"alerts[{index}].status: firing or resolved, got {status!r}")
        summary = (
            annotations.get("summary")
            or annotations.get("description")
            or labels.get("alertname", "")
        )
        alert = ipb.IntakeAlert(
            dedup_key=str(fingerprint),
            group_key=group_key,
            action=ipb.ALERT_ACTION_TRIGGER if status == "firing" else ipb.ALERT_ACTION_RESOLVE,
            summary=summary[:1024],
            severity=labels.get("severity", ""),
        )
        alert.labels.update(labels)
        alert.labels.update({f"annotation.{k}": v for k, v in annotations.items()})
        started = _timestamp(item.get("startsAt"))
        if started is not None:
            alert.starts_at.CopyFrom(started)
        alerts.append(alert)
    return alerts


def pagerduty_alert(body: Mapping[str, Any]) -> tuple[list[str], ipb.IntakeAlert]:
    """Returns the errors of a PagerDuty Events v2 event (PagerDuty's wording) and its alert."""
    errors: list[str] = []
    action = body.get("event_action")
    if action not in PD_ACTIONS:
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    dedup_key = body.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
        dedup_key = None
    if action in ("acknowledge", "resolve") and not dedup_key:
        errors.append(f"'dedup_key' is required for event_action {action}")
    payload = body.get("payload")
    summary = severity = source = ""
    details: dict[str, str] = {}
    if action == "trigger":
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object")
        else:
            summary, source, severity = (
                _text(payload, "summary"),
                _text(payload, "source"),
                _text(payload, "severity"),
            )
            if not summary:
                errors.append("'payload.summary' is missing or blank")
            elif len(summary) > 1024:
                errors.append("'payload.summary' must be at most 1024 characters")
            if not source:
                errors.append("'payload.source' is missing or blank")
            if severity not in SEVERITIES:
                errors.append(
                    "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
                )
            details = _strings(payload.get("custom_details"))
            for name in ("component", "group", "class"):
                if isinstance(payload.get(name), str):
                    details[name] = payload[name]
    key = dedup_key or uuid.uuid4().hex  # PagerDuty generates one for a trigger without
    alert = ipb.IntakeAlert(
        dedup_key=key,
        group_key=key,
        action=PD_ACTIONS.get(str(action), ipb.ALERT_ACTION_UNSPECIFIED),
        summary=summary,
        severity=severity,
    )
    alert.labels.update(details)
    if source:
        alert.labels["source"] = source
    if severity:
        alert.labels["severity"] = severity
    if isinstance(payload, dict):
        started = _timestamp(payload.get("timestamp"))
        if started is not None:
            alert.starts_at.CopyFrom(started)
    return errors, alert


def _text(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    return value if isinstance(value, str) else ""


def pagerduty_invalid(errors: list[str]) -> web.Response:
    """PagerDuty's answer to an invalid event."""
    return web.json_response(
        {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
        status=400,
    )


def _outcomes(reply: ipb.IngestAlertsResponse) -> dict[str, Any]:
    return {
        "alerts": [
            {
                "dedup_key": alert.dedup_key,
                "outcome": ipb.AlertOutcome.Name(alert.outcome)
                .removeprefix("ALERT_OUTCOME_")
                .lower(),
                "incident_id": alert.incident_id,
            }
            for alert in reply.alerts
        ],
        "sequence": reply.sequence,
    }


def _unauthenticated(error: AuthError) -> web.Response:
    code = grpc.StatusCode.UNAVAILABLE if error.unavailable else grpc.StatusCode.UNAUTHENTICATED
    return error_response(
        error_body(code, f"integration key refused: {error.reason}"),
        headers={"WWW-Authenticate": 'Bearer realm="careops"'},
    )


def _denied(denied: PermissionDenied) -> web.Response:
    return error_response(error_body(grpc.StatusCode.PERMISSION_DENIED, str(denied)))


def _invalid(message: str) -> web.Response:
    field, _, description = message.partition(": ")
    violations = [{"field": field, "description": description}] if description else []
    return error_response(error_body(grpc.StatusCode.INVALID_ARGUMENT, message, violations))


async def _json(request: web.Request) -> Any:
    try:
        return json.loads(await request.text() or "null")
    except ValueError:
        return None


def _strings(value: Any) -> dict[str, str]:
    """A JSON object's entries as strings (objects and lists as their JSON), bounded."""
    if not isinstance(value, dict):
        return {}
    out = {}
    for key, item in list(value.items())[:200]:
        text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
        out[str(key)[:200]] = text[:MAX_LABEL]
    return out


def _fingerprint(labels: Mapping[str, str]) -> str:
    text = "\x1f".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_ZONE = re.compile(r"Z$")
_FRACTION = re.compile(r"(\.\d{6})\d+")  # Go writes nanoseconds; Python reads microseconds


def _timestamp(value: Any) -> timestamp_pb2.Timestamp | None:
    """An RFC 3339 time as a Timestamp; None when absent, unreadable or Go's zero time."""
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    try:
        at = datetime.fromisoformat(_FRACTION.sub(r"\1", _ZONE.sub("+00:00", value)))
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(at)
    return stamp


# ---------------------------------------------------------------------- OpenAPI


def openapi_paths() -> dict[str, Any]:
    """The intake routes in the gateway's OpenAPI document (their bodies are the tools' own
    formats: Alertmanager's webhook v4, PagerDuty Events v2, any JSON)."""
    anything = {"type": "object"}
    outcomes = {
        "type": "object",
        "properties": {
            "alerts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "dedup_key": {"type": "string"},
                        "outcome": {"type": "string"},
                        "incident_id": {"type": "string"},
                    },
                },
            },
            "sequence": {"type": "integer"},
        },
    }
    pagerduty_reply = {
        "type": "object",
        "properties": {
            "status": {"type": "string"},
            "message": {"type": "string"},
            "dedup_key": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "string"}},
        },
    }

    def operation(summary: str, ok: str, reply: dict[str, Any], **extra: Any) -> dict[str, Any]:
        json_reply = {"application/json": {"schema": reply}}
        return {
            "post": {
                "summary": summary,
                "operationId": summary.lower().replace(" ", "_"),
                "tags": ["alert intake"],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": anything}},
                },
                "responses": {
                    ok: {"description": "accepted", "content": json_reply},
                    "default": {"$ref": "#/components/responses/Error"},
                },
                **extra,
            }
        }

    pagerduty = operation("PagerDuty Events v2 enqueue", "202", pagerduty_reply, security=[])
    for code in ("400", "429"):
        pagerduty["post"]["responses"][code] = {
            "description": "as PagerDuty answers",
            "content": {"application/json": {"schema": pagerduty_reply}},
        }
    webhook = operation(
        "Generic webhook alert",
        "202",
        outcomes,
        parameters=[
            {
                "name": "integration_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
            }
        ],
    )
    return {
        ALERTMANAGER_PATH: operation("Alertmanager webhook", "200", outcomes),
        PAGERDUTY_PATH: pagerduty,
        WEBHOOK_PATH: webhook,
    }
