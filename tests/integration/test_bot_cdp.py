"""The bot's CDP client against real Chromium: pages, bindings, errors, crashes and cleanup."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from meetingbot_bot import cdp, oom
from meetingbot_bot.browser import FLAGS, chromium_path
from meetingbot_bot.page import PageServer
from tests.support.operator_fixtures import wait_for


@pytest.fixture
async def browser() -> AsyncIterator[cdp.Browser]:
    async with cdp.launch(chromium_path(), FLAGS) as launched:
        yield launched


async def test_the_browser_tree_is_the_kernels_first_choice_for_an_oom_kill(
    browser: cdp.Browser,
) -> None:
    """Chromium lowers its own scores (0 for the browser); the bot raises the whole tree, so a
    container over its memory limit loses the browser and the bot lives to report OOMKilled."""
    page = await browser.new_page()
    assert oom.prefer_for_oom_kill(browser.pid) > 0
    await page.goto("data:text/html,<title>later</title>")  # processes started since
    oom.prefer_for_oom_kill(browser.pid)
    tree = oom.process_tree(browser.pid)
    assert len(tree) > 3, "no zygotes or renderers"
    scores = {int(Path(f"/proc/{p}/oom_score_adj").read_text()) for p in tree}
    assert scores == {oom.OOM_SCORE_ADJ_MAX}
    assert int(Path("/proc/self/oom_score_adj").read_text()) < oom.OOM_SCORE_ADJ_MAX


def group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_page_evaluates_calls_and_reports_through_a_binding(browser: cdp.Browser) -> None:
    page = await browser.new_page()
    events: list[tuple[Any, ...]] = []
    await page.expose_function("report", lambda *args: events.append(args))
    await page.goto("data:text/html,<title>bot</title><script>report('loaded', {n: 1})</script>")
    assert await page.evaluate("document.title") == "bot"
    assert await page.evaluate("Promise.resolve(6 * 7)") == 42
    # The argument travels as JSON: quotes and markup stay data, never code.
    tricky = {"name": "O'Brien </script>\"", "n": [1, None]}
    assert await page.call("p => ({...p, seen: true})", tricky) == {**tricky, "seen": True}
    await page.evaluate("report('later', [1, 2])")
    await wait_for(lambda: len(events) == 2, 5, what="two events")
    assert events == [("loaded", {"n": 1}), ("later", [1, 2])]
    assert await page.wait_for("window.done || (window.done = 'yes')") == "yes"


async def test_a_page_error_names_the_error_and_never_the_argument(browser: cdp.Browser) -> None:
    page = await browser.new_page()
    with pytest.raises(cdp.CdpError) as raised:
        await page.call("p => { throw new TypeError('bad join') }", {"zak": "secret-zak-value"})
    assert "TypeError: bad join" in str(raised.value)
    assert "secret-zak-value" not in str(raised.value)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(cdp.CdpError, match="ERR_CONNECTION_REFUSED"):
        await page.goto(f"http://127.0.0.1:{port}/")
    with pytest.raises(TimeoutError):
        await page.wait_for("false", timeout=0.5)


async def test_a_browser_that_stops_answering_ends_every_call_at_its_deadline(
    browser: cdp.Browser,
) -> None:
    """The whole browser frozen (SIGSTOP to its process group): its pipe stays open and
    nothing answers. Each call of the client ends with BrowserUnresponsive, naming the command
    and its deadline, and none waits beyond it; a wait_for whose condition stays false ends
    with TimeoutError, again and again (a lost cancellation once made it loop for ever)."""
    page = await browser.new_page()
    await page.goto("data:text/html,<title>bot</title>")
    for _ in range(20):
        with pytest.raises(TimeoutError):
            await page.wait_for("false", timeout=0.2)
    os.killpg(browser.pid, signal.SIGSTOP)
    try:
        calls = {
            "Runtime.evaluate": page.evaluate("1", timeout=0.5),
            "Page.navigate": page.goto("data:text/html,x", timeout=0.5),
            "wait_for": page.wait_for("true", timeout=0.5),
            "Target.createTarget": browser.new_page(timeout=0.5),
            "Page.captureScreenshot": page.send("Page.captureScreenshot", timeout=0.5),
        }
        for what, call in calls.items():
            task = asyncio.ensure_future(call)
            # The guard is asyncio.wait: it cannot lose the result the way wait_for could.
            done, _ = await asyncio.wait({task}, timeout=30)
            assert done, f"{what} waited past its deadline"
            with pytest.raises(cdp.BrowserUnresponsive) as unresponsive:
                task.result()
            assert "no reply in" in str(unresponsive.value), what
    finally:
        os.killpg(browser.pid, signal.SIGCONT)


async def test_a_renderer_crash_is_reported(browser: cdp.Browser) -> None:
    page = await browser.new_page()
    crashes: list[str] = []
    page.on_crash(crashes.append)
    await page.goto("data:text/html,hello")
    # Page.crash replies only if the renderer survives; it does not.
    with pytest.raises(cdp.CdpError):
        await page.send("Page.crash", timeout=2)
    await wait_for(lambda: crashes, 10, what="the crash")
    assert crashes == ["the page crashed"]


async def test_a_killed_browser_fails_what_waits_and_is_reported() -> None:
    crashes: list[str] = []
    async with cdp.launch(chromium_path(), FLAGS) as browser:
        page = await browser.new_page()
        page.on_crash(crashes.append)
        waiting = asyncio.create_task(page.evaluate("new Promise(() => {})"))
        await asyncio.sleep(0.2)
        os.kill(browser.pid, signal.SIGKILL)
        with pytest.raises(cdp.BrowserClosed):
            await asyncio.wait_for(waiting, 10)
        assert crashes == ["the browser exited"]
        with pytest.raises(cdp.BrowserClosed):
            await page.evaluate("1")
    # Renderers and zygotes of a killed browser are gone too, with the profile.
    await wait_for(lambda: not group_alive(browser.pid), 10, what="no process left")
    assert not browser.profile.exists()


async def test_close_ends_every_process_and_removes_the_profile(tmp_path: Path) -> None:
    async with cdp.launch(chromium_path(), FLAGS) as browser:
        page = await browser.new_page()
        crashes: list[str] = []
        page.on_crash(crashes.append)
        await page.goto("data:text/html,<body style='background:red'>shot</body>")
        shot = tmp_path / "shot.png"
        await page.screenshot(shot)
        assert shot.read_bytes().startswith(b"\x89PNG")
        assert browser.profile.is_dir()
    # SIGKILLed leftovers linger as zombies until init reaps them: a moment, not forever.
    await wait_for(lambda: not group_alive(browser.pid), 10, what="no process left")
    assert not browser.profile.exists()
    # A requested close is not a crash.
    assert crashes == []


async def test_a_missing_browser_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError):
        async with cdp.launch("/nonexistent/chromium", FLAGS):
            pass


async def test_the_bots_flags_keep_what_the_sdk_needs(browser: cdp.Browser, tmp_path: Path) -> None:
    """Memory-saving flags must not take away what the Meeting SDK uses: WebGL (its video
    renderer), WebAssembly (its codecs), Web Audio, and a camera and microphone (fake).
    `--disable-software-rasterizer`, for one, saves 14 MB and takes WebGL away."""
    page = await browser.new_page()
    # Served from loopback, as the bot's page is: a secure context, where media devices exist.
    (tmp_path / "index.html").write_text("<title>sdk</title>")
    async with PageServer(tmp_path) as server:
        await page.goto(server.url)
        found = await page.evaluate(
            """(async () => {
                const gl = document.createElement('canvas').getContext('webgl2');
                const media = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
                return {
                    webgl2: !!gl,
                    wasm: typeof WebAssembly.instantiate === 'function',
                    audio: typeof AudioContext === 'function',
                    tracks: media.getTracks().map(t => t.kind).sort(),
                };
            })()"""
        )
    assert found == {"webgl2": True, "wasm": True, "audio": True, "tracks": ["audio", "video"]}
