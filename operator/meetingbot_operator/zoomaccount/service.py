"""ZoomAccounts: their credentials, one shared Zoom client each, and whether they work.

A ZoomAccount is Ready when its two Secrets exist with the expected keys and the opt-in label,
its endpoints are Zoom's own or allowed by the operator's settings (credentials.py), and a
real token request succeeds. The check runs when the account or one of its Secrets changes
(the Secret watch), every `account_recheck_seconds` while Ready, and every 30 s while not.
Between checks it looks again at the service users Zoom refused, creates users when bots ask
for them (provisioning.py) and answers meeting lookups (meetings.py).

Nothing a remote endpoint answers is copied into the status: messages are the operator's own
words about Zoom's status and error codes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr, ValidationError

from meetingbot_api import ServiceUserStatus, ZoomAccountSpec, ZoomAccountStatus
from meetingbot_contract.reasons import Reason, is_transient
from meetingbot_operator import metrics
from meetingbot_operator.conditions import Progress, progress, set_condition
from meetingbot_operator.identities.service import Identities
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.settings import Settings
from meetingbot_operator.zoom import SdkCredentials, ZoomClient, ZoomError
from meetingbot_operator.zoomaccount import credentials, pictures, provisioning
from meetingbot_operator.zoomaccount.credentials import AccountProblem, CallObserver
from meetingbot_operator.zoomaccount.meetings import MeetingLookups
from meetingbot_operator.zoomaccount.state import (
    NOT_READY_RECHECK_SECONDS,
    AccountState,
    MeetingOwner,
    ReadyAccount,
)

log = logging.getLogger(__name__)

ZAK_SCOPES = {"user:read:admin", "user:read:token:admin", "user:read:token"}

Key = tuple[str, str]


@dataclass
class AccountEntry:
    spec: ZoomAccountSpec
    generation: int
    state: AccountState = field(
        default_factory=lambda: AccountState(
            False, Reason.ZOOM_ACCOUNT_NOT_READY, "not verified yet"
        )
    )
    client: ZoomClient | None = None
    sdk: SdkCredentials | None = None
    webhook_token: SecretStr | None = None  # the app's secret token, if its Secret has one
    fingerprint: str = ""
    verified_generation: int | None = None
    next_check: float = 0.0
    body: dict[str, Any] = field(default_factory=dict)
    written_version: tuple[int, int] = (-1, -1)  # the identities' version the status shows
    # Provisioning (spec.pool.provisioning): the template users Zoom has, and the one run.
    provisioned: tuple[str, ...] = ()
    provisioning: asyncio.Task[None] | None = None
    provision_error: str = ""
    meetings: MeetingLookups = field(default_factory=MeetingLookups)
    # spec.picture: which picture (its digest) each service user was given, and what failed.
    pictures: dict[str, str] = field(default_factory=dict)
    current_picture: str = ""
    picture_error: str = ""

    def pool_users(self) -> tuple[str, ...]:
        listed = tuple(self.spec.users)
        return listed + tuple(u for u in self.provisioned if u not in listed)


class AccountService:
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        identities: Identities,
        *,
        on_change: Callable[[str, str], Awaitable[None]],
        observe_zoom_call: CallObserver | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.identities = identities
        self.entries: dict[Key, AccountEntry] = {}
        self._on_change = on_change
        self._observe = observe_zoom_call

    # --- what the other wings read ----------------------------------------------------------

    def state(self, namespace: str, name: str) -> AccountState | None:
        """What decisions read: readiness, and the pool as it stands now."""
        key = (namespace, name)
        entry = self.entries.get(key)
        if entry is None:
            return None
        pool = self.identities.pool(key)
        wanted = entry.spec.pool.provisioning
        return replace(
            entry.state,
            users=pool.active(),
            all_users=pool.users,
            loads=tuple(self.identities.loads(key).items()),
            max_per_user=entry.spec.pool.max_bots_per_user,
            unavailable=tuple((u, s.reason) for u, s in pool.unavailable.items()),
            can_provision=wanted is not None and len(entry.provisioned) < wanted.max_users,
        )

    def ready(self, namespace: str, name: str) -> ReadyAccount | None:
        """The account, if it is Ready: what bots mint with."""
        key = (namespace, name)
        entry = self.entries.get(key)
        if entry is None or entry.client is None or entry.sdk is None or not entry.state.ready:
            return None
        return ReadyAccount(key, entry.spec, entry.client, entry.sdk)

    def client(self, namespace: str, name: str) -> ZoomClient | None:
        """The account's Zoom client while its credentials are verified (grants use its cloud,
        its HTTP client and GET /users/me)."""
        entry = self.entries.get((namespace, name))
        return entry.client if entry is not None else None

    def webhook_token(self, namespace: str, name: str) -> str:
        """The secret token Zoom signs the account app's webhooks with ("" if its API Secret
        has none), as the last verification read it (a change of the Secret is read at once)."""
        entry = self.entries.get((namespace, name))
        token = entry.webhook_token if entry is not None else None
        return token.get_secret_value() if token is not None else ""

    def count(self) -> int:
        return len(self.entries)

    def using_secret(self, namespace: str, secret: str) -> list[Key]:
        """The accounts whose credentials come from this Secret."""
        return [
            key
            for key, entry in self.entries.items()
            if key[0] == namespace
            and secret
            in (
                entry.spec.sdk_credentials_secret_ref.name,
                entry.spec.api_credentials_secret_ref.name,
                _picture_secret(entry.spec),
            )
        ]

    def meeting_owner(self, namespace: str, name: str, number: str) -> MeetingOwner | None:
        """What a lookup found for this meeting (auth: auto), while it is fresh."""
        entry = self.entries.get((namespace, name))
        return entry.meetings.owner(number) if entry else None

    # --- inputs -----------------------------------------------------------------------------

    async def secret_changed(self, namespace: str, secret: str) -> None:
        """A Secret was created, changed or deleted: re-verify the accounts that use it now,
        so a revoked or deleted credential stops ZAKs at once, not at the next recheck."""
        for key in self.using_secret(namespace, secret):
            await self.verify(key)

    async def observe(self, event_type: str, body: dict[str, Any]) -> None:
        """A ZoomAccount watch event."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if event_type == "DELETED":
            entry = self.entries.pop(key, None)
            if entry and entry.client:
                await entry.client.aclose()
            self.identities.forget_account(key)
            metrics.forget_pool(*key)
            await self._on_change(*key)
            return
        try:
            spec = ZoomAccountSpec.model_validate(body.get("spec", {}))
        except ValidationError as error:
            log.warning(
                "invalid ZoomAccount spec", extra={"account": "/".join(key), "error": str(error)}
            )
            return
        generation = int(body["metadata"].get("generation", 0))
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = AccountEntry(spec=spec, generation=generation)
        entry.spec, entry.generation, entry.body = spec, generation, body
        self.identities.pool(key).set_users(entry.pool_users())
        if entry.verified_generation != generation:
            await self.verify(key)

    async def recheck_due(self) -> None:
        """The periodic checks, each account on its own: one whose calls fail (its status
        cannot be written, a read is refused) is logged and tried at its next turn, and never
        keeps the others from theirs."""
        now = time.monotonic()
        for key, entry in list(self.entries.items()):
            try:
                if entry.next_check <= now:
                    await self.verify(key)
                elif self.identities.pool(key).due() and entry.client is not None:
                    await self._recheck_users(key, entry)
                elif self.identities.version(key) != entry.written_version:
                    await self._write_status(key, entry)
            except Exception as error:  # isolation: any failure stays with its account
                entry.next_check = now + NOT_READY_RECHECK_SECONDS
                log.warning(
                    "account check failed; trying it again later",
                    extra={"account": "/".join(key), "error": type(error).__name__},
                )

    # --- actions bots' decisions name ---------------------------------------------------------

    def want_more_users(self, namespace: str, name: str) -> None:
        """A bot found no service user: create one if provisioning allows (one run at a time
        per account; nothing is asked of Zoom once maxUsers exist)."""
        key = (namespace, name)
        entry = self.entries.get(key)
        wanted = entry.spec.pool.provisioning if entry else None
        if entry is None or wanted is None or not entry.state.ready:
            return
        if len(entry.provisioned) >= wanted.max_users:
            return
        if entry.provisioning is None or entry.provisioning.done():
            entry.provisioning = asyncio.create_task(self._provision(key, entry))

    async def lookup_meeting(self, namespace: str, name: str, number: str) -> None:
        """`GET /meetings/{id}` with the account's token, cached per meeting (meetings.py)."""
        entry = self.entries.get((namespace, name))
        if entry is not None and entry.client is not None:
            await entry.meetings.lookup(entry.client, number, f"{namespace}/{name}")

    # --- the checks ---------------------------------------------------------------------------

    async def verify(self, key: Key) -> None:
        entry = self.entries.get(key)
        if entry is None:
            return
        namespace, name = key
        was_ready = entry.state.ready
        scopes: list[str] = []
        users = tuple(entry.spec.users)
        try:
            await self._load_client(namespace, entry)
            assert entry.client is not None
            scopes = sorted(await entry.client.verify())
            if scopes and not ZAK_SCOPES & set(scopes):
                entry.state = AccountState(
                    False,
                    Reason.ZOOM_SCOPE_MISSING,
                    "the app's token has none of the scopes needed to mint ZAKs "
                    "(user:read:token:admin or user:read:admin)",
                    users,
                )
            else:
                entry.state = AccountState(
                    True, "CredentialsVerified", "a token request succeeded", users
                )
                if entry.spec.pool.provisioning is not None:
                    try:
                        await self._discover(key, entry)
                    except ZoomError as error:  # e.g. no user:read scope: no provisioning
                        entry.provision_error = error.message
        except ZoomError as error:
            entry.state = AccountState(False, error.reason, error.message, users)
        except AccountProblem as problem:
            entry.state = AccountState(False, problem.reason, problem.message, users)
        if not entry.state.ready and entry.client is not None:
            # Not ready: forget the client (and with it the credentials and the cached token)
            # and the account's ZAKs, so nothing is minted with credentials that were withdrawn.
            await entry.client.aclose()
            entry.client, entry.sdk, entry.fingerprint = None, None, ""
            entry.webhook_token = None
            self.identities.zaks.forget_account(key)
        if entry.state.ready:
            await self._sync_pictures(key, entry)
        entry.verified_generation = entry.generation
        delay = (
            self.settings.account_recheck_seconds
            if entry.state.ready
            else NOT_READY_RECHECK_SECONDS
        )
        entry.next_check = time.monotonic() + delay
        await self._write_status(key, entry, scopes)
        if entry.state.ready != was_ready:
            await self._on_change(namespace, name)

    async def _load_client(self, namespace: str, entry: AccountEntry) -> None:
        """The account's client, built anew only when its credentials or settings changed."""
        loaded = await credentials.load(self.kube, self.settings, namespace, entry.spec)
        entry.webhook_token = loaded.webhook_secret_token
        if entry.client is not None and loaded.fingerprint == entry.fingerprint:
            return
        if entry.client is not None:
            await entry.client.aclose()
        entry.sdk = loaded.sdk
        entry.client = credentials.client(loaded, entry.spec, self.settings, self._observe)
        entry.fingerprint = loaded.fingerprint

    async def _recheck_users(self, key: Key, entry: AccountEntry) -> None:
        """GET /v2/users/{id} for each Unavailable user whose check is due."""
        assert entry.client is not None
        pool = self.identities.pool(key)
        for user in pool.due():
            try:
                found = await entry.client.get_user(user)
            except ZoomError as error:
                pool.still_unavailable(user, error.reason, error.message)
                continue
            if found.status == "active":
                pool.recovered(user)
            else:
                pool.still_unavailable(
                    user, Reason.ZOOM_USER_INACTIVE, f"Zoom says the user is {found.status}"
                )
        await self._write_status(key, entry)
        await self._on_change(*key)

    async def _discover(self, key: Key, entry: AccountEntry) -> None:
        wanted = entry.spec.pool.provisioning
        assert wanted is not None and entry.client is not None
        pool = self.identities.pool(key)
        entry.provisioned = await provisioning.discover(entry.client, wanted, pool)
        pool.set_users(entry.pool_users())

    async def _provision(self, key: Key, entry: AccountEntry) -> None:
        wanted = entry.spec.pool.provisioning
        if wanted is None or entry.client is None:
            return
        pool = self.identities.pool(key)
        try:
            await self._discover(key, entry)
            created = await provisioning.create_next(entry.client, wanted, entry.provisioned, pool)
            if created is None:
                return
            entry.provisioned = (*entry.provisioned, created)
            pool.set_users(entry.pool_users())
            entry.provision_error = ""
            log.info("service user created", extra={"account": "/".join(key)})
            await self._sync_pictures(key, entry)
        except ZoomError as error:
            entry.provision_error = error.message
            log.warning(
                "creating a service user failed",
                extra={"account": "/".join(key), "reason": error.reason},
            )
            await self._write_status(key, entry)
            await asyncio.sleep(provisioning.PROVISION_BACKOFF_SECONDS)  # paces the runs
            return
        except Exception:
            log.exception("provisioning failed", extra={"account": "/".join(key)})
            await asyncio.sleep(provisioning.PROVISION_BACKOFF_SECONDS)
            return
        await self._write_status(key, entry)
        await self._on_change(*key)

    async def _sync_pictures(self, key: Key, entry: AccountEntry) -> None:
        """spec.picture on every service user that does not have it yet (at each verification,
        so a changed picture is uploaded within account_recheck_seconds, or at once when its
        Secret changes; and after a user is created)."""
        source = entry.spec.picture
        if source is None or entry.client is None:
            entry.picture_error = ""
            return
        try:
            picture = await pictures.load(self.kube, key[0], source)
        except pictures.PictureProblem as problem:
            entry.picture_error = str(problem)
            return
        errors = await pictures.upload_where_needed(
            entry.client, entry.pool_users(), picture, entry.pictures
        )
        entry.picture_error = "; ".join(errors)
        entry.current_picture = picture.digest

    async def _write_status(
        self, key: Key, entry: AccountEntry, scopes: list[str] | None = None
    ) -> None:
        """The Ready condition and the pool; `scopes` from a verification (None: as they are)."""
        now = datetime.now(UTC)
        old = ZoomAccountStatus.model_validate(entry.body.get("status") or {})
        status = old.model_copy(deep=True)
        status.conditions = set_condition(
            old.conditions,
            "Ready",
            entry.state.ready,
            entry.state.reason,
            entry.state.message,
            generation=entry.generation,
            now=now,
        )
        status.conditions = progress(
            status.conditions,
            _progress(entry.state.ready, entry.state.reason),
            entry.state.reason,
            entry.state.message,
            generation=entry.generation,
            now=now,
        )
        status.observed_generation = entry.generation
        if scopes is not None:  # a verification: not a pool update
            status.scopes = scopes
            status.last_verified_time = now
        views = self.identities.view(key)
        status.users = [
            ServiceUserStatus.model_validate(
                {
                    "user": v.user,
                    "state": v.state,
                    "activeBots": v.active_bots,
                    "reason": v.reason,
                    "message": (v.message or "")[:1024] or None,
                    "since": v.since,
                    "picture": self._picture_of(entry, v.user),
                }
            )
            for v in views
        ]
        status.active_users = sum(v.state == "Active" for v in views)
        status.active_bots = sum(v.active_bots for v in views)
        status.provisioning_error = entry.provision_error[:1024] or None
        status.picture_error = entry.picture_error[:1024] or None
        entry.written_version = self.identities.version(key)
        metrics.observe_pool(key[0], key[1], views)
        result = await self.kube.patch_status(
            "zoomaccounts", key[0], key[1], status.model_dump(mode="json", by_alias=True)
        )
        if result is not None:
            entry.body = result

    @staticmethod
    def _picture_of(entry: AccountEntry, user: str) -> str | None:
        """The picture the user has, if it is spec.picture as last read."""
        have = entry.pictures.get(user)
        return have if entry.spec.picture and have == entry.current_picture else None

    async def close(self) -> None:
        for entry in self.entries.values():
            if entry.client:
                await entry.client.aclose()


def _picture_secret(spec: ZoomAccountSpec) -> str:
    ref = spec.picture.secret_ref if spec.picture else None
    return ref.name if ref else ""


def _progress(ready: bool, reason: str) -> Progress:
    """Ready is Current; a reason that may clear by itself (Zoom unavailable or rate limited,
    a Secret not created yet) is Reconciling; one that needs a person (credentials refused,
    a scope missing, a Secret not opted in) is Stalled."""
    if ready:
        return Progress.CURRENT
    return Progress.RECONCILING if is_transient(reason) else Progress.STALLED
