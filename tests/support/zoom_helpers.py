"""Helpers shared by the Zoom client and simulator tests."""

from __future__ import annotations

import asyncio
import contextlib
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
    """Speaks to the meeting side the way the fake Meeting SDK does (join, events, leave).

    The events socket is read all the time, as the SDK's own connection is whatever the page
    does: the simulator's pings are answered while the caller is busy elsewhere (a bot whose
    reports wait out a shard's takeover), within the simulator's 45 s. Events wait in order
    for `next_event`."""

    def __init__(self, sim_url: str) -> None:
        self.sim_url = sim_url
        self.http = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.joined: dict[str, Any] = {}
        self._inbox: asyncio.Queue[aiohttp.WSMessage] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def join(self, **params: Any) -> dict[str, Any]:
        async with self.http.post(f"{self.sim_url}/sim/sdk/join", json=params) as response:
            body = await response.json()
            if response.status != 200:
                raise JoinFailed(body)
        self.joined = dict(body)
        ws_url = self.sim_url.replace("http", "ws", 1) + "/sim/sdk/events"
        self.ws = await self.http.ws_connect(ws_url, params={"session": body["session"]})
        self._reader = asyncio.create_task(self._read(self.ws))
        return self.joined

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            message = await ws.receive()  # answers pings
            await self._inbox.put(message)
            if message.type != aiohttp.WSMsgType.TEXT:
                return  # closed (or failed): said once, as the last message

    async def next_event(self, timeout: float = 5) -> dict[str, Any]:
        assert self.ws is not None
        message = await asyncio.wait_for(self._inbox.get(), timeout)
        if message.type != aiohttp.WSMsgType.TEXT:
            self._inbox.put_nowait(message)  # every later call hears it too
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
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
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
