"""What a replica serves while it leads no shard.

The chart's Service sends bots' reports and people's OAuth redirects to every Ready replica,
so a standby hands them, unread, to the leader of the shard they belong to (ha/routing.py) and
hands back that leader's answer: the leader checks every token as usual, and a standby never
holds a report it could lose. With no leader (a takeover in progress) the answer is 503 with
Retry-After, which bots retry. /healthz and /metrics are served here too (meetingbot_leader is
0), so a standby is Ready and visible.
"""

from __future__ import annotations

import logging

from aiohttp import web

from meetingbot_operator import metrics
from meetingbot_operator.ha.routing import Router
from meetingbot_operator.meetingbot import reports
from meetingbot_operator.servers import Servers
from meetingbot_operator.settings import Settings

log = logging.getLogger(__name__)


class Standby:
    def __init__(self, settings: Settings, router: Router) -> None:
        self.settings = settings
        self._router = router
        self._servers = Servers()

    async def start(self) -> None:
        host = self.settings.report_host
        # Where kopf's liveness endpoint listens once this replica leads (__main__.py).
        await self._servers.serve(self._health_app(), "0.0.0.0", self.settings.health_port)  # noqa: S104
        await self._servers.serve(metrics.app(), host, self.settings.metrics_port)
        reporting = web.Application(client_max_size=reports.MAX_BODY)
        reporting.router.add_post(reports.report_path("{namespace}", "{name}"), self._report)
        # A bot's upload requests go where its reports go (the leader holds the manifests).
        uploads = reports.uploads_path("{namespace}", "{name}")
        reporting.router.add_post(uploads, self._report)
        reporting.router.add_post(uploads + "/{step:complete}", self._report)
        # The stream workers' polls and uploads (meetingstream/worker_routes.py).
        reporting.router.add_post("/v1/rtms/{tail:.*}", self._report)
        await self._servers.serve(reporting, host, self.settings.report_port)
        if self.settings.oauth_port:
            oauth = web.Application(client_max_size=reports.MAX_BODY)
            oauth.router.add_route("*", "/oauth/{tail:.*}", self._oauth)
            # Zoom's webhooks (/zoom/rtms, /zoom/meetings) go where the OAuth pages go.
            oauth.router.add_post("/zoom/{tail:.*}", self._oauth)
            await self._servers.serve(oauth, host, self.settings.oauth_port)

    async def stop(self) -> None:
        """Free the ports for the operator the leader runs in this process."""
        await self._servers.stop()

    def _health_app(self) -> web.Application:
        async def healthz(_: web.Request) -> web.Response:
            return web.json_response({"standby": True})

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        return app

    async def _report(self, request: web.Request) -> web.StreamResponse:
        return await self._router.route(request, "report")

    async def _oauth(self, request: web.Request) -> web.StreamResponse:
        return await self._router.route(request, "oauth")
