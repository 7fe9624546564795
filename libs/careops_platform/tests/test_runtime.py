"""The process runtime: a serving service's heap is settled for the cyclic collector."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import uvloop
from pydantic import ValidationError

from careops_platform import service as skeleton
from careops_platform.runtime import SERVING_GC_THRESHOLDS, event_loop_factory, settle_heap
from careops_platform.settings import ServiceSettings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """The test process's collector as it was before (settle_heap is process-wide)."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settling_freezes_what_exists_and_collects_young_objects_less_often(
    restored_gc: None,
) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    survivor = [object()]  # tracked by the collector: frozen with the rest
    settle_heap()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == SERVING_GC_THRESHOLDS
    assert SERVING_GC_THRESHOLDS[0] > 700
    assert survivor  # nothing alive was freed


async def test_serve_settles_the_heap_once_the_service_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []

    class Started(skeleton.Service[Any]):
        async def start(self) -> None:
            events.append("started")

        async def stop(self) -> None:
            events.append("stopped")

    Step = Callable[[], Awaitable[None]]

    async def run(start: Step, stop: Step) -> None:
        await start()  # as run_until_signalled, with the signal arriving at once
        await stop()

    monkeypatch.setattr(skeleton, "run_until_signalled", run)
    monkeypatch.setattr(skeleton, "settle_heap", lambda: events.append("settled"))
    await skeleton.serve(Started(settings=None))
    assert events == ["started", "settled", "stopped"]


@pytest.mark.parametrize(
    ("name", "kind"), [("uvloop", uvloop.Loop), ("asyncio", asyncio.BaseEventLoop)]
)
def test_the_event_loop_setting_picks_the_loop_a_process_runs(name: str, kind: type) -> None:
    loop = event_loop_factory(name)()
    try:
        assert isinstance(loop, kind)
        assert name == "uvloop" or not isinstance(loop, uvloop.Loop)
        assert loop.run_until_complete(asyncio.sleep(0, "ran")) == "ran"
    finally:
        loop.close()


def test_an_unknown_event_loop_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="event_loop"):
        ServiceSettings(event_loop="trio")  # type: ignore[arg-type]
    assert ServiceSettings().event_loop == "uvloop"
