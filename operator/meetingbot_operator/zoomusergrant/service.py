"""ZoomUserGrants: a Zoom user authorizes our user-managed app once; the operator keeps the
grant alive and mints OBF tokens on the user's behalf. This is the wing's face: what the rest
of the operator calls, each handed to the part that does it (store.py keeps the grants,
authorization.py runs the consent, rotation.py keeps the tokens fresh, notices.py hears Zoom's
deauthorization notices).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import SecretStr

from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.settings import Settings
from meetingbot_operator.zoom import ZoomError
from meetingbot_operator.zoomaccount.service import AccountService
from meetingbot_operator.zoomusergrant.authorization import Authorization
from meetingbot_operator.zoomusergrant.links import GrantLinks
from meetingbot_operator.zoomusergrant.notices import Notices
from meetingbot_operator.zoomusergrant.rotation import Rotation
from meetingbot_operator.zoomusergrant.state import GrantProblem, GrantState, Key
from meetingbot_operator.zoomusergrant.store import GrantStore


class GrantService:
    def __init__(
        self,
        kube: Kube,
        accounts: AccountService,
        settings: Settings,
        links: GrantLinks,
        on_change: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self.store = GrantStore(kube, accounts, settings, links, on_change)
        self.authorization = Authorization(self.store, links, settings)
        self.rotation = Rotation(self.store, settings)
        self.notices = Notices(self.store)

    # --- the watch, and what decisions read ------------------------------------------------

    async def observe(self, event_type: str, body: dict[str, Any]) -> None:
        await self.store.observe(event_type, body)

    def state(self, namespace: str, name: str) -> GrantState | None:
        return self.store.state(namespace, name)

    def readiness(self) -> dict[str, int]:
        return self.store.readiness()

    def allows(self, namespace: str, name: str, labels: dict[str, str]) -> bool:
        return self.store.allows(namespace, name, labels)

    # --- the pages a browser opens, and Zoom's notices --------------------------------------

    async def start(self, namespace: str, name: str, token: str) -> str:
        return await self.authorization.start(namespace, name, token)

    async def callback(self, code: str, state: str) -> Key:
        return await self.authorization.callback(code, state)

    async def notice(self, body: bytes, timestamp: str, signature: str) -> dict[str, Any]:
        return await self.notices.notice(body, timestamp, signature)

    # --- tokens for OBF bots --------------------------------------------------------------------

    async def access_token(self, namespace: str, name: str) -> SecretStr:
        return await self.rotation.access_token(namespace, name)

    async def upcoming_meetings(
        self, namespace: str, name: str
    ) -> tuple[str, list[dict[str, Any]]]:
        """The grant's user (their Zoom id) and their upcoming meetings, read with their own
        token (a MeetingBotSchedule's calendar). GrantProblem while the grant cannot be used."""
        key = (namespace, name)
        entry = self.store.entries.get(key)
        client = self.store.client(key, entry) if entry is not None else None
        if entry is None or client is None or not entry.grant.status.user_id:
            raise GrantProblem("ZoomUserGrantNotReady", f"ZoomUserGrant {name} is not ready")
        token = await self.access_token(namespace, name)
        try:
            meetings = await client.upcoming_meetings(token)
        except ZoomError as error:
            if error.status == 401:
                self.token_refused(namespace, name, token)
            raise
        return entry.grant.status.user_id, meetings

    def token_refused(self, namespace: str, name: str, token: SecretStr) -> None:
        self.rotation.token_refused(namespace, name, token)

    async def keep_fresh(self) -> None:
        await self.rotation.keep_fresh()
