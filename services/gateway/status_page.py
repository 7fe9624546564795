"""The public status page (docs/incidents.md, "Status page"): GET /status (HTML) and
GET /status.json, served without a token. Both read IncidentService/GetStatusPage (public facts
only: published statements, when incidents were declared and resolved; drills never) as the
gateway's own status-page principal, and render it in Chinese or English (`?lang=`, else
Accept-Language, else Chinese, the source documents' language). The HTML is rendered here,
every value escaped, with no script."""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from aiohttp import web
from careops.incident.v1 import incident_pb2 as pb
from careops_platform.identity import Principal, run_as

from gateway.backends import Route, call_unary
from gateway.errors import error_body, error_of, error_response
from gateway.http_api import ROUTE_KEY, Endpoint

HTML_PATH = "/status"
JSON_PATH = "/status.json"
PATHS = frozenset({HTML_PATH, JSON_PATH})
METHOD = "/careops.incident.v1.IncidentService/GetStatusPage"
# Who the gateway is when it reads the public facts for an anonymous reader.
PRINCIPAL = Principal("gateway:status-page", frozenset({"integration"}), "gateway")
LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
CACHE_CONTROL = "public, max-age=30"

TEXT: Mapping[str, Mapping[str, str]] = {
    "zh": {
        "title": "服务状态",
        "open": "当前事件",
        "none_open": "所有服务运行正常。",
        "resolved": "近 {days} 天已解决的事件",
        "none_resolved": "近 {days} 天没有已解决的事件。",
        "state_open": "处理中",
        "state_resolved": "已解决",
        "declared": "开始于",
        "resolved_at": "解决于",
        "updates": "更新记录",
        "version": "第 {version} 版",
        "generated": "更新时间",
        "other": "English",
    },
    "en": {
        "title": "Service status",
        "open": "Current incidents",
        "none_open": "All services are operating normally.",
        "resolved": "Resolved in the last {days} days",
        "none_resolved": "No incidents were resolved in the last {days} days.",
        "state_open": "Investigating",
        "state_resolved": "Resolved",
        "declared": "Started",
        "resolved_at": "Resolved",
        "updates": "Updates",
        "version": "Update {version}",
        "generated": "Generated",
        "other": "中文",
    },
}


class BadQuery(ValueError):
    """A query parameter of the status page is not valid: the field and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


def language(query: Mapping[str, str], accept_language: str) -> str:
    """Returns `zh` or `en`: `?lang=` when given (BadQuery if neither), else the first of them
    Accept-Language prefers (by q, then order), else Chinese."""
    asked = query.get("lang")
    if asked is not None:
        base = asked.strip().lower().partition("-")[0]
        if base not in LANGUAGES:
            raise BadQuery("lang", f"must be one of {', '.join(LANGUAGES)}")
        return base
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                weight = float(params[2:])
            except ValueError:
                weight = 0.0
        base = tag.strip().lower().partition("-")[0]
        if base in LANGUAGES and weight > 0:
            ranked.append((-weight, index, base))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def history_days(query: Mapping[str, str]) -> int:
    """Returns `?days=` as a whole number (0: the service's default); BadQuery otherwise."""
    raw = query.get("days", "")
    if not raw:
        return 0
    if not raw.isdigit() or len(raw) > 3:
        raise BadQuery("days", "must be a whole number of days")
    return int(raw)


def _time(value: Any) -> str | None:
    """Returns a Timestamp field as ISO 8601 UTC, None when unset."""
    if not value.seconds and not value.nanos:
        return None
    return value.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class PublicUpdate:
    version: int
    published_at: str | None
    headline: str
    text: str
    # The language the wording is in when it is not the page's (no English given): `zh`.
    source_language: str = ""


@dataclass(frozen=True)
class PublicIncident:
    incident_id: str
    state: str
    declared_at: str | None
    resolved_at: str | None
    updates: tuple[PublicUpdate, ...]


def _in(lang: str, source: str, english: str) -> str:
    return english if lang == "en" and english else source


def incidents(items: Any, lang: str) -> list[PublicIncident]:
    """Returns the status page's incidents in `lang` (English falls back to the source)."""
    found = []
    for item in items:
        state = "resolved" if item.state == pb.PUBLIC_INCIDENT_STATE_RESOLVED else "open"
        updates = tuple(
            PublicUpdate(
                update.version,
                _time(update.published_at),
                _in(lang, update.headline, update.headline_en),
                _in(lang, update.text, update.text_en),
                "zh" if lang == "en" and not (update.headline_en or update.text_en) else "",
            )
            for update in item.updates
        )
        found.append(
            PublicIncident(
                item.incident_id,
                state,
                _time(item.declared_at),
                _time(item.resolved_at),
                updates,
            )
        )
    return found


def document(reply: pb.GetStatusPageResponse, lang: str) -> dict[str, Any]:
    """Returns the JSON document of the status page in `lang`."""

    def entry(incident: PublicIncident) -> dict[str, Any]:
        latest = incident.updates[0] if incident.updates else None
        return {
            "id": incident.incident_id,
            "state": incident.state,
            "declared_at": incident.declared_at,
            "resolved_at": incident.resolved_at,
            "headline": latest.headline if latest else "",
            "statement": latest.text if latest else "",
            "updates": [
                {
                    "version": update.version,
                    "published_at": update.published_at,
                    "headline": update.headline,
                    "text": update.text,
                }
                for update in incident.updates
            ],
        }

    return {
        "language": lang,
        "generated_at": _time(reply.generated_at),
        "history_days": reply.history_days,
        "open": [entry(item) for item in incidents(reply.open, lang)],
        "resolved": [entry(item) for item in incidents(reply.resolved, lang)],
    }


def _when(value: str | None) -> str:
    """Returns a <time> element of an ISO time (escaped), empty when unset."""
    if value is None:
        return ""
    shown = datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")
    return f'<time datetime="{html.escape(value)}">{html.escape(shown)}</time>'


def _lang(update: PublicUpdate | None) -> str:
    """Returns the lang attribute of wording not in the page's language, else nothing."""
    return f' lang="{update.source_language}"' if update and update.source_language else ""


def _article(incident: PublicIncident, words: Mapping[str, str]) -> str:
    e = html.escape
    latest = incident.updates[0] if incident.updates else None
    state = words["state_resolved" if incident.state == "resolved" else "state_open"]
    lines = [
        f'<article class="incident {e(incident.state)}" id="{e(incident.incident_id)}">',
        f"<h3{_lang(latest)}>{e(latest.headline if latest else '')}</h3>",
        f'<p class="state"><strong>{e(state)}</strong> · {e(words["declared"])} '
        f"{_when(incident.declared_at)}"
        + (
            f" · {e(words['resolved_at'])} {_when(incident.resolved_at)}"
            if incident.resolved_at
            else ""
        )
        + "</p>",
        f"<p{_lang(latest)}>{e(latest.text if latest else '')}</p>",
    ]
    if len(incident.updates) > 1:
        lines.append(f"<h4>{e(words['updates'])}</h4>")
        lines.append("<ol reversed>")
        for update in incident.updates:
            version = words["version"].format(version=update.version)
            lines.append(
                f"<li><p><strong>{e(version)}</strong> {_when(update.published_at)}: "
                f"<span{_lang(update)}>{e(update.headline)}</span></p>"
                f"<p{_lang(update)}>{e(update.text)}</p></li>"
            )
        lines.append("</ol>")
    lines.append("</article>")
    return "\n".join(lines)


def page(reply: pb.GetStatusPageResponse, lang: str) -> str:
    """Returns the HTML status page in `lang`: every value escaped, no script."""
    words = TEXT[lang]
    e = html.escape
    days = reply.history_days
    other = "en" if lang == "zh" else "zh"
    open_items = incidents(reply.open, lang)
    resolved_items = incidents(reply.resolved, lang)
    body = [
        "<!doctype html>",
        f'<html lang="{lang}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(words['title'])}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:48rem;margin:auto;"
        "padding:1rem;color:#111;background:#fff}article{border-left:4px solid #b45309;"
        "padding:0 1rem;margin:1rem 0}article.resolved{border-color:#15803d}"
        "a{color:#1d4ed8}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{e(words['title'])}</h1>",
        f'<p><a href="?lang={other}" hreflang="{other}" lang="{other}">{e(words["other"])}</a></p>',
        "</header>",
        "<main>",
        '<section aria-labelledby="open">',
        f'<h2 id="open">{e(words["open"])}</h2>',
    ]
    body += [_article(item, words) for item in open_items] or [f"<p>{e(words['none_open'])}</p>"]
    body += [
        "</section>",
        '<section aria-labelledby="resolved">',
        f'<h2 id="resolved">{e(words["resolved"].format(days=days))}</h2>',
    ]
    body += [_article(item, words) for item in resolved_items] or [
        f"<p>{e(words['none_resolved'].format(days=days))}</p>"
    ]
    body += [
        "</section>",
        "</main>",
        f"<footer><p>{e(words['generated'])} {_when(_time(reply.generated_at))}</p></footer>",
        "</body>",
        "</html>",
    ]
    return "\n".join(body) + "\n"


class FreshFor:
    """Answers from the last reply of a key for `seconds` (0: never cached), so a crowd reading
    the public page during an incident costs the incident service one read per key and period;
    concurrent misses of a key wait for one read. Failures are not kept."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._kept: dict[int, tuple[float, pb.GetStatusPageResponse]] = {}
        self._lock = asyncio.Lock()

    def _fresh(self, key: int) -> pb.GetStatusPageResponse | None:
        kept = self._kept.get(key)
        if kept is not None and self._clock() - kept[0] < self._seconds:
            return kept[1]
        return None

    async def get(
        self, key: int, load: Callable[[], Awaitable[pb.GetStatusPageResponse]]
    ) -> pb.GetStatusPageResponse:
        """Returns the key's reply read at most `seconds` ago, else `load()`'s."""
        if self._seconds <= 0:
            return await load()
        found = self._fresh(key)
        if found is not None:
            return found
        async with self._lock:
            found = self._fresh(key)
            if found is None:
                found = await load()
                self._kept[key] = (self._clock(), found)
            return found


class StatusPage:
    """Registers GET /status and /status.json on the gateway's HTTP app (an HttpApi protocol)."""

    def __init__(self, *, timeout: float, cache_seconds: float = 0.0) -> None:
        self._timeout = timeout
        self._route: Route | None = None
        self._cache = FreshFor(cache_seconds)

    def register(self, app: web.Application, endpoints: Mapping[str, Endpoint]) -> None:
        """Adds the two routes when the gateway forwards IncidentService/GetStatusPage."""
        endpoint = endpoints.get(METHOD)
        if endpoint is None or not isinstance(endpoint.route, Route):
            return
        self._route = endpoint.route
        app.router.add_get(HTML_PATH, self._html)
        app.router.add_get(JSON_PATH, self._json)

    async def _read(
        self, request: web.Request
    ) -> tuple[pb.GetStatusPageResponse, str] | web.Response:
        """Returns the facts and the language, or the error response to answer."""
        request[ROUTE_KEY] = request.path
        try:
            lang = language(request.query, request.headers.get("Accept-Language", ""))
            days = history_days(request.query)
        except BadQuery as bad:
            violation = {"field": bad.field, "description": bad.reason}
            body = error_body(grpc.StatusCode.INVALID_ARGUMENT, str(bad), [violation])
            return error_response(body)
        route = self._route
        assert route is not None

        async def load() -> pb.GetStatusPageResponse:
            restore = run_as(PRINCIPAL)
            try:
                raw = await call_unary(
                    route,
                    pb.GetStatusPageRequest(history_days=days).SerializeToString(),
                    (),
                    self._timeout,
                )
            finally:
                restore()
            return pb.GetStatusPageResponse.FromString(raw)

        try:
            reply = await self._cache.get(days, load)
        except grpc.aio.AioRpcError as error:
            return error_response(error_of(route, error))
        return reply, lang

    @staticmethod
    def _headers(lang: str) -> dict[str, str]:
        return {"Content-Language": lang, "Vary": "Accept-Language", "Cache-Control": CACHE_CONTROL}

    async def _html(self, request: web.Request) -> web.Response:
        read = await self._read(request)
        if isinstance(read, web.Response):
            return read
        reply, lang = read
        return web.Response(
            text=page(reply, lang), content_type="text/html", headers=self._headers(lang)
        )

    async def _json(self, request: web.Request) -> web.Response:
        read = await self._read(request)
        if isinstance(read, web.Response):
            return read
        reply, lang = read
        return web.json_response(
            document(reply, lang),
            headers=self._headers(lang),
            dumps=lambda value: json.dumps(value, ensure_ascii=False),
        )


def openapi_paths() -> dict[str, Any]:
    """Returns the status page's OpenAPI path items (public: no security requirement)."""

    def parameter(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": False,
            "description": description,
            "schema": schema,
        }

    parameters = [
        parameter(
            "lang",
            "zh or en (default: Accept-Language, else zh).",
            {"type": "string", "enum": list(LANGUAGES)},
        ),
        parameter(
            "days",
            "Resolved incidents of the last N days (default 7, at most 90).",
            {"type": "integer", "minimum": 1, "maximum": 90},
        ),
    ]

    def operation(operation_id: str, summary: str, media: str) -> dict[str, Any]:
        return {
            "get": {
                "operationId": operation_id,
                "tags": ["careops.incident.v1.IncidentService"],
                "summary": summary,
                "security": [],
                "parameters": parameters,
                "responses": {
                    "200": {"description": summary, "content": {media: {"schema": {}}}},
                    "400": {"description": "A bad query parameter (google.rpc.Status JSON)."},
                },
            }
        }

    return {
        HTML_PATH: operation("status_page_html", "The public status page (HTML)", "text/html"),
        JSON_PATH: operation(
            "status_page_json", "The public status page (JSON)", "application/json"
        ),
    }
