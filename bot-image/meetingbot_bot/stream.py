"""The live stream (spec.stream): the meeting's mixed audio and the capture's events, sent over
a WebSocket while the bot is in the meeting (meetingbot_contract/stream.py is the protocol).

Never in the recording's way: the page hands PCM over and the capture hands events over
without waiting (`audio` and `event` only queue); one task sends. While disconnected, audio is
dropped (counted: the recording has it) and events wait, up to MAX_PENDING_EVENTS. The
connection is tried again with backoff and full jitter, for as long as the bot runs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random

import aiohttp

from meetingbot_contract import EventLine, Hello, StreamConfig, audio_frame
from meetingbot_contract.stream import MAX_PENDING_EVENTS, AudioFormat

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10.0
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 15.0
# Audio queued while connected but not yet sent: beyond this (a slow receiver), the oldest
# chunks go (about 5 s of 100 ms chunks).
MAX_QUEUED_AUDIO = 50
HEARTBEAT_SECONDS = 20.0


class LiveStream:
    def __init__(self, config: StreamConfig, hello: Hello) -> None:
        self.config = config
        self._hello = hello if config.audio else hello.model_copy(update={"audio": None})
        self._audio: collections.deque[bytes] = collections.deque(maxlen=MAX_QUEUED_AUDIO)
        self._events: collections.deque[str] = collections.deque(maxlen=MAX_PENDING_EVENTS)
        self._wake = asyncio.Event()
        self._connected = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.sent_audio_bytes = 0
        self.dropped_audio_bytes = 0
        self.connections = 0

    # --- what the bot hands over (never waits) ----------------------------------------------

    def audio(self, first_sample_ms: int, pcm: bytes) -> None:
        if not self.config.audio or self._closing:
            return
        if not self._connected:
            self.dropped_audio_bytes += len(pcm)
            return
        if len(self._audio) == self._audio.maxlen:
            self.dropped_audio_bytes += len(self._audio[0]) - 8
        self._audio.append(audio_frame(first_sample_ms, pcm))
        self._wake.set()

    def event(self, line: EventLine) -> None:
        if not self.config.events or self._closing:
            return
        self._events.append('{"type":"event","event":' + line.line() + "}")
        self._wake.set()

    # --- the connection ---------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live stream")

    async def close(self, reason: str, timeout: float = 3.0) -> None:
        """Send what is queued and the end, within `timeout`; then stop."""
        self._closing = True
        self._events.append(json.dumps({"type": "end", "reason": reason}, separators=(",", ":")))
        self._wake.set()
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        log.info(
            "live stream closed",
            extra={
                "sent_bytes": self.sent_audio_bytes,
                "dropped_bytes": self.dropped_audio_bytes,
                "connections": self.connections,
            },
        )

    async def _run(self) -> None:
        failures = 0
        headers = {"Authorization": f"Bearer {self.config.token.get_secret_value()}"}
        timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    async with session.ws_connect(
                        self.config.url, headers=headers, heartbeat=HEARTBEAT_SECONDS
                    ) as socket:
                        self.connections += 1
                        failures = 0
                        await socket.send_str(self._hello.model_dump_json(by_alias=True))
                        self._connected = True
                        reader = asyncio.create_task(self._read(socket))
                        try:
                            if await self._pump(socket):
                                return  # the end was sent
                        finally:
                            reader.cancel()
                except (aiohttp.ClientError, OSError, TimeoutError) as error:
                    failures += 1
                    log.warning(
                        "live stream disconnected; connecting again",
                        extra={"error": type(error).__name__, "failures": failures},
                    )
                finally:
                    self._connected = False
                    self._audio.clear()  # live: what was not sent is not worth sending late
                if self._closing:
                    return
                ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(failures, 10))
                await asyncio.sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter

    async def _read(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        """The receiver says nothing we need; reading is how a close is noticed at once."""
        async for _ in socket:
            pass
        self._wake.set()

    async def _pump(self, socket: aiohttp.ClientWebSocketResponse) -> bool:
        """Send what is queued as it comes; True once the end is sent, False when the
        connection closed."""
        while not socket.closed:
            while self._events:
                text = self._events[0]
                await socket.send_str(text)
                self._events.popleft()
                if text.startswith('{"type":"end"'):
                    await socket.close()
                    return True
            while self._audio:
                frame = self._audio.popleft()
                await socket.send_bytes(frame)
                self.sent_audio_bytes += len(frame) - 8
            if self._events or self._audio:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), HEARTBEAT_SECONDS)
        return False


def hello_for(namespace: str, name: str, uid: str, attempt: int) -> Hello:
    return Hello(namespace=namespace, name=name, uid=uid, attempt=attempt, audio=AudioFormat())
