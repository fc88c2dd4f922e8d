"""The one deliverer of every bot's webhook notifications.

The outbox is the bot's `status.webhook.pending` (meetingbot/notifications.py decides it; a
MeetingStream's the same way, meetingstream/notifications.py, with a deliverer of its own). The
controller offers it here after each status write; one task per bot sends the events in order,
one at a time, each until the endpoint answers 2xx or the event is a day old (then dropped and
counted), with exponential backoff and full jitter between tries and Retry-After honoured. How
far it got is reported back as an observation (`progress`), which the bot's next pass writes
into status. Nothing here writes the MeetingBot; all of it is in memory and may be lost: the
status still holds every event not acknowledged there, and a new leader sends those again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from meetingbot_api import PendingEvent, Webhook, event_id
from meetingbot_operator import metrics, outbound
from meetingbot_operator.kube.secrets import SecretProblem, SecretReader, SecretUse, read_opted_in
from meetingbot_operator.meetingbot.observed import WebhookProgress
from meetingbot_operator.settings import Settings, endpoint_allowed
from meetingbot_operator.webhooks.envelope import (
    BadSigningSecret,
    envelope,
    signed_headers,
    signing_key,
)

log = logging.getLogger(__name__)

Key = tuple[str, str]
BACKOFF_BASE_SECONDS = 1.0
# A signing key read from its Secret is used this long before it is read again: a burst of
# notifications costs the API server one read per Secret, not one per event (measured at 1000
# bots: the reads competed with the bots' status writes); a rotated secret signs within this.
KEY_TTL_SECONDS = 30.0
# The longest Retry-After honoured (a receiver cannot park a bot's outbox for longer).
RETRY_AFTER_MAX_SECONDS = 3600.0


class DeliveryFailed(Exception):
    """One try failed: why (for status.webhook.lastError) and when the endpoint asked to be
    tried again, if it did."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Outbox:
    """One bot's deliveries: what the last status write left pending, and how far we got."""

    uid: str
    spec: Webhook
    pending: list[PendingEvent]
    acked: int = 0
    dropped: set[int] = field(default_factory=set)
    last_delivery_time: datetime | None = None
    last_error: str | None = None
    failures: int = 0
    task: asyncio.Task[None] | None = None


class WebhookService:
    def __init__(
        self,
        kube: SecretReader,
        settings: Settings,
        changed: Callable[[Key], None],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        plural: str = "meetingbots",
    ) -> None:
        self._kube = kube
        self._plural = plural  # whose notifications: MeetingBots', or MeetingStreams'
        self._settings = settings
        self._changed = changed  # the bot's next pass writes the progress into its status
        self._boxes: dict[Key, Outbox] = {}
        self._keys: dict[tuple[str, str, str], tuple[float, bytes]] = {}
        self._in_flight = asyncio.Semaphore(settings.webhook_concurrency)
        # No redirects: a 3xx could send the operator's POST to a host no one allowed.
        self._http = outbound.client(
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=settings.webhook_concurrency),
            transport=transport,
        )

    # --- the controller's side ---------------------------------------------------------------

    def progress(self, key: Key, uid: str) -> WebhookProgress | None:
        box = self._boxes.get(key)
        if box is None or box.uid != uid or (box.acked == 0 and box.last_error is None):
            return None
        return WebhookProgress(
            acked=box.acked,
            dropped=frozenset(box.dropped),
            last_delivery_time=box.last_delivery_time,
            last_error=box.last_error,
        )

    def offer(self, key: Key, uid: str, spec: Webhook, pending: list[PendingEvent]) -> None:
        """The bot's outbox as just written; its task sends what is not acknowledged yet."""
        box = self._boxes.get(key)
        if box is None or box.uid != uid:
            self.forget(key)
            box = self._boxes[key] = Outbox(uid, spec, [])
        box.spec, box.pending = spec, list(pending)
        if box.task is None or box.task.done():
            box.task = asyncio.create_task(self._deliver(key, box), name=f"webhook {key}")

    def forget(self, key: Key) -> None:
        box = self._boxes.pop(key, None)
        if box is not None and box.task is not None:
            box.task.cancel()

    async def close(self) -> None:
        tasks = [b.task for b in self._boxes.values() if b.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._boxes.clear()
        await self._http.aclose()

    # --- delivery ------------------------------------------------------------------------------

    async def _deliver(self, key: Key, box: Outbox) -> None:
        while True:
            event = next((e for e in box.pending if e.seq > box.acked), None)
            if event is None:
                return
            age = (datetime.now(UTC) - event.time).total_seconds()
            if age > self._settings.webhook_max_age_seconds:
                self._settle(key, box, event, dropped=True)
                continue
            try:
                async with self._in_flight:
                    await self._send(key, box, event)
            except DeliveryFailed as failure:
                box.failures += 1
                box.last_error = str(failure)[:1024]
                metrics.WEBHOOKS.labels("retried").inc()
                delay = self._backoff(box.failures, failure.retry_after)
                log.warning(
                    "webhook delivery failed; trying again",
                    extra={
                        "bot": "/".join(key),
                        "event": event_id(box.uid, event.seq),
                        "host": urlsplit(box.spec.url).hostname,
                        "error": box.last_error,
                        "retry_seconds": round(delay, 1),
                    },
                )
                if box.failures == 1:
                    self._changed(key)  # the status says why at once; later tries, on success
                await asyncio.sleep(delay)
                continue
            self._settle(key, box, event, dropped=False)

    def _settle(self, key: Key, box: Outbox, event: PendingEvent, *, dropped: bool) -> None:
        box.acked = event.seq
        box.failures = 0
        if dropped:
            box.dropped.add(event.seq)
            metrics.WEBHOOKS.labels("dropped").inc()
            log.error(
                "webhook event dropped after retrying for its whole lifetime",
                extra={"bot": "/".join(key), "event": event_id(box.uid, event.seq)},
            )
        else:
            now = datetime.now(UTC)
            box.last_delivery_time, box.last_error = now, None
            metrics.WEBHOOKS.labels("delivered").inc()
            metrics.WEBHOOK_LATENCY.observe(max((now - event.time).total_seconds(), 0.0))
        self._changed(key)

    def _backoff(self, failures: int, retry_after: float | None) -> float:
        cap = self._settings.webhook_backoff_max_seconds
        ceiling = min(cap, BACKOFF_BASE_SECONDS * 2.0 ** min(failures - 1, 30))
        delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret
        if retry_after is not None:
            delay = max(delay, min(retry_after, RETRY_AFTER_MAX_SECONDS))
        return delay

    async def _send(self, key: Key, box: Outbox, event: PendingEvent) -> None:
        url = box.spec.url
        if not endpoint_allowed(url, self._settings.webhook_endpoints):
            raise DeliveryFailed(
                f"webhook url {_origin(url)} is not under an endpoint the operator allows (its "
                "setting MEETINGBOT_WEBHOOK_ENDPOINTS, the chart's operator.webhookEndpoints)"
            )
        secret = await self._signing_key(key[0], box.spec)
        body = envelope(key[0], key[1], box.uid, event, self._plural)
        headers = signed_headers(secret, event_id(box.uid, event.seq), int(time.time()), body)
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise DeliveryFailed(f"{_origin(url)} did not answer in time") from None
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"{_origin(url)}: {type(error).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(
                f"{_origin(url)} answered {response.status_code}",
                _retry_after(response.headers.get("retry-after")),
            )

    async def _signing_key(self, namespace: str, spec: Webhook) -> bytes:
        """The HMAC key from the opted-in Secret, read at most every KEY_TTL_SECONDS."""
        ref = spec.signing_secret_ref
        cache_key = (namespace, ref.name, ref.key)
        cached = self._keys.get(cache_key)
        if cached is not None and time.monotonic() - cached[0] < KEY_TTL_SECONDS:
            return cached[1]
        try:
            data = await read_opted_in(self._kube, namespace, ref.name, SecretUse.WEBHOOK_SIGNING)
            if ref.key not in data:
                raise DeliveryFailed(f"Secret {ref.name!r} has no key {ref.key!r}")
            secret = signing_key(data[ref.key])
        except (SecretProblem, BadSigningSecret) as problem:
            raise DeliveryFailed(str(problem)) from None
        self._keys[cache_key] = (time.monotonic(), secret)
        return secret


def _origin(url: str) -> str:
    """The URL without its path or query (which may carry a token of the user's)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(float(value), 0.0)
    with contextlib.suppress(TypeError, ValueError):
        return max((parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds(), 0.0)
    return None
