"""The HTTP answer to an upload request, the same for a bot's and a stream worker's: a grant
(a presigned PUT), "recorded" once the object is checked, 409 for an upload refused for good,
503 with Retry-After while the bucket cannot be used (the file stays in the caller's spool)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from meetingbot_contract import UploadGrant
from meetingbot_operator import metrics
from meetingbot_operator.artifacts.service import ArtifactProblem, UploadRefused
from meetingbot_operator.artifacts.store import StoreError

RETRY_LATER = {"Retry-After": "15"}


async def upload_answer(
    complete: bool,
    grant: Callable[[], Awaitable[UploadGrant]],
    record: Callable[[], Awaitable[None]],
) -> web.Response:
    """`complete`: the caller says its PUT is done (`record` checks and records it); else it
    asks for an upload (`grant`)."""
    try:
        if complete:
            await record()
            metrics.UPLOADS.labels("recorded").inc()
            return web.json_response({"result": "recorded"})
        granted = await grant()
    except UploadRefused as refused:
        metrics.UPLOADS.labels("refused").inc()
        return web.json_response({"error": str(refused)}, status=409)
    except (ArtifactProblem, StoreError) as problem:
        # The caller keeps its file and asks again later; the status says what is wrong.
        metrics.UPLOADS.labels("unavailable").inc()
        return web.json_response({"error": str(problem)}, status=503, headers=RETRY_LATER)
    metrics.UPLOADS.labels("granted").inc()
    return web.json_response(granted.model_dump(mode="json", by_alias=True))
