"""`careops oncall watch` across a restart of the incident service: it reconnects and resumes
from the log, so no alert is lost (not even one that came and went while it was away) and none
is shown twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from careops_cli.incidents import follow_alerts
from careops_eventstore.nats_embedded import EmbeddedNats, free_port

from tests.support import ServiceProcess, cli_env, eventually_sync, gateway_process, on_call

TEAM = "technical_support"


class Broken(grpc.RpcError):
    """What a stream raises when its server goes away."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE


def alert(
    sequence: int, page_id: str, kind: t.AlertKind.ValueType = t.ALERT_KIND_PAGE
) -> pb.WatchAlertsResponse:
    return pb.WatchAlertsResponse(kind=kind, page_id=page_id, sequence=sequence, team_id=TEAM)


def test_follow_alerts_resumes_from_the_last_message_and_skips_what_it_showed() -> None:
    # The log as the server would stream it after any `after_sequence` (two alerts at 7).
    log = [
        alert(3, "P-1"),
        alert(7, "P-2"),
        alert(7, "P-3"),
        alert(9, "P-2", t.ALERT_KIND_ACKNOWLEDGED),
    ]
    breaks = {0: 2, 6: 1}  # the first stream breaks after 2 alerts, the second after 1
    requested: list[int] = []

    @contextmanager
    def open_stream(after: int) -> Iterator[Iterator[pb.WatchAlertsResponse]]:
        requested.append(after)

        def stream() -> Iterator[pb.WatchAlertsResponse]:
            sent = 0
            for item in log:
                if item.sequence > after:
                    if breaks.get(after) == sent:
                        del breaks[after]
                        raise Broken()
                    sent += 1
                    yield item

        yield stream()

    shown: list[tuple[int, str]] = []
    delays: list[float] = []
    follow_alerts(
        open_stream,
        lambda a: shown.append((a.sequence, a.page_id)),
        count=4,
        sleep=delays.append,
    )

    assert shown == [(3, "P-1"), (7, "P-2"), (7, "P-3"), (9, "P-2")]
    assert requested == [0, 6, 6]  # each reconnect re-reads the last message (7)
    assert delays == [0.5, 0.5]  # an alert in between resets the backoff


def _alerts(output: str) -> list[dict[str, Any]]:
    """The JSON documents `oncall watch --json` printed, one per alert."""
    decoder, found, index = json.JSONDecoder(), [], 0
    text = output.strip()
    while index < len(text):
        document, index = decoder.raw_decode(text, index)
        found.append(document)
        while index < len(text) and text[index].isspace():
            index += 1
    return found


def _declare(service: ServiceProcess, title: str) -> pb.Incident:
    with service.channel() as channel:
        stub = incident_pb2_grpc.IncidentServiceStub(channel)
        return stub.DeclareIncident(
            pb.DeclareIncidentRequest(
                type="server_crash",
                title=title,
                factors=t.RiskFactors(users_affected=50_000, core_system=1.0),
            ),
            metadata=(("idempotency-key", title),),
        ).incident


@pytest.mark.timeout(300)
def test_oncall_watch_survives_a_restart_without_loss_or_duplicates(tmp_path: Path) -> None:
    nats = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port()).start()
    (tmp_path / "data").mkdir()
    service = ServiceProcess(
        data_dir=tmp_path / "data",
        nats_url=nats.url,
        service="incident",
        extra_env={"CAREOPS_SHUTDOWN_GRACE_SECONDS": "0"},
    )
    gateway = gateway_process(
        tmp_path / "gateway", nats.url, signs_for=service, incident=service.address
    )
    out = tmp_path / "watch.out"
    watcher: subprocess.Popen[bytes] | None = None
    try:
        service.start()
        gateway.start()
        before = _declare(service, "Array lost before the restart")
        before_pages = [p.page_id for p in before.pages if p.team_id == TEAM]
        # Through the gateway: the stream breaks there too when the service restarts.
        env = {**cli_env(gateway, "oncall", subject="oncall-1"), "COLUMNS": "200"}
        with out.open("wb") as sink, (tmp_path / "watch.err").open("wb") as err:
            watcher = subprocess.Popen(
                [sys.executable, "-m", "careops_cli", "oncall", "watch", "--team", TEAM]
                + ["--count", str(len(before_pages) + 2), "--json"],
                env=env,
                stdout=sink,
                stderr=err,
            )
        assert eventually_sync(lambda: before.incident_id in out.read_text()), out.read_text()

        # The watcher is frozen while the service restarts and a page comes and goes.
        watcher.send_signal(signal.SIGSTOP)
        assert service.terminate() == 0
        service.start()
        during = _declare(service, "Array lost during the restart")
        [page] = [p for p in during.pages if p.team_id == TEAM]
        with service.channel(on_call(page.member_id)) as channel:
            incident_pb2_grpc.IncidentServiceStub(channel).AcknowledgePage(
                pb.AcknowledgePageRequest(page_id=page.page_id, member_id=page.member_id),
                metadata=(("idempotency-key", "ack-during"),),
            )
        watcher.send_signal(signal.SIGCONT)

        assert watcher.wait(120) == 0, (tmp_path / "watch.err").read_text()
        shown = [(a["kind"], a["page_id"]) for a in _alerts(out.read_text())]
        assert shown == [("ALERT_KIND_PAGE", p) for p in before_pages] + [
            ("ALERT_KIND_PAGE", page.page_id),
            ("ALERT_KIND_ACKNOWLEDGED", page.page_id),
        ], out.read_text()
    finally:
        if watcher is not None and watcher.poll() is None:
            watcher.send_signal(signal.SIGCONT)
            watcher.kill()
            watcher.wait()
        gateway.kill()
        service.kill()
        nats.stop()
