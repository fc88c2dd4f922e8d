"""The ZoomUserGrants the operator knows, and the one place that reads and writes what a grant
keeps: its entry (state, access token, lock), its Secret `<grant>-zoom-grant` (controlled by
the grant: a Secret of that name owned by anyone else is never read or written), its app's
Secret, and its status. Authorization, rotation and Zoom's notices go through it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr, ValidationError

from meetingbot_api import ZoomUserGrant, ZoomUserGrantStatus
from meetingbot_operator.conditions import progress, set_condition
from meetingbot_operator.kube.client import ApiError, InvalidName
from meetingbot_operator.kube.objects import older
from meetingbot_operator.kube.secrets import (
    SecretMissing,
    SecretNotAllowed,
    SecretUnreadable,
    SecretUse,
    read_opted_in,
)
from meetingbot_operator.kube.verbs import Kube, NameTaken
from meetingbot_operator.settings import Settings
from meetingbot_operator.zoom import ZoomClient
from meetingbot_operator.zoom.credentials import AccessToken
from meetingbot_operator.zoom.errors import ZoomError
from meetingbot_operator.zoom.user_oauth import AppCredentials
from meetingbot_operator.zoomaccount.service import AccountService
from meetingbot_operator.zoomusergrant.links import GrantLinks
from meetingbot_operator.zoomusergrant.state import (
    APP_SECRET_SECONDS,
    AUTHORIZED,
    INTERRUPTED,
    NOT_USABLE,
    REFRESH_TOKEN,
    REVOKED,
    GrantEntry,
    GrantProblem,
    GrantState,
    Key,
    grant_progress,
    grant_secret,
    secret_name,
)

log = logging.getLogger(__name__)


class GrantStore:
    def __init__(
        self,
        kube: Kube,
        accounts: AccountService,
        settings: Settings,
        links: GrantLinks,
        on_change: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self.kube = kube
        self.accounts = accounts
        self.settings = settings
        self.links = links
        self.entries: dict[Key, GrantEntry] = {}
        self._on_change = on_change

    def client(self, key: Key, entry: GrantEntry) -> ZoomClient | None:
        """The grant's ZoomAccount's client (its cloud, its HTTP client, GET /users/me)."""
        return self.accounts.client(key[0], entry.grant.spec.account_ref.name)

    async def observe(self, event_type: str, body: dict[str, Any]) -> None:
        """A ZoomUserGrant watch event."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if event_type == "DELETED":
            self.entries.pop(key, None)
            return
        try:
            grant = ZoomUserGrant.model_validate(body)
        except ValidationError:
            return  # the CRD's schema refuses what the model would; nothing to act on
        entry = self.entries.get(key)
        if entry is not None and entry.uid != body["metadata"]["uid"]:
            entry = None  # deleted and created again under the same name: a new grant
        if entry is None:
            entry = self.entries[key] = GrantEntry(body, grant)
            await self._load(key, entry)
        elif not older(body, entry.body):  # a late event after our own status patch: skip
            entry.body, entry.grant = body, grant

    async def _load(self, key: Key, entry: GrantEntry) -> None:
        """A grant seen for the first time (or after a restart): Ready as its Secret says;
        the first use refreshes (the access token lives in memory only)."""
        try:
            data = await self.secret(key, entry)
        except NameTaken as taken:
            await self.set_state(key, entry, GrantState(False, NOT_USABLE, str(taken)))
            return
        if data.get(REFRESH_TOKEN):
            status = entry.grant.status
            ready = next((c for c in status.conditions if c.type == "Ready"), None)
            if ready is not None and ready.status == "True":
                entry.state = GrantState(True, AUTHORIZED, ready.message)
                return
            if ready is not None and ready.reason in (REVOKED, INTERRUPTED):
                entry.state = GrantState(False, ready.reason, ready.message)
                return
        await self.set_state(key, entry, entry.state)

    def readiness(self) -> dict[str, int]:
        """Grants by readiness, for the metrics."""
        ready = sum(e.state.ready for e in self.entries.values())
        return {"Ready": ready, "NotReady": len(self.entries) - ready}

    def state(self, namespace: str, name: str) -> GrantState | None:
        entry = self.entries.get((namespace, name))
        return entry.state if entry else None

    def authorization_url(self, namespace: str, name: str, uid: str) -> str:
        base = self.settings.oauth_public_url.rstrip("/")
        return f"{base}/oauth/start/{namespace}/{name}?t={self.links.link_token(uid)}"

    def allows(self, namespace: str, name: str, labels: dict[str, str]) -> bool:
        """Whether a MeetingBot with these labels may use the grant (spec.botSelector)."""
        entry = self.entries.get((namespace, name))
        selector = entry.grant.spec.bot_selector if entry else None
        if selector is None:
            return True
        return all(labels.get(k) == v for k, v in selector.match_labels.items())

    def entry(self, key: Key) -> GrantEntry:
        entry = self.entries.get(key)
        if entry is None:
            raise GrantProblem("ZoomUserGrantNotFound", "no such ZoomUserGrant", status=404)
        return entry

    async def app(self, key: Key, entry: GrantEntry) -> tuple[str, AppCredentials]:
        """The token endpoint (the ZoomAccount's cloud) and the app's credentials."""
        spec = entry.grant.spec
        client = self.client(key, entry)
        if client is None:
            problem = GrantState(
                False, NOT_USABLE, f"ZoomAccount {spec.account_ref.name!r} is not ready"
            )
            await self.set_state(key, entry, problem)
            raise GrantProblem(problem.reason, problem.message)
        name = spec.app_credentials_secret_ref.name
        try:
            data = await self._read_app_secret(key, entry)
            if not data.get("clientId") or not data.get("clientSecret"):
                raise SecretNotAllowed(f"Secret {name!r} lacks clientId or clientSecret")
        except (SecretNotAllowed, InvalidName) as error:
            problem = GrantState(False, NOT_USABLE, str(error))
            await self.set_state(key, entry, problem)
            raise GrantProblem(problem.reason, problem.message) from None
        app = AppCredentials(data["clientId"], SecretStr(data["clientSecret"]))
        return client.endpoints.oauth_url, app

    async def app_secret(self, key: Key, entry: GrantEntry) -> dict[str, str]:
        """The app Secret's data if it may be used (the opt-in label); {} otherwise. Kept a
        minute: notices from anyone on the network must not each cost API reads."""
        if entry.app_data is not None and entry.app_data[0] > time.monotonic():
            return entry.app_data[1]
        try:
            data = await self._read_app_secret(key, entry)
        except (SecretNotAllowed, InvalidName):
            data = {}  # this grant's app cannot verify anything; the others still can
        entry.app_data = (time.monotonic() + APP_SECRET_SECONDS, data)
        return data

    async def _read_app_secret(self, key: Key, entry: GrantEntry) -> dict[str, str]:
        """The app Secret's data; SecretNotAllowed (with why) if it is missing, unreadable or
        not opted in."""
        name = entry.grant.spec.app_credentials_secret_ref.name
        try:
            return await read_opted_in(self.kube, key[0], name, SecretUse.ZOOM_CREDENTIALS)
        except (SecretMissing, SecretUnreadable) as error:
            raise SecretNotAllowed(str(error)) from None

    def http(self, key: Key, entry: GrantEntry) -> Any:
        client = self.client(key, entry)
        assert client is not None  # checked by _app
        return client.http

    async def secret(self, key: Key, entry: GrantEntry) -> dict[str, str]:
        """The grant's Secret data ({} if it does not exist); NameTaken if not ours."""
        return await self.kube.read_owned_secret(key[0], secret_name(key[1]), entry.uid) or {}

    async def write_secret(self, key: Key, entry: GrantEntry, data: dict[str, str]) -> None:
        await self.kube.upsert_secret(grant_secret(key[0], key[1], entry.uid, data))

    async def set_state(self, key: Key, entry: GrantEntry, state: GrantState) -> None:
        """Remember the state and write the status (Ready, the URL) if it changed."""
        changed = state != entry.state
        entry.state = state
        old = entry.grant.status
        status = old.model_copy(deep=True)
        generation = entry.body["metadata"].get("generation")
        status.conditions = set_condition(
            old.conditions,
            "Ready",
            state.ready,
            state.reason,
            state.message,
            generation=generation,
            now=datetime.now(UTC),
        )
        status.conditions = progress(
            status.conditions,
            grant_progress(state),
            state.reason,
            state.message,
            generation=generation,
            now=datetime.now(UTC),
        )
        status.observed_generation = generation
        status.authorization_url = self.authorization_url(*key, entry.uid)
        document = status.model_dump(mode="json", by_alias=True, exclude_none=True)
        current = ZoomUserGrantStatus.model_validate(entry.body.get("status") or {})
        if document != current.model_dump(mode="json", by_alias=True, exclude_none=True):
            try:
                result = await self.kube.patch_status("zoomusergrants", *key, document)
            except ApiError as error:
                log.warning("grant status not written", extra={"status": error.status})
                result = None
            if result is not None:
                entry.body = result
                entry.grant = ZoomUserGrant.model_validate(result)
        if changed:
            await self._on_change(*key)

    async def authorized(
        self,
        key: Key,
        entry: GrantEntry,
        access: AccessToken,
        *,
        first: bool,
        request: str | None = None,
    ) -> None:
        """Who authorized (GET /users/me) and the Ready status."""
        client = self.client(key, entry)
        status = entry.grant.status.model_copy(deep=True)
        now = datetime.now(UTC)
        if client is not None and (first or not status.email):
            try:
                me = await client.get_me(access.value)
                status.user_id, status.email = me.id, me.email or None
            except ZoomError as error:
                log.warning("grant user lookup failed", extra={"reason": error.reason})
        status.scopes = sorted(access.scopes)
        if first:
            status.authorized_time = now
        if request is not None:
            status.reauthorized_for = request  # used: the same value allows no other
        else:
            status.last_refresh_time = now
        remaining = max(access.expires_at - time.monotonic(), 0.0)
        status.access_token_expiry_time = now + timedelta(seconds=remaining + 60)
        entry.grant = entry.grant.model_copy(update={"status": status})
        who = status.email or status.user_id or "the user"
        await self.set_state(key, entry, GrantState(True, AUTHORIZED, f"authorized by {who}"))
