"""Delivers the spool's files: for each, an upload grant from the operator, a PUT to the
presigned URL with the grant's headers (the store checks the SHA-256), then a confirmation,
after which the operator has it in the manifest and the local copy goes. Any failure leaves
the file in the spool and is retried with jittered backoff, oldest file first, until the bot
leaves; the bot's last act is a bounded `drain`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import httpx

from meetingbot_bot.spool import Spool, SpoolFile
from meetingbot_contract import UploadGrant, UploadRequest
from meetingbot_contract.artifacts import CONTENT_TYPES

log = logging.getLogger(__name__)
# The operator no longer knows this bot (or refuses its token): stop asking.
FINAL_STATUSES = {401, 403, 404}
MAX_BACKOFF_SECONDS = 30.0


class UploadFailed(Exception):
    def __init__(self, message: str, *, final: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.final = final
        self.retry_after = retry_after


class Uploader:
    def __init__(
        self,
        url: str,
        token: str | Callable[[], str],
        attempt: int,
        spool: Spool,
        *,
        timeout: float = 30.0,
        http: httpx.AsyncClient | None = None,
        limit: asyncio.Semaphore | None = None,
    ) -> None:
        self._url = url
        # A bot's token is fixed; a stream worker's is its service account's, which the
        # kubelet renews in a file (read again for each request).
        self._token = token if callable(token) else (lambda: token)
        self._attempt = attempt
        self._spool = spool
        self._own_http = http is None  # a stream worker's uploaders share one client
        # A stream worker's uploads at once, across its streams: its streams cut their
        # segments at the same moments, and each upload holds its file in memory (measured:
        # 300 streams' 30 s segments at once were 0.9 MB a stream).
        self._limit = limit or contextlib.nullcontext()
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()  # a file delivered, or the uploader stopped
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.stopped = False  # the operator said stop
        # Checked as well as cancelling: Python 3.11's wait_for can lose a cancel (reporter.py).
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="uploader")

    def wake(self) -> None:
        self._wake.set()

    def pending(self) -> tuple[int, int]:
        files = self._spool.pending()
        return len(files), sum(f.size for f in files)

    async def delivered_all(self) -> None:
        """Until nothing is pending (or the operator refused for good), while the uploader's
        loop delivers. Looks at the spool once per delivered file, not on a clock (a stream
        worker watching 200 streams' spools every half second spent its CPU reading them)."""
        while True:
            self._progress.clear()
            if self.stopped or not self._spool.pending():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), 5.0)

    async def drain(self, timeout: float) -> bool:
        """Deliver what is left, for at most `timeout` seconds; whether nothing is left."""
        self._closing = True
        self._wake.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                failures = 0
                while not self.stopped and self._spool.pending():
                    if await self._deliver_all():
                        break
                    failures += 1
                    await asyncio.sleep(min(0.5 * 2**failures, 5.0) * random.uniform(0.5, 1.0))  # noqa: S311
        return not self._spool.pending()

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._own_http:
            await self._http.aclose()

    async def _loop(self) -> None:
        failures = 0
        while not self.stopped and not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 2.0)
            if self._closing:
                return
            self._wake.clear()
            try:
                done = await self._deliver_all()
            except UploadFailed as error:
                log.warning(
                    "upload failed; the file stays in the spool", extra={"error": str(error)}
                )
                if error.final:
                    self.stopped = True
                    self._progress.set()
                    return
                done = False
                if error.retry_after:
                    await asyncio.sleep(error.retry_after)
            if done:
                failures = 0
                continue
            failures += 1
            delay = min(0.5 * 2 ** min(failures, 7), MAX_BACKOFF_SECONDS)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311

    async def _deliver_all(self) -> bool:
        """Deliver every pending file in order; True when all went."""
        for item in self._spool.pending():
            await self._deliver(item)
        return True

    async def _deliver(self, item: SpoolFile) -> None:
        request = UploadRequest(
            attempt=self._attempt,
            kind=item.kind,
            sequence=item.sequence,
            size=item.size,
            sha256=item.sha256,
            start_ms=item.start_ms,
            end_ms=item.end_ms,
            speaker=item.speaker,
        )
        body = request.model_dump_json(by_alias=True)
        async with self._limit:
            grant = UploadGrant.model_validate_json(await self._post(self._url, body))
            data = item.path.read_bytes()
            try:
                response = await self._http.put(
                    grant.url,
                    content=data,
                    headers={**grant.headers, "content-type": CONTENT_TYPES[item.kind]},
                )
            except httpx.HTTPError as error:
                raise UploadFailed(f"PUT {grant.key}: {type(error).__name__}") from None
            del data
        if response.status_code >= 300:
            raise UploadFailed(f"PUT {grant.key}: HTTP {response.status_code}")
        await self._post(self._url + "/complete", body)
        self._spool.remove(item)
        self._progress.set()
        self.delivered += 1
        log.info("delivered", extra={"key": grant.key, "bytes": item.size})

    async def _post(self, url: str, body: str) -> bytes:
        try:
            response = await self._http.post(
                url,
                content=body,
                headers={
                    "Authorization": f"Bearer {self._token()}",
                    "Content-Type": "application/json",
                },
            )
        except httpx.HTTPError as error:
            raise UploadFailed(f"the operator: {type(error).__name__}") from None
        if response.status_code in FINAL_STATUSES:
            raise UploadFailed(f"the operator refuses: HTTP {response.status_code}", final=True)
        if response.status_code >= 300:
            retry = response.headers.get("Retry-After")
            raise UploadFailed(
                f"the operator: HTTP {response.status_code} {response.text[:200]}",
                retry_after=float(retry) if retry and retry.isdigit() else None,
            )
        return response.content
