"""One RTMS stream, received: the signaling socket (handshake, event subscription, keep-alives,
the stream's end), the media socket (handshake, keep-alives, audio, transcript and chat), and
reconnection within Zoom's rules.

Zoom keeps a stream whose app went away for 60 s (signaling) and 30 s (media): the session
reconnects both sockets with backoff and full jitter until the stream is back or 30 s after the
loss have passed, whichever is first; audio sent while it was away is lost (the recording shows
the gap). A handshake refused because the stream is gone (SESSION_NOT_FOUND) ends the session
as the stream's end does; a refused signature is permanent (the operator's to fix).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from meetingbot_bot.rtms import protocol
from meetingbot_bot.rtms.protocol import Event, Msg, Status
from meetingbot_contract.rtms import RtmsJoin

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_SECONDS = 10.0
# Zoom's patience with a lost app is 30 s for media; reconnecting stops a little before, so
# that a last try still lands inside it.
RECONNECT_WINDOW_SECONDS = 28.0
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_MAX_SECONDS = 4.0


class Sink(Protocol):
    """Where what the stream carries goes (recorder.RtmsCapture; tests use their own)."""

    def audio(self, pcm: bytes, timestamp_ms: int, user_id: str, name: str) -> None: ...
    def transcript(
        self, user_id: str, name: str, text: str, start_ms: int, end_ms: int
    ) -> None: ...
    def chat(self, user_id: str, name: str, text: str, at_ms: int) -> None: ...
    def speaker(self, user_id: str, name: str, at_ms: int) -> None: ...
    def roster(self, joined: bool, people: list[tuple[str, str]], at_ms: int) -> None: ...


class RtmsRefused(Exception):
    """Zoom refused a handshake for good (a wrong signature, a malformed request)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"RTMS refused the handshake: status {status} {reason}".strip())
        self.status = status


class StreamLost(Exception):
    """The stream could not be reached again within Zoom's reconnection window."""


class _Ended(Exception):
    def __init__(self, reason: int) -> None:
        self.reason = reason


@dataclass
class Outcome:
    """How a session ended: Zoom's stop reason (RTMS_STOP_REASON; 0 when unknown, e.g. the
    stream was gone when the session came back) and whether it ended because it was asked."""

    reason: int
    stopped_by_us: bool = False


class RtmsSession:
    def __init__(
        self,
        join: RtmsJoin,
        sink: Sink,
        http: aiohttp.ClientSession,
        *,
        on_connected: Callable[[None], object] | None = None,
        handshakes: asyncio.Semaphore | None = None,
    ) -> None:
        self.join = join
        self.sink = sink
        self.http = http
        self.on_connected = on_connected
        # Shared by a worker's sessions: how many connect at once (a worker given many streams
        # at once, or taking over another's, would otherwise open them all together; measured:
        # 1000 at once, most were not connected within Zoom's window).
        self._handshakes = handshakes
        self.connections = 0
        self.keepalives_answered = 0
        self.audio_bytes = 0
        self.first_audio_at: float | None = None  # monotonic, for the benchmarks
        self._sequence = 0
        self._stopping = asyncio.Event()
        self._signaling: aiohttp.ClientWebSocketResponse | None = None
        self._up = False  # both sockets were ready during the last connection

    @property
    def connected(self) -> bool:
        """Both sockets up, as far as this session knows."""
        return self._up

    async def run(self) -> Outcome:
        # The first connection is timed like a reconnection: the stream is waiting for us.
        lost_since, failures = time.monotonic(), 0
        while True:
            self._up = False
            try:
                await self._connected_once()
            except _Ended as ended:
                return Outcome(ended.reason)
            except RtmsRefused as refused:
                if refused.status == Status.SESSION_NOT_FOUND:
                    return Outcome(0)  # the stream ended while we were away
                raise
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
                log.info("rtms connection lost", extra={"error": type(error).__name__})
            if self._stopping.is_set():
                return Outcome(0, stopped_by_us=True)
            now = time.monotonic()
            if self._up:
                lost_since, failures = now, 0
            elif now - lost_since > RECONNECT_WINDOW_SECONDS:
                raise StreamLost("the stream was not reached again within 30 s")
            failures += 1
            ceiling = min(BACKOFF_BASE_SECONDS * 2**failures, BACKOFF_MAX_SECONDS)
            with contextlib.suppress(TimeoutError):
                # Full jitter; a stop request ends the wait.
                await asyncio.wait_for(
                    self._stopping.wait(),
                    timeout=random.uniform(0, ceiling),  # noqa: S311 - jitter
                )
            if self._stopping.is_set():
                return Outcome(0, stopped_by_us=True)

    async def stop(self, *, end_stream: bool = False) -> None:
        """Leave the stream: only disconnect (another worker may take it over), or with
        end_stream ask Zoom to close it (STREAM_CLOSE_REQ): nobody will receive it again."""
        if end_stream and self._signaling is not None and not self._signaling.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._signaling.send_json(protocol.close_request(self.join))
        self._stopping.set()
        if self._signaling is not None:
            await self._signaling.close()

    # --- one connection of both sockets ------------------------------------------------------

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    async def _connected_once(self) -> None:
        if self._handshakes is None:
            await self._connect_and_receive(None)
            return
        await self._handshakes.acquire()
        gate: list[asyncio.Semaphore] = [self._handshakes]  # released once the sockets are up
        try:
            await self._connect_and_receive(gate)
        finally:
            if gate:
                gate.pop().release()

    async def _connect_and_receive(self, gate: list[asyncio.Semaphore] | None) -> None:
        timeout = aiohttp.ClientWSTimeout(ws_close=5.0)
        async with self.http.ws_connect(
            self.join.server_urls, timeout=timeout, heartbeat=None, max_msg_size=0
        ) as signaling:
            self._signaling = signaling
            await signaling.send_json(protocol.signaling_handshake(self.join, self._next()))
            answer = await self._answer(signaling, Msg.SIGNALING_HAND_SHAKE_RESP)
            urls = (answer.get("media_server") or {}).get("server_urls") or {}
            media_url = urls.get("all") or urls.get("audio") or urls.get("transcript")
            if not media_url:
                raise RtmsRefused(-1, "no media server in the handshake answer")
            async with self.http.ws_connect(
                str(media_url), timeout=timeout, heartbeat=None, max_msg_size=0
            ) as media:
                await media.send_json(protocol.media_handshake(self.join, self._next()))
                await self._answer(media, Msg.DATA_HAND_SHAKE_RESP)
                await signaling.send_json(protocol.subscription())
                await signaling.send_json(protocol.ready(self.join))
                if gate:
                    gate.pop().release()  # the next session may connect
                self.connections += 1
                self._up = True
                log.info("rtms stream connected", extra={"connections": self.connections})
                if self.on_connected is not None:
                    self.on_connected(None)
                await self._receive(signaling, media)

    async def _answer(self, ws: aiohttp.ClientWebSocketResponse, expected: Msg) -> dict[str, Any]:
        message = await ws.receive(timeout=HANDSHAKE_TIMEOUT_SECONDS)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"the socket closed during the handshake ({message.type.name})")
        answer = json.loads(message.data)
        if answer.get("msg_type") != expected:
            raise RtmsRefused(-1, f"unexpected message {answer.get('msg_type')}")
        status = int(answer.get("status_code", 0))
        if status != Status.OK:
            raise RtmsRefused(status, str(answer.get("reason") or ""))
        return dict(answer)

    async def _receive(
        self, signaling: aiohttp.ClientWebSocketResponse, media: aiohttp.ClientWebSocketResponse
    ) -> None:
        """Read both sockets until one closes (then the caller reconnects) or the stream ends."""
        readers = [
            asyncio.create_task(self._read(signaling, self._on_signaling)),
            asyncio.create_task(self._read(media, self._on_media)),
        ]
        try:
            done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # _Ended and protocol errors go up
        finally:
            for task in readers:
                task.cancel()
            for task in readers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _read(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        handle: Callable[[aiohttp.ClientWebSocketResponse, dict[str, Any]], Awaitable[None]],
    ) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                data = json.loads(message.data)
            except ValueError:
                log.warning("rtms sent a frame that is not JSON")
                continue
            if isinstance(data, dict):
                await handle(ws, data)

    async def _on_signaling(self, ws: aiohttp.ClientWebSocketResponse, m: dict[str, Any]) -> None:
        kind = m.get("msg_type")
        if kind == Msg.KEEP_ALIVE_REQ:
            await ws.send_json(protocol.keep_alive_answer(m))
            self.keepalives_answered += 1
        elif kind == Msg.STREAM_STATE_UPDATE and m.get("state") == protocol.STREAM_TERMINATED:
            raise _Ended(int(m.get("reason") or 0))
        elif kind == Msg.EVENT_UPDATE:
            self._on_event(m.get("event") or {})

    async def _on_media(self, ws: aiohttp.ClientWebSocketResponse, m: dict[str, Any]) -> None:
        kind = m.get("msg_type")
        content = m.get("content") or {}
        if kind == Msg.KEEP_ALIVE_REQ:
            await ws.send_json(protocol.keep_alive_answer(m))
            self.keepalives_answered += 1
        elif kind == Msg.MEDIA_DATA_AUDIO:
            try:
                pcm = base64.b64decode(str(content.get("data", "")), validate=True)
            except (binascii.Error, ValueError):
                log.warning("an audio message could not be decoded")
                return
            if self.first_audio_at is None:
                self.first_audio_at = time.monotonic()
            self.audio_bytes += len(pcm)
            self.sink.audio(
                pcm,
                int(content.get("timestamp") or 0),
                _uid(content),
                str(content.get("user_name") or ""),
            )
        elif kind == Msg.MEDIA_DATA_TRANSCRIPT:
            at = int(content.get("timestamp") or 0)
            self.sink.transcript(
                _uid(content),
                str(content.get("user_name") or ""),
                str(content.get("data") or ""),
                int(content.get("start_time") or at),
                int(content.get("end_time") or at),
            )
        elif kind == Msg.MEDIA_DATA_CHAT:
            self.sink.chat(
                _uid(content),
                str(content.get("user_name") or ""),
                str(content.get("data") or ""),
                int(content.get("timestamp") or 0),
            )
        elif kind == Msg.STREAM_STATE_UPDATE and m.get("state") == protocol.STREAM_TERMINATED:
            raise _Ended(int(m.get("reason") or 0))

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event_type")
        at = int(event.get("timestamp") or 0)
        if kind == Event.ACTIVE_SPEAKER_CHANGE:
            self.sink.speaker(str(event.get("current_id", "")), str(event.get("name") or ""), at)
        elif kind in (Event.PARTICIPANT_JOIN, Event.PARTICIPANT_LEAVE):
            people = [
                (str(p.get("user_id", "")), str(p.get("user_name") or ""))
                for p in event.get("participants") or []
                if isinstance(p, dict)
            ]
            self.sink.roster(kind == Event.PARTICIPANT_JOIN, people, at)


def _uid(content: dict[str, Any]) -> str:
    value = content.get("user_id")
    return "" if value in (None, 0, "0") else str(value)
