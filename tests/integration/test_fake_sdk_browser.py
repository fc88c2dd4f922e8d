"""The simulator's fake Meeting SDK in real Chromium: the Component View surface the bot page
uses, backed by the meeting side."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_operator.zoom import SdkCredentials, sdk_signature

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, zoomsim: ZoomSim) -> Iterator[Page]:
    page = browser.new_page()
    page.set_content(
        f"""<div id="root"></div>
        <script src="{zoomsim.url}/sim/sdk/zoom-meeting-embedded.js"></script>
        <script>
          window.events = [];
          window.client = ZoomMtgEmbedded.createClient();
          ['connection-change', 'user-added', 'user-removed', 'user-updated'].forEach(
            name => client.on(name, payload => events.push({{name, payload}})));
        </script>"""
    )
    page.evaluate("client.init({zoomAppRoot: document.getElementById('root')})")
    yield page
    page.close()


def join(page: Page, account: dict[str, Any], number: str, **params: Any) -> Any:
    signature = sdk_signature(
        SdkCredentials(sdk_key=account["sdk_key"], sdk_secret=account["sdk_secret"]), number
    ).get_secret_value()
    return page.evaluate(
        "params => client.join(params).then(() => 'joined', e => e)",
        {"signature": signature, "meetingNumber": number, **params},
    )


def test_markup_in_a_display_name_is_shown_literally(
    page: Page, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    name = '</script><img src=x onerror="window.pwned=1">Bot'
    number = sim.create_meeting(zoom_account["id"])["number"]
    assert join(page, zoom_account, number, userName=name) == "joined"
    assert page.locator("ul.zoomsim-participants li").all_text_contents() == [name]
    assert page.locator("img").count() == 0
    assert page.evaluate("window.pwned === undefined")
    assert [p["displayName"] for p in sim.participants(number, "in_meeting")] == [name]


def test_join_failure_rejects_with_zooms_shape(
    page: Page, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    number = sim.create_meeting(zoom_account["id"], passcode="right")["number"]
    failure = join(page, zoom_account, number, userName="Bot", password="wrong")
    assert failure == {
        "type": "JOIN_MEETING_FAILED",
        "reason": "Wrong meeting passcode.",
        "errorCode": 3004,
    }
    assert page.evaluate("events.at(-1)") == {
        "name": "connection-change",
        "payload": {"state": "Fail", "reason": "Wrong meeting passcode.", "errorCode": 3004},
    }


def test_waiting_room_roster_and_end(
    page: Page, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    number = sim.create_meeting(zoom_account["id"], waiting_room=True)["number"]
    assert join(page, zoom_account, number, userName="Bot") == "joined"
    assert page.evaluate("client.getCurrentUser().isHold") is True
    sim.admit(number)
    page.wait_for_function("client.getCurrentUser().isHold === false", timeout=5000)
    sim.add_participant(number, "Dana")
    page.wait_for_function("client.getAttendeeslist().length === 2", timeout=5000)
    sim.end_meeting(number)
    page.wait_for_function(
        "events.some(e => e.name === 'connection-change' && e.payload.state === 'Closed')",
        timeout=5000,
    )
    closed = page.evaluate("events.filter(e => e.payload.state === 'Closed')[0].payload")
    assert closed == {"state": "Closed", "reason": "ended by host"}


def test_leave_meeting_is_seen_by_the_meeting(
    page: Page, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    number = sim.create_meeting(zoom_account["id"])["number"]
    assert join(page, zoom_account, number, userName="Bot") == "joined"
    page.evaluate("client.leaveMeeting()")
    assert [p["leftReason"] for p in sim.participants(number, "left")] == ["left"]


def test_client_side_refusals_follow_the_bundle(
    page: Page, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    """5013 before any network call for zak with obfToken or an empty name; 5012 for a second
    join (the 6.2.0 bundle's CLIENT_INVALID_JOIN_PARAMETER and CLIENT_DUPLICATED_JOIN)."""
    number = sim.create_meeting(zoom_account["id"])["number"]
    both = join(page, zoom_account, number, userName="Bot", zak="z", obfToken="o")
    nameless = join(page, zoom_account, number, userName="")
    assert (both["errorCode"], nameless["errorCode"]) == (5013, 5013)
    assert sim.participants(number) == []  # refused before reaching Zoom
    assert join(page, zoom_account, number, userName="Bot") == "joined"
    assert join(page, zoom_account, number, userName="Bot")["errorCode"] == 5012
    assert len(sim.participants(number, "in_meeting")) == 1


def test_the_client_exposes_only_the_sdks_members(page: Page) -> None:
    """The page cannot come to rely on helpers the real client does not have."""
    members = page.evaluate(
        "Object.getOwnPropertyNames(Object.getPrototypeOf(client)).filter(n => n !== 'constructor')"
    )
    assert set(members) == {
        "on",
        "off",
        "init",
        "join",
        "leaveMeeting",
        "getCurrentUser",
        "getAttendeeslist",
        "mediaCapturePermission",
        "sendChat",
    }
