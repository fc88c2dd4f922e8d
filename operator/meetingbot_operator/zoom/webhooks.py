"""Zoom's webhooks, as the operator receives them (deauthorization notices, RTMS): each is
signed with the app's secret token, x-zm-signature = "v0=" + hex HMAC-SHA256 over
"v0:{x-zm-request-timestamp}:{body}"; a timestamp more than five minutes away is a replay; and
an endpoint is validated by answering `endpoint.url_validation` with the plainToken and its
HMAC-SHA256 under the same token (docs/zoom.md, Webhooks)."""

from __future__ import annotations

import hashlib
import hmac
import re
import time

MAX_AGE_SECONDS = 300
URL_VALIDATION = "endpoint.url_validation"
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


class Unverifiable(Exception):
    """The request cannot be Zoom's: no signature, a stale timestamp. Says which."""


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
