"""One bot run: page server, Chromium, join, stay, leave; the machine decides, this does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from meetingbot_bot import cdp
from meetingbot_bot.browser import FLAGS, chromium_path
from meetingbot_bot.cdp import BrowserUnresponsive, CdpError, Page
from meetingbot_bot.machine import Machine
from meetingbot_bot.oom import OomWatch, prefer_for_oom_kill
from meetingbot_bot.page import PageServer
from meetingbot_bot.reporter import Reporter
from meetingbot_contract import BotReport, BotResult, BotState, ExitCode, JoinConfig

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0
# Touched on every tick; the image's HEALTHCHECK reads its age.
HEARTBEAT = Path(os.environ.get("MEETINGBOT_HEARTBEAT", "/tmp/meetingbot-heartbeat"))  # noqa: S108


@dataclass
class Options:
    chromium: str = field(default_factory=chromium_path)
    # Tests only: load this script instead of the real SDK (the Zoom simulator's fake).
    sdk_url: str | None = field(default_factory=lambda: os.environ.get("MEETINGBOT_SDK_URL"))
    screenshot_dir: Path | None = field(
        default_factory=lambda: (
            Path(d) if (d := os.environ.get("MEETINGBOT_SCREENSHOT_DIR")) else None
        )
    )
    page_timeout: float = 30.0
    join_timeout: float = 90.0
    leave_timeout: float = 10.0


def now() -> datetime:
    return datetime.now(UTC)


class Bot:
    def __init__(self, config: JoinConfig, options: Options, stop: asyncio.Event) -> None:
        self.config = config
        self.options = options
        self.stop = stop
        self.machine = Machine(config.leave, config.display_name)
        self.reporter = Reporter(config.report)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._published: tuple[Any, ...] | None = None
        self.oom = OomWatch()
        self.browser_pid: int | None = None

    def publish(self) -> None:
        m = self.machine
        snapshot = (m.state, m.reason, m.joined_at, len(m.people()))
        if snapshot == self._published:
            return
        self._published = snapshot
        log.info(
            "state", extra={"state": m.state.value, "reason": m.reason, "participants": snapshot[3]}
        )
        self.reporter.report(
            BotReport(
                attempt=self.config.bot.attempt,
                state=m.state,
                reason=m.reason if m.state in (BotState.LEAVING, BotState.ENDED) else None,
                message=m.message if m.state in (BotState.LEAVING, BotState.ENDED) else None,
                joined_at=m.joined_at,
                left_at=m.left_at,
                participants=snapshot[3],
            )
        )

    def result(self) -> BotResult:
        m = self.machine
        return BotResult(
            attempt=self.config.bot.attempt,
            reason=m.reason or "BotCrashed",
            message=(m.message or "")[:1024] or None,
            joined_at=m.joined_at,
            left_at=m.left_at,
        )

    async def run(self) -> Machine:
        self.reporter.start()
        self.publish()
        try:
            async with PageServer() as server, cdp.launch(self.options.chromium, FLAGS) as browser:
                self.browser_pid = browser.pid
                prefer_for_oom_kill(browser.pid)
                await self._meeting(await browser.new_page(), server.url)
        except BrowserUnresponsive as error:
            # Its message names the command and the deadline, never an argument.
            log.error("the browser stopped answering", extra={"error": str(error)})
            self._crashed(f"the browser stopped answering ({error})")
        except (CdpError, OSError, TimeoutError) as error:
            log.exception("the browser failed")
            self._crashed(f"browser failed: {type(error).__name__}")
        finally:
            self.publish()
            await self.reporter.flush(timeout=3.0)
            await self.reporter.close()
        return self.machine

    def _crashed(self, message: str) -> None:
        # The kernel's count says whether the browser died of the container's memory limit.
        self.machine.crashed(message, now(), self.oom.killed_since_start())

    async def _meeting(self, page: Page, url: str) -> None:
        await page.expose_function(
            "meetingbotEvent", lambda name, payload: self.events.put_nowait((name, payload))
        )
        page.on_crash(lambda reason: self.events.put_nowait(("page-crash", reason)))
        if self.options.sdk_url:
            url += "?sdk=" + quote(self.options.sdk_url, safe="")
        await page.goto(url, timeout=self.options.page_timeout)
        ready = "(window.meetingbot && window.meetingbot.ready)"
        failed = "(window.meetingbotLoad && window.meetingbotLoad.error)"
        await page.wait_for(f"{ready} || {failed}", timeout=self.options.page_timeout)
        problem = await page.evaluate("window.meetingbotLoad.error")
        if problem:
            self._crashed(str(problem))
            return
        self.machine.joining(now())
        self.publish()
        if not await self._join(page):
            await self._screenshot(page)
            return
        while self.machine.state != BotState.ENDED:
            if self.machine.state == BotState.LEAVING:
                await self._leave(page)
                break
            await self._next(page)
        if self.machine.exit_code != ExitCode.LEFT:
            await self._screenshot(page)

    async def _join(self, page: Page) -> bool:
        params = {
            "signature": self.config.signature.get_secret_value(),
            "meetingNumber": self.config.meeting.number,
            "userName": self.config.display_name,
            "password": self.config.meeting.passcode.get_secret_value(),
            "zak": self.config.zak.get_secret_value() if self.config.zak else None,
            "obfToken": self.config.obf_token.get_secret_value() if self.config.obf_token else None,
        }
        joining = asyncio.create_task(
            # The outer wait below is the join's deadline; this one only bounds the command.
            page.call(
                "params => window.meetingbot.join(params)",
                params,
                self.options.join_timeout + self.options.leave_timeout,
            )
        )
        stopping = asyncio.create_task(self.stop.wait())
        done, _ = await asyncio.wait(
            {joining, stopping},
            timeout=self.options.join_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        stopping.cancel()
        if joining not in done and self.stop.is_set():
            # SIGTERM while joining: let the join finish (briefly), so that a bot that did get
            # in leaves properly instead of dropping out.
            done, _ = await asyncio.wait({joining}, timeout=self.options.leave_timeout)
        if joining not in done:
            joining.cancel()
            if self.stop.is_set():
                self.machine.sigterm(now())
                self.machine.left(now())
            else:
                self._crashed("the join did not finish in time")
            return False
        result = joining.result()
        if not result.get("ok"):
            self.machine.join_failed(
                int(result.get("errorCode") or 0), str(result.get("reason")), now()
            )
            return False
        self.machine.joined(result.get("currentUser") or {}, result.get("attendees") or [], now())
        self.publish()
        return True

    async def _next(self, page: Page) -> None:
        """Wait for an SDK event, SIGTERM or the next tick, and apply it."""
        if self.stop.is_set():
            self.machine.sigterm(now())
            return
        getting = asyncio.create_task(self.events.get())
        stopping = asyncio.create_task(self.stop.wait())
        done, _ = await asyncio.wait(
            {getting, stopping}, timeout=TICK_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        for task in (getting, stopping):
            if task not in done:
                task.cancel()
        if getting in done:
            name, payload = getting.result()
            if name == "page-crash":
                self._crashed(str(payload))
            else:
                self.machine.event(name, payload, now())
        if stopping in done:
            self.machine.sigterm(now())
        self.machine.tick(now())
        self.publish()
        if self.browser_pid is not None:
            prefer_for_oom_kill(self.browser_pid)  # the renderers Chromium started since
        with contextlib.suppress(OSError):
            HEARTBEAT.touch()  # noqa: ASYNC240 - a touch of a tmpfs file, once a second

    async def _leave(self, page: Page) -> None:
        self.publish()
        with contextlib.suppress(CdpError, TimeoutError):
            await page.evaluate("window.meetingbot.leave()", self.options.leave_timeout)
        self.machine.left(now())

    async def _screenshot(self, page: Page) -> None:
        directory = self.options.screenshot_dir
        if directory is None:
            return
        path = directory / f"failure-attempt-{self.config.bot.attempt}.png"
        with contextlib.suppress(CdpError, OSError, TimeoutError):
            directory.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path)
            log.info("screenshot saved", extra={"path": str(path)})
