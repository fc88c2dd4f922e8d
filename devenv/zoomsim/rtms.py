"""Zoom's Realtime Media Streams (RTMS), as docs/rtms.md describes them from Zoom's RTMS
documentation: no participant joins; Zoom posts `meeting.rtms_started` to the app's event
notification endpoint (signed like every Zoom webhook), the app opens a signaling websocket
(handshake signed with its client secret over `client_id,meeting_uuid,rtms_stream_id`), is
sent the media server's URL, opens the media websocket, says it is ready, answers keep-alives
on both, and is sent the meeting's audio (L16, 16 kHz mono by default, mixed or one message
per speaker every 20 ms), transcript and chat, and the speaker and participant events it
subscribed to. When the meeting ends (or the stream is stopped) both sockets are told and
closed and `meeting.rtms_stopped` is posted.

The media is the meeting's script (admin.py): each scripted speaker is heard as its own tone,
the same tones the browser bot hears on the SDK's audio paths, so one meeting can be captured
both ways and compared. This module is an independent reading of Zoom's documents: it shares
no code with the operator's RTMS client, so a misreading on one side shows up in the tests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Coroutine
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from devenv.zoomsim.rest import WORLD
from devenv.zoomsim.rtms_media import (
    ALL,
    AUDIO,
    BUFFER_LIMIT_MS,
    CHAT,
    CLIENT_READY_ACK,
    DATA_HAND_SHAKE_REQ,
    DATA_HAND_SHAKE_RESP,
    DEFAULT_AUDIO,
    EVENT_SUBSCRIPTION,
    HANDSHAKE_DEADLINE,
    KEEP_ALIVE_REQ,
    KEEP_ALIVE_RESP,
    MEDIA_DATA_AUDIO,
    MEDIA_DATA_CHAT,
    MEDIA_DATA_TRANSCRIPT,
    SAMPLE_RATES,
    SIGNALING_HAND_SHAKE_REQ,
    SIGNALING_HAND_SHAKE_RESP,
    STATUS_CONNECTION_TIMEOUT,
    STATUS_INVALID_MESSAGE_TYPE,
    STATUS_INVALID_SIGNATURE,
    STATUS_OK,
    STATUS_SESSION_NOT_FOUND,
    STOP_BC_CONNECTION_TIMEOUT,
    STOP_BC_MEETING_ENDED,
    STOP_BC_STREAM_CANCELED,
    STREAM_CLOSE_REQ,
    STREAM_CLOSE_RESP,
    STREAM_STATE_UPDATE,
    STREAM_TERMINATED,
    TRANSCRIPT,
    Clock,
    epoch_ms,
)
from devenv.zoomsim.state import Account, Meeting, RtmsStream, World
from devenv.zoomsim.webhook_sender import SENDER

log = logging.getLogger(__name__)

# --- starting and stopping -------------------------------------------------------------------


def start_stream(
    world: World, meeting: Meeting, app: Account, operator_id: str, base_url: str
) -> RtmsStream:
    """The host (or Zoom, for an app that starts automatically, or the REST call) starts the
    app's stream: Zoom starts buffering audio and posts meeting.rtms_started."""
    stream = RtmsStream(
        id=secrets.token_hex(16),
        meeting_uuid=base64.b64encode(secrets.token_bytes(16)).decode(),
        meeting=meeting,
        app=app,
        operator_id=operator_id,
    )
    world.rtms_streams[stream.id] = stream
    signaling_url = f"{world.rtms_base_url or base_url}/rtms/signaling/{stream.id}"
    stream.task = asyncio.get_running_loop().create_task(_pump(world, stream, signaling_url))
    return stream


def _base_url(request: web.Request) -> str:
    return str(request.url.origin()).replace("http", "ws", 1)


def stop_stream(world: World, stream: RtmsStream, reason: int) -> None:
    if stream.state == "stopped":
        return
    stream.state = "stopped"
    stream.stop_reason = reason
    update = {
        "msg_type": STREAM_STATE_UPDATE,
        "rtms_stream_id": stream.id,
        "state": STREAM_TERMINATED,
        "reason": reason,
        "timestamp": epoch_ms(),
    }
    for ws in (stream.signaling, stream.media):
        if ws is not None and not ws.closed:
            _spawn(_send_and_close(ws, update))
    payload = {
        "meeting_uuid": stream.meeting_uuid,
        "rtms_stream_id": stream.id,
        "stop_reason": reason,
        "account_id": stream.meeting.account_id,
        "meeting_id": int(stream.meeting.number),
    }
    SENDER.send(_notify(world, stream, "meeting.rtms_stopped", payload))


_BACKGROUND: set[asyncio.Task[None]] = set()  # closing sockets, under way


def _spawn(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


async def _send_and_close(ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_json(message)
        await ws.close()


# --- webhooks ----------------------------------------------------------------------------


def signed_headers(secret_token: str, body: str) -> dict[str, str]:
    """How Zoom signs a webhook: x-zm-signature = v0=HMAC-SHA256(secret token,
    "v0:{x-zm-request-timestamp}:{body}"), hex."""
    stamp = str(int(time.time()))
    digest = hmac.new(
        secret_token.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256
    ).hexdigest()
    return {
        "Content-Type": "application/json",
        "x-zm-request-timestamp": stamp,
        "x-zm-signature": f"v0={digest}",
    }


async def post_signed(url: str, secret_token: str, body: str, timeout: float) -> dict[str, Any]:
    """Post one webhook, signed as Zoom signs them; what happened: its status (or the error's
    kind) and how long the answer took."""
    began = time.monotonic()
    record: dict[str, Any] = {}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
            http.post(url, data=body, headers=signed_headers(secret_token, body)) as answer,
        ):
            record["status"] = answer.status
    except (aiohttp.ClientError, TimeoutError) as error:
        record["error"] = type(error).__name__
    record["seconds"] = round(time.monotonic() - began, 3)
    return record


async def _notify(world: World, stream: RtmsStream, event: str, payload: dict[str, Any]) -> None:
    """Post an event to the app's endpoint; Zoom counts an answer other than 200/204 within
    3 s as failed and retries it later (the same event, so an app that answers late may be
    told of one stream twice)."""
    url = stream.app.event_notification_url
    if not url:
        return
    faults = world.faults
    body = json.dumps({"event": event, "event_ts": epoch_ms(), "payload": payload})
    delays = (0.0, *faults.rtms_webhook_retry_seconds)
    for attempt, delay in enumerate(delays):
        await asyncio.sleep(delay)
        sent = await post_signed(url, stream.app.webhook_secret_token, body,
                                 faults.rtms_webhook_timeout_seconds)  # fmt: skip
        stream.deliveries.append({"event": event, "attempt": attempt + 1, **sent})
        if sent.get("status") in (200, 204):
            return


async def validate_endpoint(app: Account) -> bool:
    """What Zoom does when an app's event notification endpoint is saved: it posts
    endpoint.url_validation with a plainToken and expects, within 3 s, the token back with
    encryptedToken = HMAC-SHA256(secret token, plainToken), hex."""
    plain = secrets.token_urlsafe(16)
    body = json.dumps(
        {
            "event": "endpoint.url_validation",
            "event_ts": epoch_ms(),
            "payload": {"plainToken": plain},
        }
    )
    expected = hmac.new(
        app.webhook_secret_token.encode(), plain.encode(), hashlib.sha256
    ).hexdigest()
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http,
            http.post(
                app.event_notification_url,
                data=body,
                headers=signed_headers(app.webhook_secret_token, body),
            ) as answer,
        ):
            if answer.status != 200:
                return False
            got = await answer.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return False
    return bool(got.get("plainToken") == plain and got.get("encryptedToken") == expected)


# --- the two websockets ------------------------------------------------------------------------


def handshake_signature(app: Account, meeting_uuid: str, stream_id: str) -> str:
    message = f"{app.user_client_id},{meeting_uuid},{stream_id}"
    return hmac.new(app.user_client_secret.encode(), message.encode(), hashlib.sha256).hexdigest()


async def _handshake(
    request: web.Request, ws: web.WebSocketResponse, kind: int
) -> tuple[RtmsStream, dict[str, Any]] | None:
    """The first message of either socket: the stream, or an error answer and a closed
    socket."""
    world = request.app[WORLD]
    answer_type = kind + 1
    try:
        first = await ws.receive(timeout=HANDSHAKE_DEADLINE)
    except TimeoutError:
        await _send_and_close(
            ws, {"msg_type": answer_type, "status_code": STATUS_CONNECTION_TIMEOUT}
        )
        return None
    try:
        message = json.loads(first.data) if first.type == WSMsgType.TEXT else {}
    except ValueError:
        message = {}
    if message.get("msg_type") != kind:
        await _send_and_close(
            ws, {"msg_type": answer_type, "status_code": STATUS_INVALID_MESSAGE_TYPE}
        )
        return None
    stream = world.rtms_streams.get(request.match_info["stream_id"])
    if (
        stream is None
        or stream.state != "started"
        or message.get("rtms_stream_id") != stream.id
        or message.get("meeting_uuid") != stream.meeting_uuid
    ):
        await _send_and_close(
            ws, {"msg_type": answer_type, "status_code": STATUS_SESSION_NOT_FOUND}
        )
        return None
    expected = handshake_signature(stream.app, stream.meeting_uuid, stream.id)
    if not hmac.compare_digest(str(message.get("signature", "")), expected):
        await _send_and_close(
            ws, {"msg_type": answer_type, "status_code": STATUS_INVALID_SIGNATURE}
        )
        return None
    stream.handshakes += 1
    # One connection of each kind per stream: the newer one wins (Zoom's rule).
    socket = "signaling" if kind == SIGNALING_HAND_SHAKE_REQ else "media"
    previous = getattr(stream, socket)
    setattr(stream, socket, ws)
    if previous is not None and not previous.closed:
        await previous.close()
    setattr(stream, f"{socket}_lost_at", None)
    stream.misses[socket] = 0
    return stream, message


async def _opened(
    request: web.Request, kind: int
) -> tuple[web.WebSocketResponse, RtmsStream | None, dict[str, Any]]:
    """A new socket of the app, past its handshake; no stream: refused (and closed)."""
    ws = web.WebSocketResponse(heartbeat=None)
    await ws.prepare(request)
    found = await _handshake(request, ws, kind)
    return (ws, *found) if found is not None else (ws, None, {})


def _lost(stream: RtmsStream, socket: str, ws: web.WebSocketResponse) -> None:
    """The app's socket closed: unless a newer one replaced it, the stream waits for it."""
    if getattr(stream, socket) is ws:
        setattr(stream, socket, None)
        setattr(stream, f"{socket}_lost_at", time.time())
        stream.ready = False


async def signaling(request: web.Request) -> web.WebSocketResponse:
    ws, stream, message = await _opened(request, SIGNALING_HAND_SHAKE_REQ)
    if stream is None:
        return ws
    stream.buffer_data = bool(message.get("buffer_data", True))
    media_url = str(request.url.with_path(f"/rtms/media/{stream.id}").with_query(None))
    await ws.send_json(
        {
            "msg_type": SIGNALING_HAND_SHAKE_RESP,
            "protocol_version": 1,
            "sequence": message.get("sequence", 0),
            "status_code": STATUS_OK,
            "reason": "",
            "media_server": {
                "server_urls": {
                    "audio": media_url,
                    "video": media_url,
                    "transcript": media_url,
                    "all": media_url,
                }
            },
        }
    )
    try:
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            try:
                incoming = json.loads(frame.data)
            except ValueError:
                continue
            kind = incoming.get("msg_type")
            if kind == KEEP_ALIVE_RESP:
                stream.misses["signaling"] = 0
            elif kind == EVENT_SUBSCRIPTION:
                for item in incoming.get("events") or []:
                    event_type = int(item.get("event_type", 0))
                    if item.get("subscribe", True):
                        stream.subscribed_events.add(event_type)
                    else:
                        stream.subscribed_events.discard(event_type)
            elif kind == CLIENT_READY_ACK:
                stream.ready = stream.media is not None
                stream.ever_ready = stream.ever_ready or stream.ready
            elif kind == STREAM_CLOSE_REQ:
                await ws.send_json(
                    {"msg_type": STREAM_CLOSE_RESP, "rtms_stream_id": stream.id, "status_code": 0}
                )
                stop_stream(request.app[WORLD], stream, STOP_BC_STREAM_CANCELED)
    finally:
        _lost(stream, "signaling", ws)
    return ws


async def media(request: web.Request) -> web.WebSocketResponse:
    ws, stream, message = await _opened(request, DATA_HAND_SHAKE_REQ)
    if stream is None:
        return ws
    stream.ready = False  # until CLIENT_READY_ACK on the signaling socket
    stream.media_type = int(message.get("media_type", AUDIO))
    asked = message.get("media_params") or {}
    audio = {**DEFAULT_AUDIO, **(asked.get("audio") or {})}
    if audio["send_rate"] % 20 or not 20 <= audio["send_rate"] <= 1000:
        audio["send_rate"] = DEFAULT_AUDIO["send_rate"]
    if audio["sample_rate"] not in SAMPLE_RATES:
        audio["sample_rate"] = DEFAULT_AUDIO["sample_rate"]
    stream.media_params = {**asked, "audio": audio}
    await ws.send_json(
        {
            "msg_type": DATA_HAND_SHAKE_RESP,
            "protocol_version": 1,
            "sequence": message.get("sequence", 0),
            "status_code": STATUS_OK,
            "reason": "",
            "payload_encrypted": False,
            "media_params": stream.media_params,
        }
    )
    try:
        async for frame in ws:
            if frame.type == WSMsgType.TEXT:
                with contextlib.suppress(ValueError):
                    if json.loads(frame.data).get("msg_type") == KEEP_ALIVE_RESP:
                        stream.misses["media"] = 0
    finally:
        _lost(stream, "media", ws)
    return ws


async def _pump(world: World, stream: RtmsStream, signaling_url: str) -> None:
    started = {
        "meeting_uuid": stream.meeting_uuid,
        "operator_id": stream.operator_id,
        "rtms_stream_id": stream.id,
        "server_urls": signaling_url,
        "account_id": stream.meeting.account_id,
        "meeting_id": int(stream.meeting.number),
    }
    SENDER.send(_notify(world, stream, "meeting.rtms_started", started))
    clock = Clock(stream)
    next_tick = time.monotonic()
    try:
        while stream.state == "started":
            frame_ms = int((stream.media_params.get("audio") or DEFAULT_AUDIO)["send_rate"])
            now_ms = epoch_ms()
            if stream.meeting.ended:
                stop_stream(world, stream, STOP_BC_MEETING_ENDED)
                break
            if _timed_out(world, stream):
                stop_stream(world, stream, STOP_BC_CONNECTION_TIMEOUT)
                break
            await _tick(world, stream, clock, now_ms, frame_ms)
            next_tick += frame_ms / 1000
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    except Exception:
        log.exception("rtms stream %s failed", stream.id)
        stop_stream(world, stream, 10)


def _timed_out(world: World, stream: RtmsStream) -> bool:
    now = time.time()
    faults = world.faults
    return bool(
        (
            stream.signaling_lost_at is not None
            and now - stream.signaling_lost_at > faults.rtms_signaling_grace_seconds
        )
        or (
            stream.media_lost_at is not None
            and now - stream.media_lost_at > faults.rtms_media_grace_seconds
        )
    )


async def _tick(world: World, stream: RtmsStream, clock: Clock, now_ms: int, frame_ms: int) -> None:
    audio = (
        clock.audio(now_ms, frame_ms)
        if stream.media_type & (AUDIO | ALL) or not stream.media_type
        else []
    )
    texts = clock.texts(now_ms)
    wanted = stream.media_type or AUDIO
    texts = [
        m
        for m in texts
        if (m["msg_type"] == MEDIA_DATA_TRANSCRIPT and wanted & (TRANSCRIPT | ALL))
        or (m["msg_type"] == MEDIA_DATA_CHAT and wanted & (CHAT | ALL))
    ]
    if stream.ready and stream.media is not None:
        outgoing = [*clock.buffer, *audio, *texts]
        clock.buffer.clear()
        for message in outgoing:
            await _send(stream, stream.media, message)
    elif stream.buffer_data and not stream.ever_ready:
        # Before the app is first ready, audio is kept up to 60 s (after, a gap is lost).
        clock.buffer.extend(audio)
        while len(clock.buffer) * frame_ms > BUFFER_LIMIT_MS:
            clock.buffer.popleft()
    if stream.signaling is not None:
        for message in clock.events(now_ms):
            await _send(stream, stream.signaling, message)
    if time.monotonic() - clock.last_keepalive >= world.faults.rtms_keepalive_seconds:
        clock.last_keepalive = time.monotonic()
        for name, ws in (("signaling", stream.signaling), ("media", stream.media)):
            if ws is None or ws.closed:
                continue
            misses = stream.misses.get(name, 0)
            stream.misses[name] = misses + 1
            if misses >= world.faults.rtms_keepalive_misses:
                await ws.close()  # Zoom gives up on an app that stopped answering
                continue
            await _send(stream, ws, {"msg_type": KEEP_ALIVE_REQ, "timestamp": now_ms})


async def _send(stream: RtmsStream, ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
    if ws.closed:
        return
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_str(json.dumps(message))
        kind = int(message["msg_type"])
        stream.sent[kind] += 1
        if kind == MEDIA_DATA_AUDIO and stream.first_audio_at is None:
            stream.first_audio_at = time.time()
