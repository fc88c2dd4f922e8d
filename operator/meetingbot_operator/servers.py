"""The HTTP servers of one process (reports, metrics, OAuth, health), stopped together."""

from __future__ import annotations

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


class Servers:
    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self._runners: list[web.AppRunner] = []
        self._idle_seconds = idle_seconds

    async def serve(self, app: web.Application, host: str, port: int) -> None:
        runner = web.AppRunner(
            app,
            access_log=None,  # no access log: bots report constantly
            keepalive_timeout=self._idle_seconds,
        )
        await runner.setup()
        await web.TCPSite(runner, host, port, backlog=BACKLOG).start()
        self._runners.append(runner)

    async def stop(self) -> None:
        """Close the listeners (their ports are free afterwards)."""
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
