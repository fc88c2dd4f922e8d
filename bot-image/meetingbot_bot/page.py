"""Serves the bot's page and the Meeting SDK's files on loopback (never Zoom's CDN)."""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

WEB_ENV = "MEETINGBOT_WEB_DIR"


def web_dir() -> Path:
    """bot-image/web next to this package (a checkout), or /app/web (the image), or the env."""
    explicit = os.environ.get(WEB_ENV)
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parent.parent / "web"


class PageServer:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or web_dir()
        self.sdk = self.root / "node_modules" / "@zoom" / "meetingsdk" / "dist"
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def __aenter__(self) -> PageServer:
        app = web.Application()
        app.router.add_get("/", self._index)
        for name in ("loader.js", "capture.js", "bot.js"):
            app.router.add_get(f"/{name}", self._file(self.root / name))
        if self.sdk.is_dir():
            app.router.add_static("/sdk/", self.sdk, follow_symlinks=False)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _index(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(self.root / "index.html")

    @staticmethod
    def _file(path: Path) -> web.Handler:  # type: ignore[name-defined]
        async def serve(_: web.Request) -> web.FileResponse:
            return web.FileResponse(path)

        return serve
