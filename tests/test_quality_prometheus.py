"""End to end: ticketing and quality as real processes, a real Prometheus server scraping
quality's /metrics every second, and PromQL returning the CSAT of surveys submitted over gRPC
(one through the stub, one through `careops survey submit`)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from careops.quality.v1 import quality_pb2 as qpb
from careops.quality.v1 import quality_pb2_grpc
from careops.ticketing.v1 import ticketing_pb2 as tpb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as tt
from careops_eventstore.nats_embedded import EmbeddedNats, free_port

from tests.support import NotReached, ServiceProcess, cli_env, eventually_sync, gateway_process

PROMETHEUS = "/usr/bin/prometheus"  # Debian package `prometheus` (scripts/system-deps.sh)
DASHBOARD = (
    Path(__file__).resolve().parents[1] / "charts/careops/files/dashboards/careops-quality.json"
)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A Prometheus server whose scrape targets are written later into targets.json."""
    port = free_port()
    targets = tmp_path / "targets.json"
    targets.write_text("[]")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: careops-quality\n"
        "    file_sd_configs: [{files: ['" + str(targets) + "'], refresh_interval: 1s}]\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=log,
    )
    try:
        yield port, targets
    finally:
        process.terminate()
        process.wait(20)
        log.close()


def promql(port: int, query: str) -> list[dict[str, object]]:
    """Returns the result vector of an instant query ([] while Prometheus is not up yet)."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{query}: {error.read().decode()}") from error
    except OSError:
        return []
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def resolved_ticket(
    stub: ticketing_pb2_grpc.TicketingServiceStub, customer: str
) -> tuple[str, int]:
    opened = stub.OpenTicket(
        tpb.OpenTicketRequest(
            customer_id=customer,
            channel=tt.CHANNEL_CHAT,
            type=tt.TICKET_TYPE_CONSULTATION,
            priority=tt.PRIORITY_NORMAL,
            subject="where is my parcel",
        )
    )
    ticket_id = opened.ticket.ticket_id
    stub.AssignTicket(tpb.AssignTicketRequest(ticket_id=ticket_id, agent_id="agent-li"))
    stub.AddReply(
        tpb.AddReplyRequest(ticket_id=ticket_id, author=tt.AUTHOR_AGENT, body="on its way")
    )
    resolved = stub.ResolveTicket(tpb.ResolveTicketRequest(ticket_id=ticket_id))
    return ticket_id, int(resolved.sequence)


def test_prometheus_scrapes_the_csat_of_surveys_submitted_over_grpc(
    tmp_path: Path, prometheus: tuple[int, Path]
) -> None:
    nats = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port())
    nats.start()
    for name in ("ticketing", "quality"):
        (tmp_path / name).mkdir()
    ticketing = ServiceProcess(tmp_path / "ticketing", nats.url)
    quality = ServiceProcess(tmp_path / "quality", nats.url, service="quality")
    gateway = gateway_process(
        tmp_path / "gateway", nats.url, signs_for=quality, quality=quality.address
    )
    # Prometheus finds its target while the services start (it scrapes again each second).
    prom_port, targets = prometheus
    targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{quality.metrics_port}"]}]))
    try:
        ticketing.launch()  # starting together; the gateway after quality (its key)
        quality.start()
        ticketing.wait_serving()
        gateway.start()
        with ticketing.channel() as channel:
            stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
            happy, _ = resolved_ticket(stub, "C-1")
            unhappy, sequence = resolved_ticket(stub, "C-2")
        with quality.channel() as channel:
            survey = quality_pb2_grpc.QualityServiceStub(channel).SubmitSurvey(
                qpb.SubmitSurveyRequest(
                    ticket_id=happy, csat=5, nps=9, comment="great", ticketing_min_sequence=sequence
                )
            )
        assert survey.survey.csat == 5
        # The CLI cannot wait for a sequence, but the projection has passed both tickets now.
        env = cli_env(gateway, "supervisor", subject="supervisor-wang")  # the CLI's one door
        cli = [sys.executable, "-m", "careops_cli", "survey", "submit", unhappy]
        done = subprocess.run(
            [*cli, "--csat", "2", "--nps", "3", "--comment", "太差了"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "follow-up due" in done.stdout
        values: dict[str, float] = {}
        expected = {"careops_quality_csat_score": 3.5, "careops_quality_csat_ratio": 0.5}

        def scraped() -> bool:
            for name in expected:
                result = promql(prom_port, f'{name}{{window="1h",channel="all"}}')
                if result:
                    values[name] = float(result[0]["value"][1])  # type: ignore[index]
            return values == expected

        with contextlib.suppress(NotReached):  # the assertion below shows what was scraped
            eventually_sync(scraped, timeout=40, interval=0.5, what="Prometheus scraped CSAT")
        assert values == expected
        # Every query of the quality dashboard is valid PromQL (a bad one raises), and the
        # dashboard's CSAT stat shows what was submitted.
        queries = [expr.replace("$window", "1h") for expr in dashboard_queries()]
        for expr in queries:
            promql(prom_port, expr)
        csat_stat = next(expr for expr in queries if "csat_score" in expr)
        assert float(promql(prom_port, csat_stat)[0]["value"][1]) == 3.5  # type: ignore[index]

        def careops(*args: str) -> dict[str, object]:
            done = subprocess.run(
                [sys.executable, "-m", "careops_cli", *args, "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            return dict(json.loads(done.stdout))

        listed = careops("followups", "list")
        assert [f["ticket_id"] for f in listed["follow_ups"]] == [unhappy]  # type: ignore[attr-defined]
        kpis = careops("kpi", "show", "--channel", "chat", "--days", "1")
        assert (kpis["tickets_opened"], kpis["csat_mean"]) == ("2", 3.5)  # uint64 -> JSON string
        card = careops("scorecard", "--agent", "agent-li")
        # CSAT 1/2 and NPS 0 weigh .3 and .1 at 0.5; no reopen, FCR, SLA all 1 (docs/kpis.md).
        assert (card["agent_id"], card["quality_score"]) == ("agent-li", 80.0)
    finally:
        gateway.kill()
        quality.kill()
        ticketing.kill()
        nats.stop()
