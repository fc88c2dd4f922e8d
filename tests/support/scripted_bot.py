"""A scripted bot: a small test client that speaks the runtime contract in place of the browser.

It does what a bot pod does, from the outside: reads the join Secret the pod would mount,
joins the simulated meeting the way the fake SDK does, reports each state to the operator,
and "exits" by writing the container's terminated state and termination message into the
pod's status, as the kubelet would (the pod sits on a kwok node, where nothing runs).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
import httpx
from kubernetes_asyncio.client.exceptions import ApiException

from meetingbot_bot.machine import OBF_MASTER_LEFT
from meetingbot_contract import BotReport, BotResult, BotState, ExitCode, JoinConfig
from meetingbot_contract.reasons import reason_for_sdk_error
from meetingbot_operator.meetingbot.reports import report_path
from tests.support.operator_fixtures import Kube
from tests.support.zoom_helpers import JoinFailed, SdkSession

Ending = Literal["normal", "crash"]
# The `scripted` fixture: the scripted bot of a MeetingBot, by name.
Scripted = Callable[[str], "ScriptedBot"]


class ScriptedBot:
    def __init__(
        self, kube: Kube, namespace: str, name: str, sim_url: str, seen: list[str]
    ) -> None:
        """`seen` collects every secret the bot is handed (the log check looks for them)."""
        self.core = kube.core
        self.namespace = namespace
        self.name = name
        self.sim_url = sim_url
        self.seen = seen
        self.reports: list[BotReport] = []
        self.config: JoinConfig | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.heartbeat = True  # re-send the latest state every report interval, as bots must
        # Where to report instead of the URL in the Secret (e.g. a standby replica's port).
        self.report_url: str | None = None
        self.answers: list[int] = []  # the final HTTP status of every report sent
        self.config_timeout = 30.0  # how long run() waits for the pod and its Secret
        # Where the join Secret comes from once its pod exists (None: not yet); unset, each
        # bot reads its own every half second (a thousand bots share one lister instead,
        # tests/support/shards.py).
        self.join_source: Callable[[str, str, int], dict[str, Any] | None] | None = None
        self.http: httpx.AsyncClient | None = None  # one shared by many bots (else one per report)

    async def read_config(self, attempt: int, timeout: float = 30) -> JoinConfig:
        """The Secret as the pod of `attempt` would see it, once that pod exists."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                # Raw JSON, not the client's models: a hundred bots polling must not starve
                # the loop (the simulator's websocket heartbeats share it).
                if self.join_source is not None:
                    found = self.join_source(self.namespace, self.name, attempt)
                else:
                    found = await self._join_secret(attempt)
                if found is not None:
                    config = JoinConfig.model_validate_json(
                        base64.b64decode(found["data"]["join.json"])
                    )
                    self.seen.extend(
                        s.get_secret_value()
                        for s in (
                            config.signature,
                            config.report.token,
                            config.zak,
                            config.obf_token,
                        )
                        if s is not None
                    )
                    self.config = config
                    return config
            except ApiException as error:
                if error.status != 404 and error.status < 500:
                    raise
            except (aiohttp.ClientError, OSError):
                pass  # the API server restarting (the chaos run): look again
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no pod and Secret for attempt {attempt} of {self.name}")
            await asyncio.sleep(0.5)  # 100 bots waiting: 400 reads a second, not 1000

    async def _join_secret(self, attempt: int) -> dict[str, Any] | None:
        """The pod first, then its Secret, as the kubelet reads it: the operator writes the
        Secret before it creates the pod, so a Secret read after the pod was seen is one the
        pod could mount. Read the other way round, a Secret replaced between the two reads
        (a new leader giving a start its user, and only then creating the pod) was joined
        with as it had been, a user the pod never had."""
        await self._read("read_namespaced_pod", f"{self.name}-{attempt}")  # 404: not yet
        secret = await self._read("read_namespaced_secret", f"{self.name}-join")
        annotations = secret["metadata"].get("annotations") or {}
        return secret if annotations.get("meetingbot.dev/attempt") == str(attempt) else None

    def report_through(self, base_url: str) -> None:
        """Report to this base URL (a replica's port, a Service's ClusterIP) instead of the
        URL in the Secret, at the same path."""
        self.report_url = base_url + report_path(self.namespace, self.name)

    async def _read(self, call: str, name: str) -> dict[str, Any]:
        response = await getattr(self.core, call)(name, self.namespace, _preload_content=False)
        body = await response.read()
        if response.status != 200:
            raise ApiException(status=response.status, reason=response.reason)
        return dict(json.loads(body))

    async def report(self, state: BotState, **fields: Any) -> int:
        assert self.config is not None
        body = BotReport(attempt=self.config.bot.attempt, state=state, **fields)
        self.reports.append(body)
        if state == BotState.ENDED:
            self.stop_heartbeat()
        elif self.heartbeat and self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat())
        return await self._post(body)

    def stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

    async def _beat(self) -> None:
        assert self.config is not None
        while True:
            await asyncio.sleep(self.config.report.interval_seconds)
            await self._post(self.reports[-1])

    async def _post(self, body: BotReport) -> int:
        """Send a report; retried like the reference bot's reporter while the operator is
        unreachable or answers 5xx (a restart, a takeover), for up to a minute."""
        assert self.config is not None
        deadline = asyncio.get_running_loop().time() + 60
        delay = 0.25
        shared = contextlib.nullcontext(self.http) if self.http else None
        async with shared or httpx.AsyncClient(timeout=10) as http:
            while True:
                try:
                    response = await http.post(
                        self.report_url or self.config.report.url,
                        content=body.model_dump_json(by_alias=True, exclude_none=True),
                        headers={
                            "Authorization": f"Bearer {self.config.report.token.get_secret_value()}",
                            "Content-Type": "application/json",
                        },
                    )
                    status = response.status_code
                except httpx.TransportError:
                    status = 0
                if 0 < status < 500 or asyncio.get_running_loop().time() > deadline:
                    self.answers.append(status)
                    return status
                await asyncio.sleep(delay)
                delay = min(delay * 2, 4.0)

    async def run(self, attempt: int = 1, *, ending: Ending = "normal", admit: bool = False) -> str:
        """Join, stay until the meeting ends / the bot is removed / the pod is deleted; return the
        reason the bot ended with. `ending="crash"` exits with code 1 right after joining."""
        config = await self.read_config(attempt, self.config_timeout)
        await self.report(BotState.JOINING)
        session = SdkSession(self.sim_url)
        try:
            try:
                joined = await session.join(
                    signature=config.signature.get_secret_value(),
                    meetingNumber=config.meeting.number,
                    userName=config.display_name,
                    password=config.meeting.passcode.get_secret_value(),
                    zak=config.zak.get_secret_value() if config.zak else "",
                    obfToken=config.obf_token.get_secret_value() if config.obf_token else "",
                )
            except JoinFailed as failed:
                reason: str = reason_for_sdk_error(failed.code)
                await self.report(
                    BotState.ENDED, reason=reason, message=f"{failed.code}: {failed.reason}"
                )
                await self.exit(ExitCode.JOIN_FAILED, reason, f"{failed.code}: {failed.reason}")
                return reason
            if joined["currentUser"]["bHold"]:
                await self.report(BotState.WAITING_ROOM)
                await session.wait_for("user-updated", timeout=60)
            joined_at = datetime.now(UTC)
            await self.report(BotState.IN_MEETING, joined_at=joined_at)
            if ending == "crash":
                await self.exit(1, None, None)
                return "BotCrashed"
            reason = await self._stay(session)
            await self.report(
                BotState.ENDED, reason=reason, joined_at=joined_at, left_at=datetime.now(UTC)
            )
            if reason != "Canceled":
                code = ExitCode.LEFT if reason == "MeetingEnded" else ExitCode.LEFT_EARLY
                await self.exit(code, reason, None, joined_at)
            return reason
        finally:
            await session.close()

    async def _stay(self, session: SdkSession) -> str:
        """Wait for the meeting to end, a removal, or the pod's deletion (the SIGTERM case)."""
        while True:
            try:
                event = await session.next_event(timeout=1.0)
            except TimeoutError:
                if await self._pod_going():
                    await self.report(BotState.LEAVING, reason="Canceled")
                    await session.leave()
                    return "Canceled"
                continue
            except AssertionError:
                return "MeetingEnded"  # the socket closed
            if event["event"] == "connection-change" and event["payload"]["state"] == "Closed":
                closed = event["payload"]["reason"]
                if OBF_MASTER_LEFT in closed:  # 4019, as the reference bot reads it
                    return "AuthorizingUserLeft"
                removed = "expeled" in closed or "kicked" in closed
                return "RemovedByHost" if removed else "MeetingEnded"

    async def _pod_going(self) -> bool:
        assert self.config is not None
        try:
            pod = await self._read("read_namespaced_pod", f"{self.name}-{self.config.bot.attempt}")
        except ApiException as error:
            return error.status == 404
        except (aiohttp.ClientError, OSError):
            return False  # the API server restarting: ask again in a moment
        return pod["metadata"].get("deletionTimestamp") is not None

    async def exit(
        self, code: int, reason: str | None, message: str | None, joined_at: datetime | None = None
    ) -> None:
        """Write what the kubelet would: the container terminated, with our result."""
        assert self.config is not None
        self.stop_heartbeat()
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        terminated: dict[str, Any] = {
            "exitCode": int(code),
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": now,
            "finishedAt": now,
        }
        if reason is not None:
            result = BotResult(
                attempt=self.config.bot.attempt,
                reason=reason,
                message=message,
                joined_at=joined_at,
                left_at=datetime.now(UTC),
            )
            terminated["message"] = result.model_dump_json(by_alias=True, exclude_none=True)
        body = {
            "status": {
                "phase": "Succeeded" if code == 0 else "Failed",
                "containerStatuses": [
                    {
                        "name": "bot",
                        "ready": False,
                        "restartCount": 0,
                        "image": "bot",
                        "imageID": "",
                        "state": {"terminated": terminated},
                    }
                ],
            }
        }
        await self.core.patch_namespaced_pod_status(
            f"{self.name}-{self.config.bot.attempt}",
            self.namespace,
            body,
        )
