"""Zoom's REST call that starts or stops an app's stream, and the simulator's admin side of
RTMS (start, look, break the network, stop, validate an app's endpoint); the routes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from devenv.zoomsim.rest import WORLD, Gate, zoom_error
from devenv.zoomsim.rtms import (
    _base_url,
    media,
    signaling,
    start_stream,
    stop_stream,
    validate_endpoint,
)
from devenv.zoomsim.rtms_media import STOP_BC_HOST_TRIGGERED
from devenv.zoomsim.state import RtmsStream

RTMS_SCOPES = ("meeting:update:participant_rtms_app_status", "meeting:write:admin")


async def rest_rtms_status(request: web.Request) -> web.Response:
    """`PATCH /v2/live_meetings/{meetingId}/rtms_app/status` {"action": "start"|"stop",
    "settings": {"client_id": the app's}}: 204, or Zoom's errors (3001: no such live meeting;
    2310: the account does not allow sharing realtime content with apps; 300: bad body)."""
    gate = Gate(request, "rtms_app_status", "Light")
    grant = await gate.open(RTMS_SCOPES)
    if isinstance(grant, web.Response):
        return grant
    world = gate.world
    number = request.match_info["meeting_id"]
    meeting = world.meetings.get(number)
    if meeting is None or meeting.account_id != grant.account_id or meeting.ended:
        return zoom_error(404, 3001, f"Meeting does not exist: {number}.")
    try:
        body = await request.json()
        action = body["action"]
        client_id = body["settings"]["client_id"]
    except (ValueError, KeyError, TypeError):
        return zoom_error(400, 300, "Validation Failed.")
    app = next((a for a in world.accounts.values() if a.user_client_id == client_id), None)
    if app is None:
        return zoom_error(400, 300, "Invalid client_id.")
    if not world.accounts[meeting.account_id].rtms_allowed:
        return zoom_error(400, 2310, "Failed to perform RTMS app operation.")
    live = [
        s
        for s in world.rtms_streams.values()
        if s.meeting is meeting and s.app is app and s.state == "started"
    ]
    if action == "start":
        if not live:
            host = next(iter(world.accounts[meeting.account_id].users.values()), None)
            start_stream(world, meeting, app, host.id if host else "", _base_url(request))
    elif action == "stop":
        for stream in live:
            stop_stream(world, stream, STOP_BC_HOST_TRIGGERED)
    else:
        return zoom_error(400, 300, "Validation Failed.")
    return web.Response(status=204)


def _stream_view(stream: RtmsStream) -> dict[str, Any]:
    return {
        "id": stream.id,
        "meetingUuid": stream.meeting_uuid,
        "meeting": stream.meeting.number,
        "state": stream.state,
        "stopReason": stream.stop_reason,
        "ready": stream.ready,
        "signaling": stream.signaling is not None,
        "media": stream.media is not None,
        "handshakes": stream.handshakes,
        "mediaType": stream.media_type,
        "mediaParams": stream.media_params,
        "deliveries": list(stream.deliveries),
        "sent": {str(k): v for k, v in stream.sent.items()},
        "startedAt": stream.started_at,
        "firstAudioAt": stream.first_audio_at,
    }


async def admin_start(request: web.Request) -> web.Response:
    """The host starts an app's stream in the meeting (or the account starts it on its own):
    {"app_account_id": the account whose General app receives it}."""
    world = request.app[WORLD]
    meeting = world.meetings.get(request.match_info["number"])
    if meeting is None or meeting.ended:
        raise web.HTTPNotFound(text="no such live meeting")
    body = await request.json()
    app = world.accounts.get(str(body.get("app_account_id", "")))
    if app is None:
        raise web.HTTPBadRequest(text="app_account_id must name an account")
    if not world.accounts[meeting.account_id].rtms_allowed:
        raise web.HTTPConflict(text="the host's account does not allow realtime media streams")
    stream = start_stream(world, meeting, app, str(body.get("operator_id", "")), _base_url(request))
    return web.json_response(_stream_view(stream), status=201)


async def admin_get(request: web.Request) -> web.Response:
    stream = request.app[WORLD].rtms_streams.get(request.match_info["stream_id"])
    if stream is None:
        raise web.HTTPNotFound(text="no such stream")
    return web.json_response(_stream_view(stream))


async def admin_list(request: web.Request) -> web.Response:
    number = request.query.get("meeting")
    streams = request.app[WORLD].rtms_streams.values()
    return web.json_response(
        [_stream_view(s) for s in streams if number is None or s.meeting.number == number]
    )


async def admin_drop(request: web.Request) -> web.Response:
    """The network between Zoom and the app breaks: both sockets close, the stream waits for
    the app to come back (60 s for signaling, 30 s for media)."""
    stream = request.app[WORLD].rtms_streams.get(request.match_info["stream_id"])
    if stream is None:
        raise web.HTTPNotFound(text="no such stream")
    for ws in (stream.signaling, stream.media):
        if ws is not None:
            await ws.close()
    return web.json_response(_stream_view(stream))


async def admin_stop(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    stream = world.rtms_streams.get(request.match_info["stream_id"])
    if stream is None:
        raise web.HTTPNotFound(text="no such stream")
    stop_stream(world, stream, STOP_BC_HOST_TRIGGERED)
    return web.json_response(_stream_view(stream))


async def admin_validate(request: web.Request) -> web.Response:
    """The app's owner saves its event notification endpoint: Zoom validates it."""
    world = request.app[WORLD]
    app = world.accounts.get(request.match_info["account_id"])
    if app is None or not app.event_notification_url:
        raise web.HTTPNotFound(text="no such app, or no endpoint")
    return web.json_response({"validated": await validate_endpoint(app)})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/rtms/signaling/{stream_id}", signaling),
        web.get("/rtms/media/{stream_id}", media),
        web.patch("/v2/live_meetings/{meeting_id}/rtms_app/status", rest_rtms_status),
        web.post("/sim/meetings/{number}/rtms", admin_start),
        web.get("/sim/rtms", admin_list),
        web.get("/sim/rtms/{stream_id}", admin_get),
        web.post("/sim/rtms/{stream_id}/drop", admin_drop),
        web.post("/sim/rtms/{stream_id}/stop", admin_stop),
        web.post("/sim/apps/{account_id}/validate", admin_validate),
    ]
