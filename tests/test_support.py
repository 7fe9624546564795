"""The test harness itself: a service process that dies at start-up is reported at once."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from careops_eventstore.nats_embedded import EmbeddedNats

from tests.support import ServiceProcess


def test_a_service_that_exits_at_start_up_fails_its_start_at_once(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        service = ServiceProcess(tmp_path / "ticketing", nats_server.url, service="ticketing")
        service.metrics_port = taken.getsockname()[1]  # the service cannot bind it and exits
        service.data_dir.mkdir()
        # Far longer than the test's own timeout: only noticing the exit can end the wait.
        with pytest.raises(RuntimeError, match="exit code"):
            service.start(timeout=600)
