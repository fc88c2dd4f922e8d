"""Run the simulator: in a background thread for tests (`ZoomSim`), or on its own
(`python -m devenv.zoomsim --port 8765`)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import threading
import time
from collections.abc import AsyncIterator

from aiohttp import web

from devenv.zoomsim import admin, rest, rtms_api, sdk
from devenv.zoomsim.rest import WORLD
from devenv.zoomsim.state import World


async def _meeting_clock(app: web.Application) -> AsyncIterator[None]:
    """Ends meetings whose scheduled end has come."""

    async def tick() -> None:
        world = app[WORLD]
        while True:
            now = time.time()
            for meeting in list(world.meetings.values()):
                if meeting.ends_at is not None and not meeting.ended and meeting.ends_at <= now:
                    sdk.end_meeting(meeting)
            await asyncio.sleep(0.1)

    task = asyncio.create_task(tick())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def make_app(world: World | None = None) -> web.Application:
    app = web.Application(middlewares=[rest.zoom_headers])
    app[WORLD] = world or World()
    app.add_routes(rest.routes() + sdk.routes() + admin.routes() + rtms_api.routes())
    app.cleanup_ctx.append(_meeting_clock)
    return app


# Zoom's servers take a thousand streams' connections at once; aiohttp's default backlog (128)
# would drop them (the SYNs of a burst).
BACKLOG = 2048
# Ports chosen by the simulator itself, tried before giving up (start).
PORT_TRIES = 5


class ZoomSim:
    """The simulator on 127.0.0.1 in a thread of its own, with its own event loop.

    `pod_host`: one more address it listens on, where pods on the real node reach it (the node's
    own address; pods cannot reach the host's loopback). `url` stays the loopback one (what a
    process on the host, e.g. the operator in the tests, uses); `pod_url` is the other.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, pod_host: str = "") -> None:
        self.host = host
        self.pod_host = pod_host or host
        self._chosen_port = not port  # one taken before it listens is chosen again (start)
        self.port = port or free_port()
        self.world = World()
        self.world.rtms_base_url = f"ws://{self.pod_host}:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="zoomsim", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pod_url(self) -> str:
        return f"http://{self.pod_host}:{self.port}"

    @property
    def rtms_url(self) -> str:
        """Where its RTMS signaling servers are (what an operator's rtms_servers allows)."""
        return self.world.rtms_base_url

    def start(self) -> ZoomSim:
        self._thread.start()
        tries = PORT_TRIES
        while True:
            try:
                asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
                return self
            except OSError as error:
                # Another process took the port between free_port() and the bind (containerd's
                # streaming server listens on an ephemeral loopback port, for one).
                tries -= 1
                if error.errno != errno.EADDRINUSE or not self._chosen_port or not tries:
                    raise
                asyncio.run_coroutine_threadsafe(self._cleanup(), self._loop).result(timeout=10)
                self.port = free_port()
                self.world.rtms_base_url = f"ws://{self.pod_host}:{self.port}"

    async def _start(self) -> None:
        # Stopping does not wait for slow requests (a test's injected delays): 1 s, then they
        # are cancelled.
        self._runner = web.AppRunner(make_app(self.world), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        for host in dict.fromkeys((self.host, self.pod_host)):
            await web.TCPSite(self._runner, host, self.port, backlog=BACKLOG).start()

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> ZoomSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A port free on every address at this moment (bound on the wildcard): the simulator and
    the operators the tests start listen on loopback and on the node's address, and a port free
    on one may be taken on the other. Here because the simulator's image holds only its own
    package."""
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="The Zoom simulator (tests only)")
    parser.add_argument(
        "--host",
        action="append",
        help="an address to listen on (again for more: loopback and the node's, as pods "
        "reach it); 127.0.0.1 if none",
    )
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    hosts = args.host or ["127.0.0.1"]
    print(f"zoomsim listening on port {args.port} of {', '.join(hosts)}", flush=True)
    web.run_app(
        make_app(), host=hosts, port=args.port, print=None, access_log=None, backlog=BACKLOG
    )
