"""A real live-stream receiver: an aiohttp WebSocket server in a thread of its own (started
before the session's operator, which allows its URL), reachable from bot pods on the node's
address. It checks each connection's token (PyJWT, with the signing secret) and keeps what
each connection sent: the hello, the events in arrival order, the audio frames."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import WSMsgType, web

from devenv.cluster.node import node_ip
from meetingbot_contract import parse_audio_frame
from tests.support.threaded_server import ThreadedServer
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


class StreamReceiver(ThreadedServer):
    def __init__(self) -> None:
        super().__init__("0.0.0.0", "GET")  # noqa: S104 - bot pods reach it on the node
        self.url = f"ws://{node_ip()}:{self.port}"
        self.allowed = f"http://{node_ip()}:{self.port}"  # the operator's allow-list entry
        self._key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
        self._connections: list[Connection] = []
        self._sockets: set[web.WebSocketResponse] = set()

    def drop_all(self) -> int:
        """Close every open connection (a receiver restarting): how many were open."""
        return self.call(self._drop())

    def connections(self, path: str) -> list[Connection]:
        with self._lock:
            return [c for c in self._connections if c.path == path]

    async def _stop(self) -> None:
        await self._drop()
        await super()._stop()

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


def stream_spec(receiver: StreamReceiver, path: str) -> dict[str, Any]:
    """A spec.stream to `path` of the receiver, signed with the tests' signing Secret."""
    return {
        "url": receiver.url + path,
        "signingSecretRef": {"name": "hook-signing", "key": "secret"},
    }
