"""The HTTP servers of one process (reports, metrics, OAuth, health), stopped together."""

from __future__ import annotations

import asyncio

from aiohttp import web

# A connection that sends nothing (before its first request, or between two) is closed after
# this long. aiohttp's own default is an hour, so anyone who reaches the report port could
# hold connections open without end. Bots report every 30 s (the default): a bot's connection
# stays open from one report to the next.
IDLE_SECONDS = 75.0
# Connections waiting to be accepted. aiohttp's default (128) overflowed when 1000 RTMS streams
# started in the same second: the kernel dropped the SYNs of Zoom's webhooks (`netstat -s`:
# "listen queue of a socket overflowed"), their retransmissions came after Zoom's 3 s, and
# those streams waited for Zoom's retry five minutes later. The kernel caps it at somaxconn.
BACKLOG = 2048
# On a stop, requests still running after this long are cancelled (aiohttp waits 60 s): a
# request whose body never comes (a bot gone mid-upload, a client under load) held a shard's
# move for 33 s with 1000 bots. And a request whose body had not fully arrived when the stop
# began cannot finish at all: aiohttp reads nothing more from a connection once it is closing
# (aio-libs/aiohttp#2298), so such a request always costs the whole wait (with 1000 bots
# reporting, a move's stop took 5.0 s at 5 s in one bench run, 0.01 s in another). The wait
# is for the handlers already running: a report or an upload's grant takes milliseconds (a
# forward to another replica may take up to its 10 s and is cut). Bots retry what was cut (a
# report, an upload's part), as does a person whose consent page failed.
SHUTDOWN_SECONDS = 2.0


class Servers:
    def __init__(
        self, idle_seconds: float = IDLE_SECONDS, shutdown_seconds: float = SHUTDOWN_SECONDS
    ) -> None:
        self._runners: list[web.AppRunner] = []
        self._idle_seconds = idle_seconds
        self._shutdown_seconds = shutdown_seconds

    async def serve(self, app: web.Application, host: str, port: int) -> None:
        runner = web.AppRunner(
            app,
            access_log=None,  # no access log: bots report constantly
            keepalive_timeout=self._idle_seconds,
            shutdown_timeout=self._shutdown_seconds,
        )
        await runner.setup()
        await web.TCPSite(runner, host, port, backlog=BACKLOG).start()
        self._runners.append(runner)

    async def stop(self) -> None:
        """Close the listeners (their ports are free afterwards), together: each waits up to
        `shutdown_seconds` for its requests in flight, and a shard's move waits for the
        slowest, not for the sum."""
        await asyncio.gather(*(runner.cleanup() for runner in self._runners))
        self._runners.clear()
