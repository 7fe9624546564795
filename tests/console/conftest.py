"""Fixtures of the console's browser tests: one `careops up` and one Chromium for the whole
package (per module they took ~11 s to start and ~3 s to stop). Tests stay independent: each
sets its own scene, and one that changes the SLA policy in force asks for `sla_policy_kept`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.console.platform import CHROMIUM, ConsolePlatform, console_platform

TICKETING = "careops.ticketing.v1.TicketingService"


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsolePlatform]:
    with console_platform(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), "Chromium missing: run scripts/system-deps.sh"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def sla_policy_kept(platform: ConsolePlatform) -> Iterator[str]:
    """For a test that puts another SLA policy: the document in force before it is put back
    after it (a revert to that revision, whatever the test applied). Yields the document."""
    admin = platform.token("admin", "admin")
    before: str = platform.call(f"{TICKETING}/GetSlaPolicy", {}, admin)["policy"]["document"]
    yield before
    platform.call(
        f"{TICKETING}/PutSlaPolicy",
        {"document": before, "reason": "a console test puts back the policy it changed"},
        admin,
    )
    after = platform.call(f"{TICKETING}/GetSlaPolicy", {}, admin)["policy"]["document"]
    assert after == before, "the SLA policy in force was not put back"
