"""One bot run: page server, Chromium, join, stay, leave; the machine decides, this does."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from meetingbot_bot import cdp
from meetingbot_bot.browser import FLAGS, chromium_path
from meetingbot_bot.capture import Capture, Command
from meetingbot_bot.cdp import BrowserUnresponsive, CdpError, Page
from meetingbot_bot.machine import Machine
from meetingbot_bot.oom import OomWatch, prefer_for_oom_kill
from meetingbot_bot.page import PageServer
from meetingbot_bot.reporter import Reporter
from meetingbot_bot.spool import Spool
from meetingbot_bot.stream import LiveStream, hello_for
from meetingbot_bot.uploader import Uploader
from meetingbot_contract import (
    SPOOL_ENV,
    BotReport,
    BotResult,
    BotState,
    CaptureReport,
    ExitCode,
    JoinConfig,
    Reason,
    RecordingState,
)
from meetingbot_contract.stream import SAMPLE_RATE

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0
# The live stream's audio chunks (the page hands over one about this often).
STREAM_CHUNK_MS = 100
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
    # Where captured files wait (an emptyDir in the pod), and how long the bot spends
    # delivering what is left once it is out of the meeting (within the pod's grace period).
    spool_dir: Path = field(
        default_factory=lambda: Path(os.environ.get(SPOOL_ENV, "/tmp/meetingbot-spool"))  # noqa: S108
    )
    drain_timeout: float = 20.0


def now() -> datetime:
    return datetime.now(UTC)


def now_ms() -> int:
    """The host's clock in milliseconds: the clock of every capture timestamp."""
    return int(time.time() * 1000)


class Bot:
    def __init__(self, config: JoinConfig, options: Options, stop: asyncio.Event) -> None:
        self.config = config
        self.options = options
        self.stop = stop
        self.machine = Machine(config.leave, config.display_name)
        self.reporter = Reporter(config.report)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._published: tuple[Any, ...] | None = None
        self._capture_sent: CaptureReport | None = None
        self.oom = OomWatch()
        self.browser_pid: int | None = None
        self.capture: Capture | None = None
        self.uploader: Uploader | None = None
        if config.capture is not None:
            spool = Spool(self.options.spool_dir)
            self.capture = Capture(config.capture, spool)
            self.uploader = Uploader(
                config.capture.uploads_url,
                config.report.token.get_secret_value(),
                config.bot.attempt,
                spool,
            )
        self.stream: LiveStream | None = None
        if config.stream is not None and self.capture is not None:
            who = config.bot
            self.stream = LiveStream(
                config.stream, hello_for(who.namespace, who.name, who.uid, who.attempt)
            )
            self.capture.on_line = self.stream.event

    def _capture_report(self) -> CaptureReport | None:
        if self.capture is None or self.uploader is None:
            return None
        pending, pending_bytes = self.uploader.pending()
        return self.capture.report(self.uploader.delivered, pending, pending_bytes)

    def publish(self, *, final: bool = False) -> None:
        """Report the state; `final`: at once, whatever changed (the last report of a run)."""
        m = self.machine
        capture = self._capture_report()
        # The capture's counts change with every file delivered: they ride along with the
        # next report or heartbeat; only a change of state is sent at once.
        states = (
            (capture.recording, capture.captions, capture.audio_sources > 0) if capture else None
        )
        snapshot = (m.state, m.reason, m.joined_at, len(m.people()), states)
        urgent = final or snapshot != self._published
        if not urgent and capture == self._capture_sent:
            return
        self._published = snapshot
        self._capture_sent = capture
        if urgent:
            log.info(
                "state",
                extra={"state": m.state.value, "reason": m.reason, "participants": snapshot[3]},
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
                capture=capture,
            ),
            urgent=urgent,
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
        if self.uploader is not None:
            self.uploader.start()
        if self.stream is not None:
            self.stream.start()
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
            if self.stream is not None:
                await self.stream.close(self.machine.reason or "")
            await self._deliver_rest()
            self.publish(final=True)
            await self.reporter.flush(timeout=3.0)
            await self.reporter.close()
        return self.machine

    async def _deliver_rest(self) -> None:
        """The last events file, then everything the spool holds, within the drain time."""
        if self.capture is None or self.uploader is None:
            return
        self.capture.leaving(now_ms())
        self.capture.flush(now_ms())
        delivered = await self.uploader.drain(self.options.drain_timeout)
        pending, _ = self.uploader.pending()
        log.info("capture delivered", extra={"delivered": self.uploader.delivered, "left": pending})
        if not delivered:
            log.warning("files left undelivered", extra={"files": pending})
        await self.uploader.close()

    def _crashed(self, message: str) -> None:
        # The kernel's count says whether the browser died of the container's memory limit.
        self.machine.crashed(message, now(), self.oom.killed_since_start())

    def _page_event(self, name: str, payload: Any) -> None:
        """An event from the page: live PCM goes straight to the stream (ten a second: not
        through the machine's queue), everything else is queued for the next pass."""
        if name == "capture-pcm":
            if self.stream is not None and isinstance(payload, dict):
                with contextlib.suppress(ValueError, TypeError, binascii.Error):
                    self.stream.audio(int(payload["t"]), base64.b64decode(payload["data"]))
            return
        self.events.put_nowait((name, payload))

    async def _meeting(self, page: Page, url: str) -> None:
        await page.expose_function("meetingbotEvent", self._page_event)
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
        if self.capture is not None:
            # Ended without leaving (the meeting ended, the bot was removed): keep what the
            # recorder holds.
            await self._carry_out(page, self.capture.leaving(now_ms()))
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
        current = result.get("currentUser") or {}
        attendees = result.get("attendees") or []
        self.machine.joined(current, attendees, now())
        if self.capture is not None:
            commands = self.capture.joined(str(current.get("userId", "")), attendees, now_ms())
            await self._carry_out(page, commands)
        self.publish()
        return True

    async def _carry_out(self, page: Page, commands: list[Command]) -> None:
        """What the capture asked for, on the page (a failure is logged: the meeting goes on)."""
        if self.capture is None or not commands:
            return
        config = self.capture.config
        for command in commands:
            try:
                if command == Command.ASK_PERMISSION:
                    await page.evaluate("window.meetingbot.askPermission()")
                elif command == Command.START_RECORDING:
                    started = await page.call(
                        "o => window.meetingbotCapture.start(o)",
                        {"segmentSeconds": config.segment_seconds},
                    )
                    if started and self.stream is not None and self.stream.config.audio:
                        await page.call(
                            "o => window.meetingbotCapture.startStream(o)",
                            {"sampleRate": SAMPLE_RATE, "chunkMs": STREAM_CHUNK_MS},
                        )
                    if not started and not await page.evaluate(
                        "window.meetingbotCapture.supported"
                    ):
                        self.capture.recording = RecordingState.UNAVAILABLE
                        log.error("this browser cannot record Opus in WebM: no audio is recorded")
                elif command == Command.STOP_RECORDING:
                    await page.evaluate("window.meetingbotCapture.stop()")
                    await self._collect_segments(1.5)  # the segment in progress, kept
                    self.capture.recorder_on = False
                elif command == Command.ANNOUNCE and config.announcement:
                    await page.call("t => window.meetingbot.sendChat(t)", config.announcement)
                elif command == Command.LEAVE_DENIED:
                    self.machine.leave(
                        Reason.RECORDING_DENIED, "the host refused recording permission", now()
                    )
                elif command == Command.LEAVE_HOST_ABSENT:
                    self.machine.leave(
                        Reason.HOST_ABSENT, "no host answered the recording request", now()
                    )
            except (CdpError, TimeoutError) as error:
                log.warning(
                    "a capture step failed", extra={"step": command.value, "error": str(error)}
                )

    async def _collect_segments(self, seconds: float) -> None:
        """After a stop: the page hands over the segment in progress; keep it."""
        deadline = asyncio.get_running_loop().time() + seconds
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                name, payload = await asyncio.wait_for(self.events.get(), left)
            except TimeoutError:
                return
            self._observe(name, payload)
            if name == "capture-segment":
                return

    def _observe(self, name: str, payload: Any) -> list[Command]:
        """One page event, to the machine and to the capture."""
        if name == "capture-segment":
            if (
                self.capture is not None
                and isinstance(payload, dict)
                and self.capture.segment(payload)
            ):
                assert self.uploader is not None
                self.uploader.wake()
            return []
        self.machine.event(name, payload, now())
        if self.capture is not None:
            return self.capture.event(name, payload, now_ms())
        return []

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
                await self._carry_out(page, self._observe(name, payload))
        if stopping in done:
            self.machine.sigterm(now())
        self.machine.tick(now())
        if self.capture is not None and self.capture.tick(now_ms()):
            assert self.uploader is not None
            self.uploader.wake()
        self.publish()
        if self.browser_pid is not None:
            prefer_for_oom_kill(self.browser_pid)  # the renderers Chromium started since
        with contextlib.suppress(OSError):
            HEARTBEAT.touch()  # noqa: ASYNC240 - a touch of a tmpfs file, once a second

    async def _leave(self, page: Page) -> None:
        self.publish()
        if self.capture is not None:
            # Stop recording first: the segment in progress is handed over before we go.
            await self._carry_out(page, self.capture.leaving(now_ms()))
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
