"""A real live-stream receiver: an aiohttp WebSocket server in a thread of its own (started
before the session's operator, which allows its URL), reachable from bot pods on the node's
address. It checks each connection's token (PyJWT, with the signing secret) and keeps what
each connection sent: the hello, the events in arrival order, the audio frames."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import WSMsgType, web

from devenv.cluster.node import node_ip
from devenv.operator_process import free_port
from meetingbot_contract import parse_audio_frame
from tests.support.webhook_receiver import WEBHOOK_SECRET


@dataclass
class Connection:
    path: str
    claims: dict[str, Any] | None  # None: the token did not verify (the connection is refused)
    hello: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    audio: list[tuple[int, bytes]] = field(default_factory=list)
    # When each audio frame arrived (host clock, ms), for the latency benchmark.
    arrivals: list[int] = field(default_factory=list)
    end: dict[str, Any] | None = None


class StreamReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"ws://{node_ip()}:{self.port}"
        self.allowed = f"http://{node_ip()}:{self.port}"  # the operator's allow-list entry
        self._key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
        self._lock = threading.Lock()
        self._connections: list[Connection] = []
        self._sockets: set[web.WebSocketResponse] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def drop_all(self) -> int:
        """Close every open connection (a receiver restarting): how many were open."""
        return int(asyncio.run_coroutine_threadsafe(self._drop(), self._loop).result(10))

    def connections(self, path: str) -> list[Connection]:
        with self._lock:
            return [c for c in self._connections if c.path == path]

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "0.0.0.0", self.port).start()  # noqa: S104 - pods reach it

    async def _stop(self) -> None:
        await self._drop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _drop(self) -> int:
        sockets = list(self._sockets)
        for socket in sockets:
            await socket.close()
        return len(sockets)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        audience = f"{self.url}{request.path}"
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"], audience=audience)
        except jwt.PyJWTError:
            claims = None
        connection = Connection(request.path, claims)
        with self._lock:
            self._connections.append(connection)
        if claims is None:
            return web.Response(status=401)
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.add(socket)
        try:
            async for message in socket:
                with self._lock:
                    if message.type == WSMsgType.BINARY:
                        connection.audio.append(parse_audio_frame(message.data))
                        connection.arrivals.append(int(time.time() * 1000))
                    elif message.type == WSMsgType.TEXT:
                        document = json.loads(message.data)
                        if document["type"] == "hello":
                            connection.hello = document
                        elif document["type"] == "event":
                            connection.events.append(document["event"])
                        elif document["type"] == "end":
                            connection.end = document
        finally:
            self._sockets.discard(socket)
        return socket
