"""`POST /zoom/rtms`: the event notification endpoint of the apps MeetingStreams name, served
with the OAuth pages on the operator's public port (and forwarded there by standbys)."""

from __future__ import annotations

import logging

from aiohttp import web

from meetingbot_operator.meetingstream.service import NoticeRefused, StreamService

log = logging.getLogger(__name__)
PATH = "/zoom/rtms"
MAX_BODY = 64 * 1024


def routes(streams: StreamService) -> list[web.RouteDef]:
    async def rtms(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            answer = await streams.notice(
                body,
                request.headers.get("x-zm-request-timestamp", ""),
                request.headers.get("x-zm-signature", ""),
            )
        except NoticeRefused as refused:
            log.warning("Zoom RTMS webhook refused", extra={"reason": str(refused)})
            return web.json_response({"error": str(refused)}, status=refused.status)
        return web.json_response(answer)

    return [web.post(PATH, rtms)]
