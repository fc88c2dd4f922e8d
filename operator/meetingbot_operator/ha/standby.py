"""What a replica serves while another one leads.

The chart's Service sends bots' reports and people's OAuth redirects to every Ready replica,
so a standby forwards them, unread, to the leader's own endpoints (from the Lease, see
ha/lease.py) and hands back the leader's answer: the leader checks every token as usual, and a
standby never holds a report it could lose. With no leader (a takeover in progress) the
answer is 503 with Retry-After, which bots retry. /healthz and /metrics are served here too
(meetingbot_leader is 0), so a standby is Ready and visible.

Forwarded requests carry bots' report tokens and people's OAuth codes, so a standby forwards
only to endpoints a replica of this release published: the leader signs them with the report
key the release's replicas share (`signed_endpoints`), and whoever else can write the Lease
(an admin of the operator's namespace) cannot point the standbys anywhere else.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import httpx
from aiohttp import web
from pydantic import SecretStr

from meetingbot_operator import metrics
from meetingbot_operator.ha.lease import Lease
from meetingbot_operator.meetingbot import reports
from meetingbot_operator.servers import Servers
from meetingbot_operator.settings import Settings

log = logging.getLogger(__name__)
# Request headers a report or an OAuth request needs, and response headers a browser needs.
REQUEST_HEADERS = ("Authorization", "Content-Type", "x-zm-signature", "x-zm-request-timestamp")
RESPONSE_HEADERS = ("Content-Type", "Location", "Retry-After", "Cache-Control")
FORWARD_TIMEOUT = 10.0


SIGNATURE = "signature"


def _mac(key: SecretStr, endpoints: dict[str, str]) -> str:
    unsigned = {k: v for k, v in endpoints.items() if k != SIGNATURE}
    message = b"meetingbot endpoints:" + json.dumps(unsigned, sort_keys=True).encode()
    return hmac.new(key.get_secret_value().encode(), message, hashlib.sha256).hexdigest()


def signed_endpoints(key: SecretStr | None, endpoints: dict[str, str]) -> dict[str, str]:
    """The leader's endpoints as published in the Lease, signed with the release's key."""
    return {**endpoints, SIGNATURE: _mac(key, endpoints)} if key is not None else endpoints


def endpoints_verified(key: SecretStr | None, endpoints: dict[str, str]) -> bool:
    """Whether a replica holding the same key published these endpoints."""
    signature = endpoints.get(SIGNATURE, "")
    return key is not None and hmac.compare_digest(signature, _mac(key, endpoints))


class Standby:
    def __init__(self, settings: Settings, lease: Lease, key: SecretStr | None) -> None:
        self.settings = settings
        self.lease = lease
        self._key = key
        self._http = httpx.AsyncClient(timeout=FORWARD_TIMEOUT, follow_redirects=False)
        self._unreachable: str | None = None  # the leader address last found unreachable
        self._unverified: str | None = None  # the unsigned address last refused
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
        await self._http.aclose()

    def _health_app(self) -> web.Application:
        async def healthz(_: web.Request) -> web.Response:
            return web.json_response({"standby": True})

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        return app

    async def _report(self, request: web.Request) -> web.StreamResponse:
        return await self._forward(request, "report")

    async def _oauth(self, request: web.Request) -> web.StreamResponse:
        return await self._forward(request, "oauth")

    async def _forward(self, request: web.Request, service: str) -> web.StreamResponse:
        # The Lease as the wait for leadership last read it (every `retry` seconds): no read
        # of its own per forwarded request.
        holder = self.lease.current_holder()
        base = holder.endpoints.get(service) if holder else None
        if not base or (holder and holder.identity == self.lease.identity):
            log.debug("no leader to forward to", extra={"path": request.path})
            return _no_leader()
        if holder is not None and not endpoints_verified(self._key, holder.endpoints):
            if base != self._unverified:  # once per address, not once per bot
                self._unverified = base
                log.warning(
                    "the Lease names endpoints no replica of this release signed; not forwarding",
                    extra={"holder": holder.identity},
                )
            return _no_leader()
        headers = {k: v for k in REQUEST_HEADERS if (v := request.headers.get(k)) is not None}
        try:
            answer = await self._http.request(
                request.method, base + request.rel_url.path_qs,
                content=await request.read(), headers=headers,
            )  # fmt: skip
        except httpx.HTTPError as error:
            if base != self._unreachable:  # once per leader, not once per bot
                self._unreachable = base
                log.warning(
                    "cannot forward to the leader (taking over?); bots are told to retry",
                    extra={"leader": base, "error": type(error).__name__},
                )
            return _no_leader()
        self._unreachable = None
        log.debug("forwarded", extra={"path": request.path, "status": answer.status_code})
        kept = {k: v for k in RESPONSE_HEADERS if (v := answer.headers.get(k)) is not None}
        return web.Response(status=answer.status_code, body=answer.content, headers=kept)


def _no_leader() -> web.Response:
    return web.json_response({"result": "no leader"}, status=503, headers={"Retry-After": "2"})
