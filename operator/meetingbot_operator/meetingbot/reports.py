"""The endpoints bots call: `POST /v1/namespaces/{ns}/meetingbots/{name}/report`, and for
their artifacts `.../uploads` (a presigned upload) and `.../uploads/complete` (record it).

Each bot gets its own bearer token, an HMAC of (namespace, name, uid, attempt) under the
operator's report key: nothing to store, valid across operator restarts (when the key is
kept), useless for any other bot or attempt. The token is checked before the body is read; an
unknown bot and a wrong token get the same 401. A report from an earlier attempt (with that
attempt's token) gets 409, which tells a lingering pod to stop reporting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Literal, Protocol, TypeVar

from aiohttp import web
from pydantic import ValidationError

from meetingbot_api import first_error
from meetingbot_contract import BotReport, UploadGrant, UploadRequest
from meetingbot_operator import metrics
from meetingbot_operator.artifacts.answers import upload_answer
from meetingbot_operator.artifacts.service import Caller
from meetingbot_operator.keys import ReportTokens

log = logging.getLogger(__name__)

# What the operator makes of a report it let through (the endpoint turns it into a status).
Receipt = Literal["accepted", "stale", "unknown"]
# (namespace, name) -> (uid, current attempt), or None if the bot is unknown
Identity = Callable[[str, str], tuple[str, int] | None]
Sink = Callable[[str, str, BotReport], Receipt]
# True while a just-started operator has not yet seen every bot that exists (its watch is
# still listing them): an unknown bot is then answered 503 (try again), not 401.
Warming = Callable[[], bool]
# Bots' reports are small; a stream worker's heartbeat lists every stream it holds.
MAX_BODY = 256 * 1024
RETRY_SOON = {"Retry-After": "2"}
_Body = TypeVar("_Body", BotReport, UploadRequest)
# Stands in for the uid of a bot the operator does not know, so that an unknown bot costs the
# same work as a known one and gets the same answer.
UNKNOWN_UID = "00000000-0000-0000-0000-000000000000"


def report_path(namespace: str, name: str) -> str:
    return f"/v1/namespaces/{namespace}/meetingbots/{name}/report"


def uploads_path(namespace: str, name: str) -> str:
    return f"/v1/namespaces/{namespace}/meetingbots/{name}/uploads"


class Uploads(Protocol):
    """The artifact endpoints' side of the operator (artifacts/service.py, for one bot)."""

    async def grant(self, caller: Caller, request: UploadRequest) -> UploadGrant: ...

    async def complete(self, caller: Caller, request: UploadRequest) -> None: ...


def make_app(
    tokens: ReportTokens,
    identity: Identity,
    sink: Sink,
    warming: Warming,
    uploads: Uploads | None = None,
) -> web.Application:
    async def authenticate(
        request: web.Request, model: type[_Body]
    ) -> tuple[Caller, _Body] | web.Response:
        """The body, if the token is this bot's current attempt's; else the answer to give.
        The token first, before a byte of the body is read; the same answer for "no such bot"
        and "wrong token", so strangers learn nothing about which bots exist."""
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        header = request.headers.get("Authorization", "")
        presented = header[7:] if header.startswith("Bearer ") else ""
        known = identity(namespace, name)
        if known is None and warming():
            # Every unknown bot alike, so the answer says nothing about which bots exist.
            metrics.REPORTS.labels("warming").inc()
            return web.json_response({"result": "warming"}, status=503, headers=RETRY_SOON)
        uid, current = known or (UNKNOWN_UID, 1)
        # Up to the attempt after the one in status: a pod created just before the operator
        # restarted (or lost the lead), whose attempt the status does not record yet.
        attempt = tokens.attempt_of(presented, namespace, name, uid, current + 1)
        if attempt is None or uid == UNKNOWN_UID:
            return _answer("unauthorized", 401)
        try:
            body = model.model_validate_json(await request.read())
        except ValidationError as error:
            metrics.REPORTS.labels("invalid").inc()
            return web.json_response({"error": first_error(error)}, status=400)
        if body.attempt != attempt:
            return _answer("unauthorized", 401)  # a token is good for its own attempt only
        if attempt > current:  # the status catches up in a moment: not stale, try again
            metrics.REPORTS.labels("early").inc()
            return web.json_response({"result": "early"}, status=503, headers=RETRY_SOON)
        if attempt < current and model is BotReport:
            return _answer("stale", 409)
        # An earlier attempt may still deliver what it captured (its pod is gone or going;
        # the files it holds belong to the same MeetingBot), so uploads accept it.
        return Caller(namespace, name, uid, attempt), body

    async def report(request: web.Request) -> web.Response:
        checked = await authenticate(request, BotReport)
        if isinstance(checked, web.Response):
            return checked
        caller, body = checked
        receipt = sink(caller.namespace, caller.name, body)
        return _answer(receipt, 202 if receipt == "accepted" else 401)

    async def upload(request: web.Request) -> web.Response:
        checked = await authenticate(request, UploadRequest)
        if isinstance(checked, web.Response):
            return checked
        caller, body = checked
        if uploads is None:
            return web.json_response({"error": "uploads are not served here"}, status=404)
        return await upload_answer(
            request.match_info.get("step") == "complete",
            partial(uploads.grant, caller, body),
            partial(uploads.complete, caller, body),
        )

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/v1/namespaces/{namespace}/meetingbots/{name}/report", report)
    app.router.add_post("/v1/namespaces/{namespace}/meetingbots/{name}/uploads", upload)
    app.router.add_post(
        "/v1/namespaces/{namespace}/meetingbots/{name}/uploads/{step:complete}", upload
    )
    return app


def _answer(result: str, status: int) -> web.Response:
    metrics.REPORTS.labels(result).inc()
    return web.json_response({"result": result}, status=status)
