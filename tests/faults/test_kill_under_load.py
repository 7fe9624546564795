"""kill -9 of each service and of NATS under steady load (clients resend with the same
idempotency-key until acknowledged): every acknowledged command is in the log exactly once,
and every read model equals its rebuild."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.platform import (
    SERVICES,
    assert_exactly_once,
    assert_read_models_equal_rebuilds,
    progress,
    running_platform,
)
from tests.support import fault_scale


def waves(scale: int) -> list[tuple[str, ...]]:
    """Who is killed together: at scale 1 two services at a time (a harsher fault, and half
    the restarts), then NATS; above it each service alone, `scale` times over."""
    if scale == 1:
        return [("ticketing", "quality"), ("customer", "incident"), ("nats",)]
    return [(victim,) for _ in range(scale) for victim in (*SERVICES, "nats")]


# Processes start slowly on a loaded machine: a wide bound, scaled with the sizes.
@pytest.mark.timeout(300 * fault_scale())
def test_kill_9_of_each_service_and_of_nats_under_load(tmp_path: Path) -> None:
    scale = fault_scale()
    with running_platform(tmp_path) as platform:
        with platform.load("kill") as writers:
            for victims in waves(scale):
                progress(writers, at_least=2 * scale)  # the kill lands under load
                platform.crash(*victims)
            progress(writers, at_least=2 * scale)  # and the platform takes commands after it
        assert_exactly_once(platform, writers)
        assert_read_models_equal_rebuilds(platform)
