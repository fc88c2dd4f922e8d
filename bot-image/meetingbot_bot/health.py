"""GET /healthz for the pod's liveness probe: answered from the bot's own event loop, so a
bot whose loop is stuck stops answering and the kubelet ends it (the operator then retries
the attempt). Binds every interface: the kubelet probes the pod's IP."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator

from aiohttp import web

from meetingbot_contract import HEALTH_PATH, HEALTH_PORT_ENV

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def health_server(port: int | None = None) -> AsyncIterator[None]:
    port = int(os.environ.get(HEALTH_PORT_ENV, "0")) if port is None else port
    if not port:
        yield
        return

    async def alive(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get(HEALTH_PATH, alive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, "0.0.0.0", port).start()  # noqa: S104 - probed on the pod IP
        except OSError as error:
            # Not worth failing a meeting for: without it the probe fails and says so.
            log.warning("health endpoint not served", extra={"port": port, "error": str(error)})
        yield
    finally:
        await runner.cleanup()
