"""Zoom's webhooks, as the operator receives them (deauthorization notices, RTMS, meetings): each is
signed with the app's secret token, x-zm-signature = "v0=" + hex HMAC-SHA256 over
"v0:{x-zm-request-timestamp}:{body}"; a timestamp more than five minutes away is a replay; and
an endpoint is validated by answering `endpoint.url_validation` with the plainToken and its
HMAC-SHA256 under the same token (docs/zoom.md, Webhooks)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from meetingbot_operator.metrics import ZOOM_WEBHOOK_ANSWER

log = logging.getLogger(__name__)

MAX_AGE_SECONDS = 300
URL_VALIDATION = "endpoint.url_validation"
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


class Unverifiable(Exception):
    """The request cannot be Zoom's: no signature, a stale timestamp. Says which."""


class NoticeRefused(Exception):
    """A webhook not taken, and the HTTP status Zoom (or whoever sent it) is answered."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


# What a receiver of Zoom's webhooks does with one: (body, timestamp, signature) -> the answer.
Notice = Callable[[bytes, str, str], Awaitable[dict[str, Any]]]


def endpoint(path: str, notice: Notice, what: str) -> web.RouteDef:
    """`POST path`: an event notification endpoint for Zoom's webhooks, served with the OAuth
    pages on the operator's public port (standbys forward it to the leader). `notice` verifies
    and takes the webhook; NoticeRefused is answered with its status and logged."""

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        began = time.monotonic()
        try:
            answer = await notice(
                body,
                request.headers.get("x-zm-request-timestamp", ""),
                request.headers.get("x-zm-signature", ""),
            )
        except NoticeRefused as refused:
            log.warning("Zoom webhook refused", extra={"webhook": what, "reason": str(refused)})
            response = web.json_response({"error": str(refused)}, status=refused.status)
        else:
            response = web.json_response(answer)
        # The operator's own share of Zoom's 3 s (time queued before the handler runs is not in
        # it: the bench compares this with what the sender saw).
        ZOOM_WEBHOOK_ANSWER.labels(what, str(response.status)).observe(time.monotonic() - began)
        return response

    return web.post(path, receive)


def check_form(timestamp: str, signature: str, now: float | None = None) -> None:
    """What can be checked before any secret is read (so that junk costs no Secret reads)."""
    current = time.time() if now is None else now
    if not timestamp.isdigit() or abs(current - int(timestamp)) > MAX_AGE_SECONDS:
        raise Unverifiable("missing or stale timestamp")
    if not _SIGNATURE.fullmatch(signature):
        raise Unverifiable("no signature")


def signed_by(secret_token: str, timestamp: str, body: bytes, signature: str) -> bool:
    if not secret_token:
        return False
    message = f"v0:{timestamp}:".encode() + body
    expected = "v0=" + hmac.new(secret_token.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def url_validation_answer(secret_token: str, plain_token: str) -> dict[str, str]:
    encrypted = hmac.new(secret_token.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}
