"""ZoomAccounts: their credentials, one shared Zoom client each, and whether they work.

A ZoomAccount is Ready when its two Secrets exist with the expected keys and the opt-in label
(secret_refs.py), its endpoints are Zoom's own or allowed by the operator's settings, and a
real token request succeeds. The check runs when the account or one of its Secrets changes
(the Secret watch), every `account_recheck_seconds` while Ready, and every 30 s while not.

Nothing a remote endpoint answers is copied into the status: messages are the operator's own
words about Zoom's status and error codes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from meetingbot_contract.reasons import Reason
from meetingbot_operator import metrics
from meetingbot_operator.conditions import set_condition
from meetingbot_operator.kube import Kube
from meetingbot_operator.kube_client import ApiError, InvalidName
from meetingbot_operator.models import ServiceUserStatus, ZoomAccountSpec, ZoomAccountStatus
from meetingbot_operator.observed import NOT_READY_RECHECK_SECONDS, AccountState, MeetingOwner
from meetingbot_operator.pool import UserPool
from meetingbot_operator.secret_refs import SecretNotAllowed, SecretUse, usable
from meetingbot_operator.settings import Settings, endpoint_allowed
from meetingbot_operator.zoom import (
    ApiCredentials,
    Category,
    Endpoints,
    SdkCredentials,
    Zak,
    ZoomClient,
    ZoomError,
)

log = logging.getLogger(__name__)

SDK_KEYS = ("sdkKey", "sdkSecret")
API_KEYS = ("accountId", "clientId", "clientSecret")
ZAK_SCOPES = {"user:read:admin", "user:read:token:admin", "user:read:token"}
# auth: auto's meeting lookups: kept this long, this many per account.
MEETING_CACHE_SECONDS = 3600.0
MEETING_CACHE_SIZE = 1000

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
    fingerprint: str = ""
    verified_generation: int | None = None
    next_check: float = 0.0
    body: dict[str, Any] = field(default_factory=dict)
    pool: UserPool = field(default_factory=UserPool)
    written_version: int = -1  # the pool version the status shows
    # ZAK reuse (spec.zak.reuse): the latest ZAK per service user, in memory only.
    zaks: dict[str, Zak] = field(default_factory=dict)
    zak_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    zak_failures: dict[str, tuple[ZoomError, float]] = field(default_factory=dict)
    # Provisioning (spec.pool.provisioning): the template users Zoom has, and the one run.
    provisioned: tuple[str, ...] = ()
    provisioning: asyncio.Task[None] | None = None
    provision_error: str = ""
    # auth: auto: meeting number -> (whose meeting, until when), bounded (lookup_meeting).
    meetings: dict[str, tuple[MeetingOwner, float]] = field(default_factory=dict)

    def pool_users(self) -> tuple[str, ...]:
        listed = tuple(self.spec.users)
        return listed + tuple(u for u in self.provisioned if u not in listed)


class AccountService:
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        *,
        on_change: Callable[[str, str], Awaitable[None]],
        observe_zoom_call: Callable[[str, float, int], None] | None = None,
        on_new_pool: Callable[[str, str], None] | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.entries: dict[Key, AccountEntry] = {}
        self._on_change = on_change
        self._observe = observe_zoom_call
        self._on_new_pool = on_new_pool

    def state(self, namespace: str, name: str) -> AccountState | None:
        """What decisions read: readiness, and the pool as it stands now."""
        entry = self.entries.get((namespace, name))
        if entry is None:
            return None
        pool = entry.pool
        return replace(
            entry.state,
            users=pool.active(),
            all_users=pool.users,
            loads=tuple(pool.loads().items()),
            max_per_user=entry.spec.pool.max_bots_per_user,
            unavailable=tuple((u, s.reason) for u, s in pool.unavailable.items()),
        )

    def get(self, namespace: str, name: str) -> AccountEntry | None:
        return self.entries.get((namespace, name))

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
            )
        ]

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
            entry.pool.recheck_seconds = self.settings.user_recheck_seconds
        entry.spec, entry.generation, entry.body = spec, generation, body
        entry.pool.set_users(entry.pool_users())
        if entry.verified_generation is None and self._on_new_pool is not None:
            self._on_new_pool(*key)  # before the first verify: nothing can start yet
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
                elif entry.pool.due() and entry.client is not None:
                    await self._recheck_users(key, entry)
                elif entry.pool.version != entry.written_version:
                    await self._write_status(key, entry)
            except Exception as error:  # isolation: any failure stays with its account
                entry.next_check = now + NOT_READY_RECHECK_SECONDS
                log.warning(
                    "account check failed; trying it again later",
                    extra={"account": "/".join(key), "error": type(error).__name__},
                )

    def user_refused(self, namespace: str, name: str, user: str, error: ZoomError) -> None:
        """Zoom refused `user` for a reason about the user: it is Unavailable until a check
        says otherwise; bots move to another user."""
        entry = self.entries.get((namespace, name))
        if entry is not None:
            entry.pool.mark_unavailable(user, error.reason, error.message, datetime.now(UTC))
            log.warning(
                "service user unavailable",
                extra={"account": f"{namespace}/{name}", "reason": error.reason},
            )

    def want_more_users(self, namespace: str, name: str) -> None:
        """A bot found no service user: create one if provisioning allows (one run at a time
        per account; nothing is asked of Zoom once maxUsers exist)."""
        key = (namespace, name)
        entry = self.entries.get(key)
        provisioning = entry.spec.pool.provisioning if entry else None
        if entry is None or provisioning is None or not entry.state.ready:
            return
        if len(entry.provisioned) >= provisioning.max_users:
            return
        if entry.provisioning is None or entry.provisioning.done():
            entry.provisioning = asyncio.create_task(self._provision(key, entry))

    async def _discover_provisioned(self, entry: AccountEntry) -> None:
        """The template's users as Zoom has them (active and pending): the count of created
        users comes from Zoom, never from memory, so a restart cannot exceed maxUsers."""
        provisioning = entry.spec.pool.provisioning
        assert provisioning is not None and entry.client is not None
        found: list[str] = []
        for state in ("active", "pending"):
            for user in await entry.client.list_users(state):
                if provisioning.index(user.email) is not None:
                    found.append(user.email.lower())
                    if state == "pending":
                        entry.pool.mark_unavailable(
                            user.email.lower(), Reason.ZOOM_USER_INACTIVE, PENDING, _now()
                        )
        entry.provisioned = tuple(sorted(set(found), key=lambda e: provisioning.index(e) or 0))
        entry.pool.set_users(entry.pool_users())

    async def _provision(self, key: Key, entry: AccountEntry) -> None:
        provisioning = entry.spec.pool.provisioning
        if provisioning is None or entry.client is None:
            return
        try:
            await self._discover_provisioned(entry)
            taken = {provisioning.index(e) for e in entry.provisioned}
            free = [n for n in range(1, provisioning.max_users + 1) if n not in taken]
            if not free:
                return
            email = provisioning.email(free[0])
            try:
                await entry.client.create_user(
                    provisioning.action,
                    email,
                    user_type=provisioning.user_type,
                    first_name="Meeting",
                    last_name=f"Bot {free[0]}",
                )
            except ZoomError as error:
                if error.reason != Reason.ZOOM_USER_EXISTS:  # 1005: already there, adopted
                    raise
            entry.provisioned = (*entry.provisioned, email.lower())
            entry.pool.set_users(entry.pool_users())
            if provisioning.action == "create":
                # Zoom emails an invitation; no ZAK until the user accepts it.
                entry.pool.mark_unavailable(
                    email.lower(), Reason.ZOOM_USER_INACTIVE, PENDING, _now()
                )
            entry.provision_error = ""
            log.info("service user created", extra={"account": "/".join(key)})
        except ZoomError as error:
            entry.provision_error = error.message
            log.warning(
                "creating a service user failed",
                extra={"account": "/".join(key), "reason": error.reason},
            )
            await self._write_status(key, entry)
            await asyncio.sleep(PROVISION_BACKOFF_SECONDS)  # one run at a time: this paces it
            return
        except Exception:
            log.exception("provisioning failed", extra={"account": "/".join(key)})
            await asyncio.sleep(PROVISION_BACKOFF_SECONDS)
            return
        await self._write_status(key, entry)
        await self._on_change(*key)

    def zak_refused(self, namespace: str, name: str, user: str) -> None:
        """A join was refused for the ZAK (3265, 3623): the next bot of that user mints anew."""
        entry = self.entries.get((namespace, name))
        if entry is not None:
            entry.zaks.pop(user, None)

    def meeting_owner(self, namespace: str, name: str, number: str) -> MeetingOwner | None:
        """What a lookup found for this meeting (auth: auto), while it is fresh."""
        entry = self.entries.get((namespace, name))
        found = entry.meetings.get(number) if entry else None
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    async def lookup_meeting(self, namespace: str, name: str, number: str) -> None:
        """`GET /meetings/{id}` with the account's token, cached per meeting. A missing scope
        is an answer too (UNKNOWN); any other failure leaves nothing cached (looked up again)."""
        entry = self.entries.get((namespace, name))
        if entry is None or entry.client is None:
            return
        try:
            own = await entry.client.meeting_is_own(number)
        except ZoomError as error:
            if error.reason != Reason.ZOOM_SCOPE_MISSING:
                log.warning(
                    "meeting lookup failed",
                    extra={"account": f"{namespace}/{name}", "reason": error.reason},
                )
                return
            owner = MeetingOwner.UNKNOWN
        else:
            owner = MeetingOwner.OWN if own else MeetingOwner.EXTERNAL
        if len(entry.meetings) >= MEETING_CACHE_SIZE:
            entry.meetings.pop(next(iter(entry.meetings)))  # the oldest entry
        entry.meetings[number] = (owner, time.monotonic() + MEETING_CACHE_SECONDS)

    def pool(self, namespace: str, name: str) -> UserPool | None:
        entry = self.entries.get((namespace, name))
        return entry.pool if entry else None

    async def _recheck_users(self, key: Key, entry: AccountEntry) -> None:
        """GET /v2/users/{id} for each Unavailable user whose check is due."""
        assert entry.client is not None
        for user in entry.pool.due():
            try:
                found = await entry.client.get_user(user)
            except ZoomError as error:
                entry.pool.still_unavailable(user, error.reason, error.message)
                continue
            if found.status == "active":
                entry.pool.recovered(user)
            else:
                entry.pool.still_unavailable(
                    user, Reason.ZOOM_USER_INACTIVE, f"Zoom says the user is {found.status}"
                )
        await self._write_status(key, entry)
        await self._on_change(*key)

    async def verify(self, key: Key) -> None:
        entry = self.entries.get(key)
        if entry is None:
            return
        namespace, name = key
        was_ready = entry.state.ready
        scopes: list[str] = []
        try:
            await self._load_credentials(namespace, entry)
            assert entry.client is not None
            scopes = sorted(await entry.client.verify())
            if scopes and not ZAK_SCOPES & set(scopes):
                entry.state = AccountState(
                    False,
                    Reason.ZOOM_SCOPE_MISSING,
                    "the app's token has none of the scopes needed to mint ZAKs "
                    "(user:read:token:admin or user:read:admin)",
                    tuple(entry.spec.users),
                )
            else:
                entry.state = AccountState(
                    True,
                    "CredentialsVerified",
                    "a token request succeeded",
                    tuple(entry.spec.users),
                )
                if entry.spec.pool.provisioning is not None:
                    try:
                        await self._discover_provisioned(entry)
                    except ZoomError as error:  # e.g. no user:read scope: no provisioning
                        entry.provision_error = error.message
        except ZoomError as error:
            entry.state = AccountState(False, error.reason, error.message, tuple(entry.spec.users))
        except _MissingSecret as error:
            entry.state = AccountState(
                False, Reason.SECRET_NOT_FOUND, str(error), tuple(entry.spec.users)
            )
        except SecretNotAllowed as error:
            entry.state = AccountState(
                False, Reason.SECRET_NOT_ALLOWED, str(error), tuple(entry.spec.users)
            )
        except _EndpointNotAllowed as error:
            entry.state = AccountState(
                False, Reason.ZOOM_ENDPOINT_NOT_ALLOWED, str(error), tuple(entry.spec.users)
            )
        except _UnreadableSecret as error:
            entry.state = AccountState(
                False, Reason.SECRET_UNREADABLE, str(error), tuple(entry.spec.users)
            )
        if not entry.state.ready and entry.client is not None:
            # Not ready: forget the client (and with it the credentials and the cached token),
            # so nothing is minted with credentials that were withdrawn.
            await entry.client.aclose()
            entry.client, entry.sdk, entry.fingerprint = None, None, ""
            entry.zaks.clear()
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

    async def _load_credentials(self, namespace: str, entry: AccountEntry) -> None:
        spec = entry.spec
        # Where the credentials would go is checked before they are even read.
        endpoints = self._endpoints(spec)
        sdk = await self._secret(namespace, spec.sdk_credentials_secret_ref.name, SDK_KEYS)
        api = await self._secret(namespace, spec.api_credentials_secret_ref.name, API_KEYS)
        limits = spec.rate_limits.model_dump_json() if spec.rate_limits else ""
        parts = [
            *sdk.values(),
            *api.values(),
            endpoints.oauth_url,
            endpoints.api_url,
            spec.plan,
            limits,
        ]
        material = "\0".join(parts)
        fingerprint = hashlib.sha256(material.encode()).hexdigest()
        if entry.client is not None and fingerprint == entry.fingerprint:
            return
        if entry.client is not None:
            await entry.client.aclose()
        entry.sdk = SdkCredentials(sdk_key=sdk["sdkKey"], sdk_secret=SecretStr(sdk["sdkSecret"]))
        entry.client = ZoomClient(
            ApiCredentials(
                account_id=api["accountId"],
                client_id=api["clientId"],
                client_secret=SecretStr(api["clientSecret"]),
            ),
            endpoints,
            plan=spec.plan,
            http=httpx.AsyncClient(
                timeout=httpx.Timeout(self.settings.zoom_timeout_seconds, connect=5.0)
            ),
            max_attempts=self.settings.zoom_max_attempts,
            observer=self._observe,
            rate_limits=(
                {Category.LIGHT: spec.rate_limits.light_per_second}
                if spec.rate_limits and spec.rate_limits.light_per_second
                else None
            ),
        )
        entry.fingerprint = fingerprint

    def _endpoints(self, spec: ZoomAccountSpec) -> Endpoints:
        if spec.endpoints is None:
            return Endpoints.for_cloud(spec.cloud)
        allowed = self.settings.allowed_endpoints
        for url in (spec.endpoints.oauth_url, spec.endpoints.api_url):
            if not endpoint_allowed(url, allowed):
                raise _EndpointNotAllowed(
                    f"endpoint {url!r} is not one this operator allows (its "
                    "MEETINGBOT_ALLOWED_ENDPOINTS setting); no credentials were sent"
                )
        return Endpoints(oauth_url=spec.endpoints.oauth_url, api_url=spec.endpoints.api_url)

    async def _secret(self, namespace: str, name: str, keys: tuple[str, ...]) -> dict[str, str]:
        try:
            secret = await self.kube.read_secret(namespace, name)
        except InvalidName as error:
            raise _MissingSecret(f"Secret reference: {error}") from None
        except ApiError as error:
            raise _UnreadableSecret(
                f"the operator could not read Secret {name!r}: {error.message}"
            ) from None
        if secret is None:
            raise _MissingSecret(f"Secret {name!r} not found")
        data = usable(secret, name, SecretUse.ZOOM_CREDENTIALS)
        missing = [k for k in keys if not data.get(k)]
        if missing:
            raise _MissingSecret(f"Secret {name!r} lacks keys: {', '.join(missing)}")
        return {k: data[k] for k in keys}

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
        status.observed_generation = entry.generation
        if scopes is not None:  # a verification: not a pool update
            status.scopes = scopes
            status.last_verified_time = now
        views = entry.pool.view()
        status.users = [
            ServiceUserStatus.model_validate(
                {
                    "user": v.user,
                    "state": v.state,
                    "activeBots": v.active_bots,
                    "reason": v.reason,
                    "message": (v.message or "")[:1024] or None,
                    "since": v.since,
                }
            )
            for v in views
        ]
        status.active_users = sum(v.state == "Active" for v in views)
        status.active_bots = sum(v.active_bots for v in views)
        status.provisioning_error = entry.provision_error[:1024] or None
        entry.written_version = entry.pool.version
        metrics.observe_pool(key[0], key[1], views)
        result = await self.kube.patch_status(
            "zoomaccounts", key[0], key[1], status.model_dump(mode="json", by_alias=True)
        )
        if result is not None:
            entry.body = result

    async def close(self) -> None:
        for entry in self.entries.values():
            if entry.client:
                await entry.client.aclose()


PENDING = "pending: the user has not accepted Zoom's invitation yet"
PROVISION_BACKOFF_SECONDS = 30.0


def _now() -> datetime:
    return datetime.now(UTC)


class _MissingSecret(Exception):
    pass


class _EndpointNotAllowed(Exception):
    pass


class _UnreadableSecret(Exception):
    pass
