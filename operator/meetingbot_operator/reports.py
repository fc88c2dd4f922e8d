"""The report endpoint bots call: `POST /v1/namespaces/{ns}/meetingbots/{name}/report`.

Each bot gets its own bearer token, an HMAC of (namespace, name, uid, attempt) under the
operator's report key: nothing to store, valid across operator restarts (when the key is
kept), useless for any other bot or attempt. A report from an earlier attempt gets 409, which
tells a lingering pod to stop reporting.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Literal

from aiohttp import web
from pydantic import SecretStr, ValidationError

from meetingbot_operator import metrics
from meetingbot_operator.contract import BotReport

log = logging.getLogger(__name__)

Outcome = Literal["accepted", "stale", "unknown"]
# (namespace, name) -> (uid, current attempt), or None if the bot is unknown
Identity = Callable[[str, str], tuple[str, int] | None]
Sink = Callable[[str, str, BotReport], Outcome]
MAX_BODY = 16 * 1024


class ReportTokens:
    def __init__(self, key: SecretStr | None) -> None:
        if key is None:
            log.warning(
                "MEETINGBOT_REPORT_KEY is not set: using a random key; bots started before a "
                "restart will not be able to report (their pods' exit results still count)"
            )
            key = SecretStr(secrets.token_urlsafe(32))
        self._key = key.get_secret_value().encode()

    def token(self, namespace: str, name: str, uid: str, attempt: int) -> SecretStr:
        message = f"{namespace}/{name}/{uid}/{attempt}".encode()
        return SecretStr(hmac.new(self._key, message, hashlib.sha256).hexdigest())

    def valid(self, presented: str, namespace: str, name: str, uid: str, attempt: int) -> bool:
        expected = self.token(namespace, name, uid, attempt).get_secret_value()
        return hmac.compare_digest(presented.encode(), expected.encode())


def report_path(namespace: str, name: str) -> str:
    return f"/v1/namespaces/{namespace}/meetingbots/{name}/report"


def make_app(tokens: ReportTokens, identity: Identity, sink: Sink) -> web.Application:
    async def report(request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return _answer("unauthorized", 401)
        known = identity(namespace, name)
        if known is None:
            return _answer("unknown", 404)
        uid, current = known
        try:
            body = BotReport.model_validate_json(await request.read())
        except ValidationError as error:
            metrics.REPORTS.labels("invalid").inc()
            return web.json_response({"error": _first_error(error)}, status=400)
        if not tokens.valid(header[7:], namespace, name, uid, body.attempt):
            return _answer("unauthorized", 401)
        if body.attempt != current:
            return _answer("stale", 409)
        outcome = sink(namespace, name, body)
        return _answer(outcome, 202 if outcome == "accepted" else 404)

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/v1/namespaces/{namespace}/meetingbots/{name}/report", report)
    return app


def _answer(result: str, status: int) -> web.Response:
    metrics.REPORTS.labels(result).inc()
    return web.json_response({"result": result}, status=status)


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
