"""The HTTP servers of one process (reports, metrics, OAuth, health), stopped together."""

from __future__ import annotations

from aiohttp import web


class Servers:
    def __init__(self) -> None:
        self._runners: list[web.AppRunner] = []

    async def serve(self, app: web.Application, host: str, port: int) -> None:
        runner = web.AppRunner(app, access_log=None)  # no access log: bots report constantly
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runners.append(runner)

    async def stop(self) -> None:
        """Close the listeners (their ports are free afterwards)."""
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
