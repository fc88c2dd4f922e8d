"""The meeting side as the fake Meeting SDK reaches it: join, events over a WebSocket, leave.

The fake SDK (static/zoom-meeting-embedded.js) calls these from the bot's page, which is
served from another origin, hence the permissive CORS headers on /sim/sdk/*.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from devenv.zoomsim.rest import WORLD
from devenv.zoomsim.state import JoinError, Meeting, Participant, World

STATIC = Path(__file__).parent / "static"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
}


def broadcast(
    meeting: Meeting, event: dict[str, Any], *, to: list[Participant] | None = None
) -> None:
    for participant in to if to is not None else meeting.present():
        if participant.inbox is not None:
            participant.inbox.put_nowait(event)


def roster_event(kind: str, participant: Participant) -> dict[str, Any]:
    return {"event": kind, "payload": [participant.public()]}


def admit(meeting: Meeting, participant: Participant) -> None:
    participant.state = "in_meeting"
    broadcast(meeting, roster_event("user-updated", participant))
    broadcast(
        meeting,
        roster_event("user-added", participant),
        to=[p for p in meeting.present() if p is not participant],
    )


def depart(meeting: Meeting, participant: Participant, reason: str, closed: str | None) -> None:
    """Take a participant out; `closed` is the reason the participant's own client is told."""
    if participant.state == "left":
        return
    was_visible = participant.state == "in_meeting"
    participant.state = "left"
    participant.left_reason = reason
    if closed is not None:
        broadcast(
            meeting,
            {"event": "connection-change", "payload": {"state": "Closed", "reason": closed}},
            to=[participant],
        )
    if was_visible:
        broadcast(meeting, roster_event("user-removed", participant))
    if not meeting.ended and participant.authorized_by is None and participant.user_id:
        # OBF: bots this user authorized leave with them (error 4019; the bundle's reason).
        for bot in meeting.present():
            if bot.authorized_by == participant.user_id:
                depart(
                    meeting, bot, "authorizing user left", "bot user kicked due to master leaving"
                )


def end_meeting(meeting: Meeting) -> None:
    if meeting.ended:
        return
    meeting.ended = True  # first: everyone leaves because of the end, not of each other
    for participant in meeting.present():
        depart(meeting, participant, "meeting ended", "ended by host")


async def options(_: web.Request) -> web.Response:
    return web.Response(headers=CORS)


async def join(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    try:
        body = await request.json()
        meeting_number = str(body.get("meetingNumber", "")).replace(" ", "")
        signature = str(body["signature"])
    except (ValueError, KeyError, TypeError):
        return _join_failed(3706, "Invalid parameters.")
    await _latency(world)
    world.calls["sdk:join"] += 1
    try:
        meeting, participant = world.join(
            signature=signature,
            meeting_number=meeting_number,
            user_name=str(body.get("userName", "")),
            passcode=str(body.get("password", "")),
            zak=str(body.get("zak") or ""),
            obf_token=str(body.get("obfToken") or ""),
        )
    except JoinError as error:
        world.calls[f"sdk:join:{error.code}"] += 1
        return _join_failed(error.code, error.reason)
    participant.inbox = asyncio.Queue()
    if participant.state == "in_meeting":
        broadcast(
            meeting,
            roster_event("user-added", participant),
            to=[p for p in meeting.present() if p is not participant],
        )
    return web.json_response(
        {
            "session": f"{meeting.number}/{participant.id}",
            "currentUser": participant.public(),
            "attendees": [p.public() for p in meeting.present() if p.state == "in_meeting"],
            "script": meeting.script,
        },
        headers=CORS,
    )


def _join_failed(code: int, reason: str) -> web.Response:
    return web.json_response(
        {"type": "JOIN_MEETING_FAILED", "reason": reason, "errorCode": code},
        status=400,
        headers=CORS,
    )


async def _latency(world: World) -> None:
    if world.faults.latency_ms:
        await asyncio.sleep(world.faults.latency_ms / 1000)


def _find(world: World, session: str) -> tuple[Meeting, Participant] | None:
    number, _, pid = session.partition("/")
    meeting = world.meetings.get(number)
    participant = meeting.participants.get(pid) if meeting else None
    return (meeting, participant) if meeting and participant else None


async def events(request: web.Request) -> web.WebSocketResponse:
    """Pushes the participant's events; closing the socket means the client is gone."""
    world = request.app[WORLD]
    # A ping every 30 s, a client gone after 15 s without its pong (a dead client's socket
    # usually closes at once; this catches a silent one). Shorter, a test process running a
    # hundred scripted bots beside the simulator missed pongs under load and lost sessions.
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    found = _find(world, request.query.get("session", ""))
    if found is None or found[1].inbox is None:
        await ws.close()
        return ws
    if found[1].state == "left":
        # Removed (or the meeting ended) between the join and this connection: the client
        # still hears why, as a Zoom client would, then the connection closes.
        while not found[1].inbox.empty():
            await ws.send_str(json.dumps(found[1].inbox.get_nowait()))
        await ws.close()
        return ws
    meeting, participant = found
    inbox = participant.inbox
    assert inbox is not None

    async def pump() -> None:
        while True:
            event = await inbox.get()
            await ws.send_str(json.dumps(event))

    sender = asyncio.create_task(pump())
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT and message.data == "leave":
                depart(meeting, participant, "left", None)
            elif message.type == WSMsgType.ERROR:
                break
    finally:
        # Let queued events (e.g. the Closed that ends it) go out before the socket closes.
        await asyncio.sleep(0)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        if participant.state != "left":
            depart(meeting, participant, "connection lost", None)
    return ws


async def leave(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    body = await request.json()
    found = _find(world, str(body.get("session", "")))
    if found is not None:
        depart(*found, "left", None)
    return web.json_response({}, headers=CORS)


# The host's answer to a recording-permission request; unanswered, the SDK denies after 10 s
# (embedded.d.ts, mediaCapturePermission).
PERMISSION_TIMEOUT_SECONDS = 10.0
PERMISSION_ANSWER_SECONDS = 0.5


async def permission(request: web.Request) -> web.Response:
    """client.mediaCapturePermission('request'): the host answers as the meeting says."""
    world = request.app[WORLD]
    found = _find(world, str((await request.json()).get("session", "")))
    if found is None:
        return web.json_response({"error": "no such session"}, status=404, headers=CORS)
    meeting, participant = found
    world.calls["sdk:permission"] += 1
    answer = meeting.recording_permission if meeting.host_present else "ignore"
    granted = answer == "grant"
    delay = PERMISSION_TIMEOUT_SECONDS if answer == "ignore" else PERMISSION_ANSWER_SECONDS

    async def respond() -> None:
        await asyncio.sleep(delay)
        if participant.state != "left":
            payload = {
                "type": "mediaCapturePermission",
                "value": "allow" if granted else "deny",
                "canRecord": granted,
            }
            broadcast(
                meeting,
                {"event": "media-capture-permission-change", "payload": payload},
                to=[participant],
            )

    task = asyncio.create_task(respond())
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)
    return web.json_response({}, headers=CORS)


async def chat(request: web.Request) -> web.Response:
    """client.sendChat(message): everyone else in the meeting receives it."""
    world = request.app[WORLD]
    body = await request.json()
    found = _find(world, str(body.get("session", "")))
    if found is None:
        return web.json_response({"error": "no such session"}, status=404, headers=CORS)
    meeting, sender = found
    message = {
        "id": secrets.token_hex(8),
        "message": str(body.get("message", ""))[:4096],
        "sender": {"name": sender.name, "userId": sender.id},
        "receiver": {"name": "Everyone", "userId": 0},
        "timestamp": int(time.time() * 1000),
    }
    meeting.chat_log.append(message)
    broadcast(
        meeting,
        {"event": "chat-on-message", "payload": message},
        to=[p for p in meeting.present() if p is not sender],
    )
    return web.json_response(message, headers=CORS)


_PENDING: set[asyncio.Task[None]] = set()


async def static_file(request: web.Request) -> web.StreamResponse:
    path = STATIC / request.match_info["name"]
    if not path.is_file() or path.parent != STATIC:
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers=CORS)


def routes() -> list[web.RouteDef]:
    return [
        web.options("/sim/sdk/{tail:.*}", options),
        web.post("/sim/sdk/join", join),
        web.post("/sim/sdk/leave", leave),
        web.get("/sim/sdk/events", events),
        web.post("/sim/sdk/permission", permission),
        web.post("/sim/sdk/chat", chat),
        web.get("/sim/sdk/{name}", static_file),
    ]
