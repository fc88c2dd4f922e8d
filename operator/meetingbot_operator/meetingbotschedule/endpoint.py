"""`POST /zoom/meetings`: the event notification endpoint for Zoom's meeting webhooks, served
with the OAuth pages on the operator's public port (and forwarded there by standbys)."""

from __future__ import annotations

import logging

from aiohttp import web

from meetingbot_operator.meetingbotschedule.notices import MeetingNotices, NoticeRefused

log = logging.getLogger(__name__)
PATH = "/zoom/meetings"


def routes(notices: MeetingNotices) -> list[web.RouteDef]:
    async def meetings(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            answer = await notices.notice(
                body,
                request.headers.get("x-zm-request-timestamp", ""),
                request.headers.get("x-zm-signature", ""),
            )
        except NoticeRefused as refused:
            log.warning("Zoom meeting webhook refused", extra={"reason": str(refused)})
            return web.json_response({"error": str(refused)}, status=refused.status)
        return web.json_response(answer)

    return [web.post(PATH, meetings)]
