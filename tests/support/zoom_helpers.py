"""Helpers shared by the Zoom client and simulator tests."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import aiohttp
import httpx

from meetingbot_operator.zoom import ApiCredentials, Endpoints, RatePlan, ZoomClient


class Statuses(Counter[int]):
    """A Zoom client's observer that counts the HTTP statuses it got (429s among them)."""

    def __call__(self, endpoint: str, seconds: float, status: int) -> None:
        self[status] += 1


def client_for(sim_url: str, account: dict[str, Any], **options: Any) -> ZoomClient:
    plan = RatePlan.BUSINESS_PLUS if account.get("plan") == "business" else RatePlan.PRO
    return ZoomClient(
        ApiCredentials(
            account_id=account["id"],
            client_id=account["client_id"],
            client_secret=account["client_secret"],
        ),
        Endpoints(oauth_url=f"{sim_url}/oauth/token", api_url=f"{sim_url}/v2"),
        plan=options.pop("plan", plan),
        **options,
    )


class JoinFailed(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.code = int(body["errorCode"])
        self.reason = str(body["reason"])


class SdkSession:
    """Speaks to the meeting side the way the fake Meeting SDK does (join, events, leave)."""

    def __init__(self, sim_url: str) -> None:
        self.sim_url = sim_url
        self.http = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.joined: dict[str, Any] = {}

    async def join(self, **params: Any) -> dict[str, Any]:
        async with self.http.post(f"{self.sim_url}/sim/sdk/join", json=params) as response:
            body = await response.json()
            if response.status != 200:
                raise JoinFailed(body)
        self.joined = dict(body)
        ws_url = self.sim_url.replace("http", "ws", 1) + "/sim/sdk/events"
        self.ws = await self.http.ws_connect(ws_url, params={"session": body["session"]})
        return self.joined

    async def next_event(self, timeout: float = 5) -> dict[str, Any]:
        assert self.ws is not None
        message = await self.ws.receive(timeout=timeout)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        return dict(json.loads(message.data))

    async def wait_for(self, event: str, timeout: float = 5) -> dict[str, Any]:
        """The next event of one kind, skipping others (roster changes arrive interleaved)."""
        while True:
            message = await self.next_event(timeout)
            if message["event"] == event:
                return message

    async def leave(self) -> None:
        if self.ws is not None:
            await self.ws.send_str("leave")
            await self.ws.close()

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        await self.http.close()

    async def __aenter__(self) -> SdkSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def account_token(sim_url: str, account: dict[str, Any]) -> str:
    """A Server-to-Server OAuth access token of a simulator account, fetched by hand."""
    response = httpx.post(
        f"{sim_url}/oauth/token",
        params={"grant_type": "account_credentials", "account_id": account["id"]},
        auth=(account["client_id"], account["client_secret"]),
    )
    return str(response.json()["access_token"])
