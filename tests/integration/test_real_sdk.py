"""The real @zoom/meetingsdk, loaded by the bot's page from local files in Chromium, with the
network shut: every client function and event the page uses exists in the real package."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import Route, async_playwright

from devenv.zoomsim.sdk import STATIC
from meetingbot_bot.browser import FLAGS, chromium_path
from meetingbot_bot.machine import CONNECTION_STATES, READ_FIELDS
from meetingbot_bot.page import PageServer, web_dir

SDK_DIST = web_dir() / "node_modules" / "@zoom" / "meetingsdk" / "dist"


@pytest.fixture(scope="module")
def installed() -> Path:
    if not SDK_DIST.is_dir():
        pytest.fail("@zoom/meetingsdk is not installed: run `make web` (npm ci in bot-image/web)")
    return SDK_DIST


async def test_the_page_and_the_real_sdk_agree(installed: Path) -> None:
    outside: list[str] = []

    async def only_loopback(route: Route) -> None:
        if route.request.url.startswith("http://127.0.0.1:"):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    async with PageServer() as server, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), args=FLAGS)
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.route("**/*", only_loopback)
        await page.goto(server.url)
        await page.wait_for_function(
            "(window.meetingbot && window.meetingbot.ready) || window.meetingbotLoad.error",
            timeout=60000,
        )
        assert await page.evaluate("window.meetingbotLoad") == {"sdk": "local", "error": None}
        surface = await page.evaluate(
            """async () => {
              const client = ZoomMtgEmbedded.createClient();
              const missing = meetingbot.clientFunctions.filter(name => typeof client[name] !== 'function');
              await client.init(meetingbot.initOptions());  // as bot.js does before its listeners
              const refused = [];
              for (const name of meetingbot.events) {
                try { client.on(name, () => {}); client.off(name, () => {}); } catch (e) { refused.push(name + ': ' + e); }
              }
              return {missing, refused, functions: meetingbot.clientFunctions, events: meetingbot.events};
            }"""
        )
        await browser.close()
    assert surface["functions"] and surface["events"]
    assert surface["missing"] == []
    assert surface["refused"] == []
    bundle = (installed / "zoom-meeting-embedded-ES5.min.js").read_text(errors="replace")
    for event in surface["events"]:
        assert f'"{event}"' in bundle, f"event {event} not in the SDK"
    # The Closed reasons the bot's state machine reads are the SDK's own strings (removal is
    # spelt "expeled" there), and roster events' waiting-room field is bHold.
    for reason in ("ended by host", "kicked by host", "expeled by host"):
        assert f'"{reason}"' in bundle
    assert "bHold" in bundle
    # The codes the error map reads meaning into are the bundle's own (reasons.py).
    for name, code in (
        ("UserHasBeenRemoved", 3009),
        ("InvalidParameter", 4003),
        ("SESSION_ENDED", 4004),
        ("CLIENT_DUPLICATED_JOIN", 5012),
        ("CLIENT_INVALID_JOIN_PARAMETER", 5013),
    ):
        assert f"{name}={code}]" in bundle, name
    assert '"bot user kicked due to master leaving"' in bundle  # 4019
    assert '{"recording token expired":4016}' in bundle
    # Every payload field and connection state the bot's machine reads is the bundle's own.
    for source, fields in READ_FIELDS.items():
        for name in fields:
            assert re.search(rf"[.\"]{name}\b", bundle), f"{source}: {name} not in the SDK"
    for state in CONNECTION_STATES:
        assert f'"{state}"' in bundle, state
    assert errors == []
    assert outside == [], f"the page reached outside: {outside[:3]}"


def test_the_fake_sdk_offers_the_same_surface() -> None:
    """The simulator's fake defines every function and event the page uses (static check)."""
    fake = (STATIC / "zoom-meeting-embedded.js").read_text()
    page = (web_dir() / "bot.js").read_text()
    functions = page.split("CLIENT_FUNCTIONS = [")[1].split("]")[0]
    for name in [n.strip().strip("'") for n in functions.split(",")]:
        assert f"Client.prototype.{name} = function" in fake, name
    events = page.split("EVENTS = [")[1].split("]")[0]
    for name in [n.strip().strip("'") for n in events.split(",")]:
        assert f"'{name}'" in fake or "emit(message.event" in fake, name
    asyncio.get_event_loop_policy()  # keep the import used under every configuration
