"""Where a request that reached this replica goes: handled here, forwarded to the leader of the
shard it belongs to, or (when nothing in it says which) sent to every shard's leader.

The chart's Service sends bots' reports, stream workers' polls, people's OAuth visits and
Zoom's webhooks to any Ready replica. A request names its namespace (and so its shard,
ha/shards.py) in its path - a bot's reports and uploads, a stream's uploads, a grant's consent
link - or in the OAuth state Zoom carries back (`{namespace}/{name}/...`, zoomusergrant/links.py).
Zoom's webhooks (`/zoom/...`) and its deauthorization notice name no namespace: every leader
gets them and verifies them against the apps it knows; the answer is a success if one leader
took it, and 503 (Zoom retries) if some shard had no leader to ask, so none is lost to a
takeover. Unsharded (one shard), a standby forwards everything to the one leader, as before.

Forwarded requests carry bots' report tokens and people's OAuth codes, so a request goes only
to endpoints a replica of this release published: the leader signs them with the report key
the release's replicas share (`signed_endpoints`), and whoever else can write the Leases (an
admin of the operator's namespace) cannot point the replicas anywhere else.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable

import httpx
from aiohttp import web
from pydantic import SecretStr

from meetingbot_operator import outbound
from meetingbot_operator.ha.lease import Holder
from meetingbot_operator.ha.shards import ShardSet, shard_of

log = logging.getLogger(__name__)
# Request headers a report or an OAuth request needs, and response headers a browser needs.
REQUEST_HEADERS = ("Authorization", "Content-Type", "x-zm-signature", "x-zm-request-timestamp")
RESPONSE_HEADERS = ("Content-Type", "Location", "Retry-After", "Cache-Control")
FORWARD_TIMEOUT = 10.0
# Set on a forwarded request: its receiver handles it or refuses it, never forwards it again.
FORWARDED_HEADER = "X-Meetingbot-Forwarded"
SIGNATURE = "signature"
# Paths that name their namespace (a bot's reports and uploads, a stream's uploads, a consent link).
NAMESPACED = re.compile(r"^/(?:v1/namespaces|v1/rtms/streams|oauth/start)/([^/]+)/")
# Paths that name no namespace and go to every shard's leader.
EVERY_SHARD = re.compile(r"^/(?:zoom/|oauth/deauthorize$)")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _mac(key: SecretStr, endpoints: dict[str, str]) -> str:
    unsigned = {k: v for k, v in endpoints.items() if k != SIGNATURE}
    message = b"meetingbot endpoints:" + json.dumps(unsigned, sort_keys=True).encode()
    return hmac.new(key.get_secret_value().encode(), message, hashlib.sha256).hexdigest()


def signed_endpoints(key: SecretStr | None, endpoints: dict[str, str]) -> dict[str, str]:
    """A leader's endpoints as published in its Leases, signed with the release's key."""
    return {**endpoints, SIGNATURE: _mac(key, endpoints)} if key is not None else endpoints


def endpoints_verified(key: SecretStr | None, endpoints: dict[str, str]) -> bool:
    """Whether a replica holding the same key published these endpoints."""
    signature = endpoints.get(SIGNATURE, "")
    return key is not None and hmac.compare_digest(signature, _mac(key, endpoints))


def shard_of_request(request: web.Request, count: int) -> int | None:
    """The shard a request belongs to; None for one every shard's leader must see."""
    if count <= 1:
        return 0
    if found := NAMESPACED.match(request.path):
        return shard_of(found.group(1), count)
    if request.path == "/oauth/callback":
        namespace, slash, _ = request.query.get("state", "").partition("/")
        return shard_of(namespace, count) if slash else 0
    if EVERY_SHARD.match(request.path):
        return None
    # The stream workers' polls: MeetingStreams are served unsharded (docs/operations.md).
    return 0


class Router:
    def __init__(
        self,
        shards: ShardSet,
        holder_of: Callable[[int], Holder | None],
        identity: str,
        key: SecretStr | None,
    ) -> None:
        self.shards = shards
        self._holder_of = holder_of
        self._identity = identity
        self._key = key
        self._http = outbound.client(timeout=FORWARD_TIMEOUT, follow_redirects=False)
        self._unreachable: str | None = None  # the leader address last found unreachable
        self._unverified: str | None = None  # the unsigned address last refused

    async def close(self) -> None:
        await self._http.aclose()

    def middleware(self, service: str) -> Callable[..., Awaitable[web.StreamResponse]]:
        """For a leader's own servers: what belongs to shards it leads is handled there."""

        @web.middleware
        async def route(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self.route(request, service, handler)

        return route

    async def route(
        self, request: web.Request, service: str, local: Handler | None = None
    ) -> web.StreamResponse:
        """`local` handles what this replica leads (None: a standby, which leads nothing)."""
        shard = shard_of_request(request, self.shards.count)
        if request.headers.get(FORWARDED_HEADER):
            # Sent here by another replica: handled here or refused, never passed on (two
            # replicas that each believe the other leads a shard would pass it back and forth).
            if (
                local is None
                or not self.shards.held
                or (shard is not None and shard not in self.shards.held)
            ):
                return no_leader()
            return await local(request)
        if shard is not None:
            if local is not None and shard in self.shards.held:
                return await local(request)
            return await self._forward(request, service, self._holder_of(shard))
        # Every shard's leader: this replica for the shards it leads, each other leader once.
        answers: list[web.StreamResponse] = []
        if local is not None and self.shards.held:
            answers.append(await local(request))
        holders: dict[str, Holder | None] = {}
        for each in range(self.shards.count):
            if each not in self.shards.held:
                holder = self._holder_of(each)
                holders[holder.identity if holder else f"nobody for shard {each}"] = holder
        answers += await asyncio.gather(
            *(self._forward(request, service, holder) for holder in holders.values())
        )
        return _one_answer(answers)

    async def _forward(
        self, request: web.Request, service: str, holder: Holder | None
    ) -> web.Response:
        base = holder.endpoints.get(service) if holder else None
        if holder is None or not base or holder.identity == self._identity:
            log.debug("no leader to forward to", extra={"path": request.path})
            return no_leader()
        if not endpoints_verified(self._key, holder.endpoints):
            if base != self._unverified:  # once per address, not once per bot
                self._unverified = base
                log.warning(
                    "a Lease names endpoints no replica of this release signed; not forwarding",
                    extra={"holder": holder.identity},
                )
            return no_leader()
        headers = {k: v for k in REQUEST_HEADERS if (v := request.headers.get(k)) is not None}
        headers[FORWARDED_HEADER] = "1"
        try:
            answer = await self._http.request(
                request.method, base + request.rel_url.path_qs,
                content=await request.read(), headers=headers,
            )  # fmt: skip
        except httpx.HTTPError as error:
            if base != self._unreachable:  # once per leader, not once per bot
                self._unreachable = base
                log.warning(
                    "cannot forward to the leader (taking over?); the caller is told to retry",
                    extra={"leader": base, "error": type(error).__name__},
                )
            return no_leader()
        self._unreachable = None
        log.debug("forwarded", extra={"path": request.path, "status": answer.status_code})
        kept = {k: v for k in RESPONSE_HEADERS if (v := answer.headers.get(k)) is not None}
        return web.Response(status=answer.status_code, body=answer.content, headers=kept)


def _one_answer(answers: list[web.StreamResponse]) -> web.StreamResponse:
    """Of every leader's answer to one webhook: 503 while a shard has no leader (the sender
    retries, and the leaders that took it already take it again harmlessly: Zoom's webhooks
    are hints or idempotent here), else the first success, else the first answer."""
    for answer in answers:
        if answer.status == 503:
            return answer
    for answer in answers:
        if answer.status < 300:
            return answer
    return answers[0] if answers else no_leader()


def no_leader() -> web.Response:
    return web.json_response({"result": "no leader"}, status=503, headers={"Retry-After": "2"})
