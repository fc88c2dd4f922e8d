"""A real webhook receiver: an aiohttp server in a thread of its own (so a session-wide
operator can be pointed at it before any test's loop exists), that checks every signature
with Standard Webhooks' own library and answers as a test scripts it, per path."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook

from tests.support.threaded_server import ThreadedServer

# The tests' signing secret, in the format Standard Webhooks writes (whsec_ + base64).
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"meetingbot-tests-signing-key-32b").decode()
SLOW = -1  # a scripted answer: hold the request longer than the operator waits, then 200


@dataclass(frozen=True)
class Delivery:
    path: str
    id: str
    answer: int  # what the receiver answered (SLOW: too late to count)
    verified: bool
    body: dict[str, Any]
    raw: bytes
    arrived_ms: int  # when the request arrived (host clock)


class Receiver(ThreadedServer):
    def __init__(self, secret: str, slow_seconds: float = 5.0) -> None:
        super().__init__("127.0.0.1", "POST")
        self.url = f"http://127.0.0.1:{self.port}"
        self._verifier = Webhook(secret)
        self._slow = slow_seconds
        self._scripts: dict[str, deque[int]] = defaultdict(deque)
        self._seen: list[Delivery] = []

    # --- control, from the tests ----------------------------------------------------------------

    def script(self, path: str, *answers: int) -> None:
        """The next answers at `path` (HTTP statuses, or SLOW), then 204s."""
        with self._lock:
            self._scripts[path].extend(answers)

    def seen(self, path: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self._seen if d.path == path]

    def accepted(self, path: str) -> list[dict[str, Any]]:
        """The events the receiver acted on: answered 2xx, verified, each id once (as a
        receiver that keeps ids does), in arrival order."""
        kept: dict[str, dict[str, Any]] = {}
        for d in self.seen(path):
            if 200 <= d.answer < 300 and d.verified and d.id not in kept:
                kept[d.id] = d.body
        return list(kept.values())

    # --- the server ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        arrived_ms = int(time.time() * 1000)
        raw = await request.read()
        try:
            self._verifier.verify(raw, dict(request.headers))
            verified = True
        except Exception:
            verified = False
        with self._lock:
            script = self._scripts[request.path]
            answer = script.popleft() if script else 204
        with self._lock:
            self._seen.append(
                Delivery(
                    request.path,
                    request.headers.get("webhook-id", ""),
                    answer,
                    verified,
                    json.loads(raw),
                    raw,
                    arrived_ms,
                )
            )
        if answer == SLOW:
            await asyncio.sleep(self._slow)
            return web.Response(status=200)
        return web.Response(status=answer)


async def signing_secret(kube: Any, namespace: str, name: str = "hook-signing") -> None:
    """The signing Secret, opted in for webhook signing."""
    await kube.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": name, "labels": {"meetingbot.dev/secret-for": "webhook-signing"}},
            "stringData": {"secret": WEBHOOK_SECRET},
        },
    )


def webhook(
    receiver: Receiver,
    path: str,
    secret_name: str = "hook-signing",  # noqa: S107 - a name
) -> dict[str, Any]:
    """A spec.webhook that posts to `path` of the receiver."""
    return {"url": receiver.url + path, "signingSecretRef": {"name": secret_name, "key": "secret"}}


# A bot's story in the order it can happen (a pass that starts an attempt writes no status,
# so a bot whose first pass starts it tells Starting first; one that waited tells Pending).
STORY = ["Pending", "Starting", "Joining", "InMeeting", "Leaving", "Succeeded", "finished"]


def a_whole_story(told: list[str]) -> bool:
    """Whether `told` is a bot's story from apply to finished, in order, nothing repeated."""
    return told == [step for step in STORY if step in told] and told[-3:] == [
        "InMeeting",
        "Succeeded",
        "finished",
    ]


def phases_told(events: list[dict[str, Any]]) -> list[str]:
    """The story the events tell: each phase event's phase, the other events by type."""
    return [
        e["data"]["phase"] if e["type"] == "dev.meetingbot.bot.phase" else e["type"].split(".")[-1]
        for e in events
    ]
