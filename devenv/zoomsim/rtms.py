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

import array
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Coroutine
from functools import cache
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from devenv.zoomsim.rest import WORLD, Gate, zoom_error
from devenv.zoomsim.state import Account, Meeting, RtmsStream, World

log = logging.getLogger(__name__)

# RTMS_MESSAGE_TYPE (Zoom's data type definitions).
SIGNALING_HAND_SHAKE_REQ = 1
SIGNALING_HAND_SHAKE_RESP = 2
DATA_HAND_SHAKE_REQ = 3
DATA_HAND_SHAKE_RESP = 4
EVENT_SUBSCRIPTION = 5
EVENT_UPDATE = 6
CLIENT_READY_ACK = 7
STREAM_STATE_UPDATE = 8
KEEP_ALIVE_REQ = 12
KEEP_ALIVE_RESP = 13
MEDIA_DATA_AUDIO = 14
MEDIA_DATA_TRANSCRIPT = 17
MEDIA_DATA_CHAT = 18
STREAM_CLOSE_REQ = 21
STREAM_CLOSE_RESP = 22
# MEDIA_DATA_TYPE bits (the handshake's media_type).
AUDIO, VIDEO, DESKSHARE, TRANSCRIPT, CHAT, ALL = 1, 2, 4, 8, 16, 32
# RTMS_EVENT_TYPE.
FIRST_PACKET_TIMESTAMP, ACTIVE_SPEAKER_CHANGE, PARTICIPANT_JOIN, PARTICIPANT_LEAVE = 1, 2, 3, 4
# RTMS_STATUS_CODE (the ones the simulator answers with).
STATUS_OK = 0
STATUS_CONNECTION_TIMEOUT = 1
STATUS_INVALID_MESSAGE_TYPE = 4
STATUS_SESSION_NOT_FOUND = 13
STATUS_INVALID_SIGNATURE = 15
# RTMS_STREAM_STATE and RTMS_STOP_REASON.
STREAM_TERMINATED = 4
STOP_BC_HOST_TRIGGERED = 1
STOP_BC_MEETING_ENDED = 6
STOP_BC_STREAM_CANCELED = 7
STOP_BC_CONNECTION_TIMEOUT = 11
# AUDIO_SAMPLE_RATE: the enum's value -> Hz; AUDIO_DATA_OPTION: mixed, or one per speaker.
SAMPLE_RATES = {0: 8000, 1: 16000, 2: 32000, 3: 48000}
AUDIO_MIXED_STREAM, AUDIO_MULTI_STREAMS = 1, 2
DEFAULT_AUDIO = {
    "content_type": 2,  # RAW_AUDIO
    "sample_rate": 1,  # 16 kHz
    "channel": 1,  # mono
    "codec": 1,  # L16
    "data_opt": AUDIO_MIXED_STREAM,
    "send_rate": 20,  # milliseconds of audio per message
}
BUFFER_LIMIT_MS = 60_000  # audio kept for an app that is still connecting (buffer_data)
HANDSHAKE_DEADLINE = 10.0  # seconds a new socket has to send its handshake
TONE_AMPLITUDE = 8000  # per speaker, of 32767: two at once do not clip


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
        "timestamp": _ms(),
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
    _spawn(_notify(world, stream, "meeting.rtms_stopped", payload))


_BACKGROUND: set[asyncio.Task[None]] = set()  # webhooks and closing sockets, under way


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


async def _notify(world: World, stream: RtmsStream, event: str, payload: dict[str, Any]) -> None:
    """Post an event to the app's endpoint; Zoom counts an answer other than 200/204 within
    3 s as failed and retries it later (the same event, so an app that answers late may be
    told of one stream twice)."""
    url = stream.app.event_notification_url
    if not url:
        return
    faults = world.faults
    body = json.dumps({"event": event, "event_ts": _ms(), "payload": payload})
    delays = (0.0, *faults.rtms_webhook_retry_seconds)
    for attempt, delay in enumerate(delays):
        await asyncio.sleep(delay)
        began = time.monotonic()
        record: dict[str, Any] = {"event": event, "attempt": attempt + 1}
        try:
            timeout = aiohttp.ClientTimeout(total=faults.rtms_webhook_timeout_seconds)
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(
                    url, data=body, headers=signed_headers(stream.app.webhook_secret_token, body)
                ) as answer,
            ):
                record["status"] = answer.status
        except (aiohttp.ClientError, TimeoutError) as error:
            record["error"] = type(error).__name__
        record["seconds"] = round(time.monotonic() - began, 3)
        stream.deliveries.append(record)
        if record.get("status") in (200, 204):
            return


async def validate_endpoint(app: Account) -> bool:
    """What Zoom does when an app's event notification endpoint is saved: it posts
    endpoint.url_validation with a plainToken and expects, within 3 s, the token back with
    encryptedToken = HMAC-SHA256(secret token, plainToken), hex."""
    plain = secrets.token_urlsafe(16)
    body = json.dumps(
        {"event": "endpoint.url_validation", "event_ts": _ms(), "payload": {"plainToken": plain}}
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


def _lost(stream: RtmsStream, socket: str, ws: web.WebSocketResponse) -> None:
    """The app's socket closed: unless a newer one replaced it, the stream waits for it."""
    if getattr(stream, socket) is ws:
        setattr(stream, socket, None)
        setattr(stream, f"{socket}_lost_at", time.time())
        stream.ready = False


async def signaling(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=None)
    await ws.prepare(request)
    found = await _handshake(request, ws, SIGNALING_HAND_SHAKE_REQ)
    if found is None:
        return ws
    stream, message = found
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
    ws = web.WebSocketResponse(heartbeat=None)
    await ws.prepare(request)
    found = await _handshake(request, ws, DATA_HAND_SHAKE_REQ)
    if found is None:
        return ws
    stream, message = found
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


# --- the stream's clock: media, events, keep-alives, timeouts ------------------------------


@cache
def _tone(hz: int, rate: int) -> bytes:
    """One second of a tone, twice (a frame may wrap around); whole-Hz tones repeat every
    second exactly, so the table is seamless."""
    samples = array.array(
        "h", (round(TONE_AMPLITUDE * math.sin(2 * math.pi * hz * n / rate)) for n in range(rate))
    )
    return samples.tobytes() * 2


def _mix(parts: list[bytes]) -> bytes:
    if len(parts) == 1:
        return parts[0]
    mixed = array.array("h", parts[0])
    for part in parts[1:]:
        other = array.array("h", part)
        for i, value in enumerate(other):
            mixed[i] = max(-32768, min(32767, mixed[i] + value))
    return mixed.tobytes()


def _speaking(meeting: Meeting, at_ms: int) -> list[dict[str, Any]]:
    script = meeting.script
    if not script:
        return []
    start = int(script["startsAtMs"])
    return [
        line
        for line in script["speech"]
        if start + line["from"] * 1000 <= at_ms < start + line["to"] * 1000
    ]


def _user_id(pid: str) -> int:
    """RTMS names participants by a number (the simulator's ids are hex)."""
    return int(pid, 16) if pid else 0


class _Clock:
    """What one stream has sent so far of the script, and its audio clock."""

    def __init__(self, stream: RtmsStream) -> None:
        self.stream = stream
        self.samples = 0  # samples since the stream started, at the current rate
        self.buffer: deque[dict[str, Any]] = deque()
        self.said: set[tuple[str, int]] = set()  # transcript and chat lines already sent
        self.speaker: str | None = None
        self.present: dict[str, str] = {}
        self.first_packet = False
        self.last_keepalive = time.monotonic()

    def audio(self, now_ms: int, frame_ms: int) -> list[dict[str, Any]]:
        params = self.stream.media_params.get("audio") or DEFAULT_AUDIO
        rate = SAMPLE_RATES[int(params["sample_rate"])]
        count = rate * frame_ms // 1000
        offset = (self.samples % rate) * 2
        self.samples += count
        speakers = _speaking(self.stream.meeting, now_ms)
        parts = {
            line["userId"]: (
                line["displayName"],
                _tone(int(line["toneHz"]), rate)[offset : offset + 2 * count],
            )
            for line in speakers
        }
        if int(params["data_opt"]) == AUDIO_MULTI_STREAMS:
            # Only who speaks is sent, up to 3 per frame (Zoom's limit).
            return [
                _audio_message(_user_id(uid), name, data, now_ms)
                for uid, (name, data) in list(parts.items())[:3]
            ]
        data = _mix([d for _, d in parts.values()]) if parts else bytes(2 * count)
        return [_audio_message(0, "", data, now_ms)]

    def texts(self, now_ms: int) -> list[dict[str, Any]]:
        script = self.stream.meeting.script
        if not script:
            return []
        start = int(script["startsAtMs"])
        out: list[dict[str, Any]] = []
        for i, line in enumerate(script["speech"]):
            end = start + int(line["to"] * 1000)
            if end <= now_ms and ("t", i) not in self.said and line.get("text"):
                self.said.add(("t", i))
                out.append(
                    {
                        "msg_type": MEDIA_DATA_TRANSCRIPT,
                        "content": {
                            "user_id": _user_id(line["userId"]),
                            "user_name": line["displayName"],
                            "data": line["text"],
                            "timestamp": end,
                            "start_time": start + int(line["from"] * 1000),
                            "end_time": end,
                        },
                    }
                )
        for i, line in enumerate(script["chat"]):
            at = start + int(line["at"] * 1000)
            if at <= now_ms and ("c", i) not in self.said:
                self.said.add(("c", i))
                out.append(
                    {
                        "msg_type": MEDIA_DATA_CHAT,
                        "content": {
                            "user_id": _user_id(line["userId"]),
                            "user_name": line["displayName"],
                            "data": line["message"],
                            "timestamp": at,
                        },
                    }
                )
        return out

    def events(self, now_ms: int) -> list[dict[str, Any]]:
        out = []
        wanted = self.stream.subscribed_events
        if not self.first_packet and FIRST_PACKET_TIMESTAMP in wanted:
            self.first_packet = True
            out.append(_event(FIRST_PACKET_TIMESTAMP, now_ms))
        present = {p.id: p.name for p in self.stream.meeting.present() if p.state == "in_meeting"}
        joined = [pid for pid in present if pid not in self.present]
        left = [pid for pid in self.present if pid not in present]
        if joined and PARTICIPANT_JOIN in wanted:
            people = [{"user_id": _user_id(p), "user_name": present[p]} for p in joined]
            out.append(_event(PARTICIPANT_JOIN, now_ms, participants=people))
        if left and PARTICIPANT_LEAVE in wanted:
            people = [{"user_id": _user_id(p), "user_name": self.present[p]} for p in left]
            out.append(_event(PARTICIPANT_LEAVE, now_ms, participants=people))
        self.present = present
        speakers = _speaking(self.stream.meeting, now_ms)
        current = speakers[0]["userId"] if speakers else None
        if current is not None and current != self.speaker and ACTIVE_SPEAKER_CHANGE in wanted:
            out.append(
                _event(
                    ACTIVE_SPEAKER_CHANGE,
                    now_ms,
                    current_id=_user_id(current),
                    name=speakers[0]["displayName"],
                )
            )
        if current is not None:
            self.speaker = current
        return out


def _audio_message(user_id: int, name: str, data: bytes, now_ms: int) -> dict[str, Any]:
    return {
        "msg_type": MEDIA_DATA_AUDIO,
        "content": {
            "user_id": user_id,
            "user_name": name,
            "data": base64.b64encode(data).decode(),
            "timestamp": now_ms,
        },
    }


def _event(event_type: int, now_ms: int, **fields: Any) -> dict[str, Any]:
    return {
        "msg_type": EVENT_UPDATE,
        "event": {"event_type": event_type, "timestamp": now_ms, **fields},
    }


async def _pump(world: World, stream: RtmsStream, signaling_url: str) -> None:
    started = {
        "meeting_uuid": stream.meeting_uuid,
        "operator_id": stream.operator_id,
        "rtms_stream_id": stream.id,
        "server_urls": signaling_url,
        "account_id": stream.meeting.account_id,
        "meeting_id": int(stream.meeting.number),
    }
    _spawn(_notify(world, stream, "meeting.rtms_started", started))
    clock = _Clock(stream)
    next_tick = time.monotonic()
    try:
        while stream.state == "started":
            frame_ms = int((stream.media_params.get("audio") or DEFAULT_AUDIO)["send_rate"])
            now_ms = _ms()
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


async def _tick(
    world: World, stream: RtmsStream, clock: _Clock, now_ms: int, frame_ms: int
) -> None:
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
        stream.sent[int(message["msg_type"])] += 1


def _ms() -> int:
    return int(time.time() * 1000)


# --- Zoom's REST call and the admin side ------------------------------------------------

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
