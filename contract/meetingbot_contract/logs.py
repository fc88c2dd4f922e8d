"""Structured logs that never carry a secret.

Secrets are kept out of log calls by construction (SecretStr everywhere); this filter is the
second line: it masks anything shaped like a credential, and any value registered with
`redact()` (every ZAK, signature and report token the operator handles), in the message and
in every extra field, before any handler formats the record.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from typing import Any

MASK = "***"
PATTERNS = [
    re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(Basic\s+)[A-Za-z0-9+/=]{8,}"),
    re.compile(
        r"""((?:zak|token|secret|signature|password|passcode|obfToken|client_secret)"""
        r"""["']?\s*[:=]\s*["']?)[^\s"',}&]{6,}""",
        re.IGNORECASE,
    ),
]
_REGISTERED: OrderedDict[str, None] = OrderedDict()
_MAX_REGISTERED = 20000
# Registered values by their first characters: a record is scrubbed in time linear in its
# length, not in how many values are registered. Looking for each of 20 000 values in every
# record was 17% of the operator's CPU in a burst of 10 000 bots.
_PREFIX = 8
_BY_PREFIX: dict[str, set[str]] = {}
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def redact(*values: str) -> None:
    """Remember values that must never be printed (bounded: the oldest are forgotten)."""
    for value in values:
        if value and len(value) >= _PREFIX:
            _REGISTERED[value] = None
            _REGISTERED.move_to_end(value)
            _BY_PREFIX.setdefault(value[:_PREFIX], set()).add(value)
    while len(_REGISTERED) > _MAX_REGISTERED:
        forgotten, _ = _REGISTERED.popitem(last=False)
        bucket = _BY_PREFIX[forgotten[:_PREFIX]]
        bucket.discard(forgotten)
        if not bucket:
            del _BY_PREFIX[forgotten[:_PREFIX]]


def scrub(text: str) -> str:
    for pattern in PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    found = _registered_in(text)
    # Longest first: a registered value that contains another is masked whole.
    for value in sorted(found, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def _registered_in(text: str) -> set[str]:
    found: set[str] = set()
    if not _BY_PREFIX:
        return found
    for start in range(len(text) - _PREFIX + 1):
        bucket = _BY_PREFIX.get(text[start : start + _PREFIX])
        if bucket:
            found.update(value for value in bucket if text.startswith(value, start))
    return found


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for key, value in list(vars(record).items()):
            if key in _STANDARD:
                continue
            if isinstance(value, str | dict | list):
                setattr(record, key, _scrub_value(value))
            elif not isinstance(value, int | float | bool | type(None)):
                # e.g. kopf's settings object: not JSON, and its repr is nobody's business.
                delattr(record, key)
        return True


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_value(v) for v in value]
    return value


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Root logging for the operator or a bot: JSON (python-json-logger, which both install; it
    is imported here so that the contract itself needs nothing but pydantic) or text."""
    handler = logging.StreamHandler()
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=False)
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; keep it for debugging only.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # At DEBUG the Kubernetes client logs whole response bodies (Secrets among them): never.
    logging.getLogger("kubernetes_asyncio").setLevel(logging.INFO)
    if logging.getLevelName(level) != logging.DEBUG:
        # kopf logs every handled watch event at INFO: thousands of lines in a burst.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
