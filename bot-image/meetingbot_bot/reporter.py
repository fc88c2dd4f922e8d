"""Reports the bot's whole state to the operator: on every change and as a heartbeat,
retried with jittered backoff while the operator is unreachable (level-triggered, so a
repeated or late report does no harm)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import httpx

from meetingbot_contract import BotReport, ReportTarget

log = logging.getLogger(__name__)
# The operator answers 401/404/409 when this bot or attempt is no longer its business.
FINAL_STATUSES = {401, 403, 404, 409}


class Reporter:
    def __init__(self, target: ReportTarget, *, timeout: float = 5.0) -> None:
        self._target = target
        self._http = httpx.AsyncClient(timeout=timeout)
        self._latest: BotReport | None = None
        self._sent: BotReport | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stopped = False  # the operator said stop
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="reporter")

    def report(self, report: BotReport, *, urgent: bool = True) -> None:
        """The latest state: sent at once when `urgent`, else with the next heartbeat."""
        self._latest = report
        if urgent:
            self._changed.set()

    async def flush(self, timeout: float) -> bool:
        """Wait until the latest report is delivered (or the time is up)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.stopped and self._sent != self._latest:
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def close(self) -> None:
        # The flag as well as the cancel: Python 3.11's wait_for loses a cancel that arrives
        # just as the event it waits on is set (measured: a bot that never exited).
        self._closing = True
        self._changed.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._http.aclose()

    async def _loop(self) -> None:
        failures = 0
        while not self.stopped:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self._target.interval_seconds)
            if self._closing:
                return
            self._changed.clear()
            report = self._latest
            if report is None:
                continue
            while not self.stopped:
                if await self._send(report):
                    self._sent = report
                    failures = 0
                    break
                failures += 1
                delay = min(0.5 * 2 ** min(failures, 6), 15.0) * random.uniform(0.5, 1.0)  # noqa: S311
                await asyncio.sleep(delay)
                if self._latest is not report:
                    report = self._latest  # send the newest state, not a stale one
                    if report is None:
                        break

    async def _send(self, report: BotReport) -> bool:
        try:
            response = await self._http.post(
                self._target.url,
                content=report.model_dump_json(by_alias=True, exclude_none=True),
                headers={
                    "Authorization": f"Bearer {self._target.token.get_secret_value()}",
                    "Content-Type": "application/json",
                },
            )
        except httpx.HTTPError as error:
            log.warning("report not delivered", extra={"error": type(error).__name__})
            return False
        if response.status_code in FINAL_STATUSES:
            log.warning(
                "the operator refuses our reports; stopping them",
                extra={"status": response.status_code},
            )
            self.stopped = True
            return False
        if response.status_code >= 300:
            log.warning("report not accepted", extra={"status": response.status_code})
            return False
        return True
