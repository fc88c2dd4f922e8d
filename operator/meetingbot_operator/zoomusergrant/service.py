"""ZoomUserGrants: a Zoom user authorizes our user-managed app once; the operator keeps the
grant alive and mints OBF tokens on the user's behalf.

- Authorization: the status names a link on the operator (`/oauth/start/...?t=`, unguessable:
  links.py); opening it redirects to Zoom's consent page with a signed state and a PKCE
  challenge, storing nothing (each visit has its own state; a restart between the click and
  the callback loses nothing). Zoom redirects back to `/oauth/callback`, which checks the
  state, exchanges the code and stores the refresh token. A Ready grant is authorized again
  only when an editor of the grant asks for it (the `meetingbot.dev/reauthorize` annotation,
  a new value each time): whoever merely has the link cannot re-bind it to another user.
- Refresh: Zoom rotates the refresh token on every refresh and the old one dies at once. One
  refresh runs at a time per grant; the new refresh token is written to the Secret before the
  access token is used; a `refreshing` mark is written before the request and cleared with
  the new token. A mark found by the next refresh means a refresh was cut off between Zoom's
  answer and the write: if Zoom then refuses the stored token, the status says exactly that
  (RefreshInterrupted), not a generic revocation.
- The Secret `<grant>-zoom-grant` is controlled by the grant (owner reference with its UID);
  a Secret of that name owned by anyone else is never read or written.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr, ValidationError

from meetingbot_operator.conditions import set_condition
from meetingbot_operator.kube.client import ApiError, InvalidName
from meetingbot_operator.kube.objects import older
from meetingbot_operator.kube.secrets import SecretNotAllowed, SecretUse, usable
from meetingbot_operator.kube.verbs import Kube, NameTaken
from meetingbot_operator.models import (
    API_VERSION,
    GROUP,
    ZoomUserGrant,
    ZoomUserGrantStatus,
)
from meetingbot_operator.settings import Settings
from meetingbot_operator.zoom import user_oauth
from meetingbot_operator.zoom.credentials import AccessToken
from meetingbot_operator.zoom.errors import ZoomError
from meetingbot_operator.zoom.user_oauth import AppCredentials, UserOAuthError
from meetingbot_operator.zoomaccount.service import AccountService
from meetingbot_operator.zoomusergrant.links import GrantLinks, StateRefused
from meetingbot_operator.zoomusergrant.state import GrantState

log = logging.getLogger(__name__)

Key = tuple[str, str]
SECRET_SUFFIX = "-zoom-grant"  # noqa: S105 - a name suffix
# Asked for by an editor of a Ready grant: authorize it once more (a new value each time).
REAUTHORIZE = f"{GROUP}/reauthorize"
UNKNOWN_LINK = "this authorization link is unknown; open the grant's authorizationUrl"
NOTICE_MAX_AGE = 300  # Zoom's webhooks carry a timestamp: older notices are replays
APP_SECRET_SECONDS = 60.0
# Secret keys.
REFRESH_TOKEN = "refreshToken"  # noqa: S105 - a key name
REFRESHING = "refreshing"
PENDING_STATE = "pendingState"
PENDING_VERIFIER = "pendingVerifier"
PENDING_AT = "pendingAt"

# The Ready condition's reasons.
AWAITING = "AwaitingAuthorization"
AUTHORIZED = "Authorized"
REVOKED = "GrantRevoked"
INTERRUPTED = "RefreshInterrupted"
NOT_USABLE = "GrantNotUsable"  # the app's Secret, the ZoomAccount or Zoom itself


class GrantProblem(Exception):
    """Why a grant cannot give a token now (safe to show: no token in it)."""

    def __init__(self, reason: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


@dataclass
class GrantEntry:
    body: dict[str, Any]
    grant: ZoomUserGrant
    access: AccessToken | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    app_data: tuple[float, dict[str, str]] | None = None  # (until, the app Secret's data)
    state: GrantState = field(
        default_factory=lambda: GrantState(False, AWAITING, "not authorized yet")
    )

    @property
    def uid(self) -> str:
        return str(self.body["metadata"]["uid"])


def secret_name(grant: str) -> str:
    return f"{grant}{SECRET_SUFFIX}"


def grant_secret(namespace: str, grant: str, uid: str, data: dict[str, str]) -> dict[str, Any]:
    """The grant's Secret, controlled by the grant. blockOwnerDeletion: under the admission
    plugin OwnerReferencesPermissionEnforcement, writing it needs update on
    zoomusergrants/finalizers, which the chart's RBAC grants."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(grant),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "meetingbot-operator"},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "ZoomUserGrant",
                    "name": grant,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "stringData": data,
    }


class GrantService:
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

    # --- watch ----------------------------------------------------------------------------

    async def observe(self, event_type: str, body: dict[str, Any]) -> None:
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
            data = await self._secret(key, entry)
        except NameTaken as taken:
            await self._set(key, entry, GrantState(False, NOT_USABLE, str(taken)))
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
        await self._set(key, entry, entry.state)

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

    def redirect_uri(self) -> str:
        return self.settings.oauth_public_url.rstrip("/") + "/oauth/callback"

    # --- the authorization code flow ------------------------------------------------------

    async def start(self, namespace: str, name: str, token: str) -> str:
        """Zoom's consent page for the grant, if `token` is its link's (nothing is stored)."""
        key = (namespace, name)
        entry = self.entries.get(key)
        if entry is None or not self.links.link_ok(entry.uid, token):
            # An unknown grant and a wrong token answer alike: names are not probed here.
            raise GrantProblem("LinkUnknown", UNKNOWN_LINK, status=404)
        if entry.state.ready and self._reauthorization(entry) is None:
            raise GrantProblem(
                "AlreadyAuthorized",
                f"ZoomUserGrant {namespace}/{name} is authorized ({entry.state.message}). To "
                f"authorize it again, someone who may edit the grant sets its annotation "
                f"{REAUTHORIZE} to a new value; then open this link again",
                status=409,
            )
        token_url, app = await self._app(key, entry)
        state, challenge = self.links.new_state(namespace, name, entry.uid, time.time())
        return user_oauth.authorize_url(token_url, app, self.redirect_uri(), state, challenge)

    async def callback(self, code: str, state: str) -> Key:
        """Zoom sent the person back: check the state, exchange the code, keep the grant."""
        key = self.links.grant_of(state)
        entry = self.entries.get(key)
        if entry is None:
            raise GrantProblem("LinkUnknown", UNKNOWN_LINK, status=404)
        try:
            redeemed = self.links.redeem(state, entry.uid, time.time())
        except StateRefused as refused:
            raise GrantProblem(
                "StateMismatch", f"{refused}; open the grant's authorizationUrl again"
            ) from None
        token_url, app = await self._app(key, entry)
        async with entry.lock:
            request = self._reauthorization(entry)
            if entry.state.ready and request is None:  # authorized by another visit meanwhile
                raise GrantProblem(
                    "AlreadyAuthorized", "this grant is already authorized", status=409
                )
            try:
                tokens = await user_oauth.exchange_code(
                    self._http(key, entry),
                    token_url,
                    app,
                    code,
                    self.redirect_uri(),
                    redeemed.verifier,
                )
            except UserOAuthError as error:
                raise GrantProblem(NOT_USABLE, f"Zoom refused the code: {error.message}") from None
            await self._check_user(key, entry, tokens.access)
            data = await self._secret(key, entry)
            for gone in (PENDING_STATE, PENDING_VERIFIER, PENDING_AT, REFRESHING):
                data.pop(gone, None)  # (states of releases that stored them)
            data[REFRESH_TOKEN] = tokens.refresh.get_secret_value()
            try:
                await self._write_secret(key, entry, data)
            except ApiError as error:
                # Said on the grant too, not only on the page (e.g. the operator's RBAC lacks
                # zoomusergrants/finalizers under OwnerReferencesPermissionEnforcement).
                problem = GrantState(
                    False,
                    NOT_USABLE,
                    f"the operator could not store the grant's Secret {secret_name(key[1])!r}: "
                    f"{error.message}",
                )
                await self._set(key, entry, problem)
                raise GrantProblem(problem.reason, problem.message, status=503) from None
            entry.access = tokens.access
            await self._authorized(key, entry, tokens.access, first=True, request=request)
        log.info("grant authorized", extra={"grant": f"{key[0]}/{key[1]}"})
        return key

    @staticmethod
    def _reauthorization(entry: GrantEntry) -> str | None:
        """The re-authorization an editor asked for and that is not used yet, if any."""
        annotations = entry.body["metadata"].get("annotations") or {}
        asked = str(annotations.get(REAUTHORIZE) or "")[:256]
        return asked if asked and asked != entry.grant.status.reauthorized_for else None

    def allows(self, namespace: str, name: str, labels: dict[str, str]) -> bool:
        """Whether a MeetingBot with these labels may use the grant (spec.botSelector)."""
        entry = self.entries.get((namespace, name))
        selector = entry.grant.spec.bot_selector if entry else None
        if selector is None:
            return True
        return all(labels.get(k) == v for k, v in selector.match_labels.items())

    async def _check_user(self, key: Key, entry: GrantEntry, access: AccessToken) -> None:
        """spec.email: only that user may authorize (checked before anything is stored)."""
        expected = entry.grant.spec.email
        if not expected:
            return
        client = self.accounts.client(key[0], entry.grant.spec.account_ref.name)
        assert client is not None  # checked by _app
        try:
            me = await client.get_me(access.value)
        except ZoomError as error:
            raise GrantProblem(NOT_USABLE, f"who authorized is unknown: {error}") from None
        if me.email.lower() != expected.lower():
            raise GrantProblem(
                "UserMismatch",
                f"this grant is for {expected}; the user who signed in is someone else. Sign "
                "in to Zoom as that user and open the link again",
                status=403,
            )

    # --- Zoom's deauthorization notice ----------------------------------------------------

    async def notice(self, body: bytes, timestamp: str, signature: str) -> dict[str, Any]:
        """A webhook from Zoom on /oauth/deauthorize: either the endpoint's URL validation, or
        app_deauthorized: the user's grants of that app are revoked at once and their refresh
        tokens deleted. Unverifiable or stale notices are refused.

        Verification and revocation are bound together, grant by grant: a notice is checked
        against each grant's own app Secret (its webhookSecretToken), and it can revoke only
        the grants whose own Secret verified it. Whoever creates a grant chooses its app
        Secret, and with it the client id it claims; so a notice signed with one tenant's
        token never touches another tenant's grants, whatever client id it names."""
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > NOTICE_MAX_AGE:
            raise GrantProblem("NoticeRefused", "missing or stale timestamp", status=401)
        if not re.fullmatch(r"v0=[0-9a-f]{64}", signature):
            raise GrantProblem("NoticeRefused", "no signature", status=401)
        message = f"v0:{timestamp}:".encode() + body
        verified: list[tuple[Key, GrantEntry, dict[str, str]]] = []
        for key, entry in list(self.entries.items()):
            data = await self._app_secret(key, entry)
            token = data.get("webhookSecretToken", "")
            expected = "v0=" + hmac.new(token.encode(), message, hashlib.sha256).hexdigest()
            if token and hmac.compare_digest(expected, signature):
                verified.append((key, entry, data))
        if not verified:
            raise GrantProblem("NoticeRefused", "the signature matches no app", status=401)
        try:
            event = json.loads(body)
        except ValueError:
            raise GrantProblem("NoticeRefused", "not JSON") from None
        payload = event.get("payload") or {}
        if event.get("event") == "endpoint.url_validation":
            plain = str(payload.get("plainToken", ""))
            token = verified[0][2]["webhookSecretToken"]
            encrypted = hmac.new(token.encode(), plain.encode(), hashlib.sha256).hexdigest()
            return {"plainToken": plain, "encryptedToken": encrypted}
        if event.get("event") != "app_deauthorized":
            return {}
        client_id, user = str(payload.get("client_id", "")), str(payload.get("user_id", ""))
        for key, entry, data in verified:
            if data.get("clientId") != client_id or entry.grant.status.user_id != user:
                continue
            await self._revoke(key, entry)
        return {}

    async def _revoke(self, key: Key, entry: GrantEntry) -> None:
        """Zoom's notice: forget the user's tokens (Zoom asks apps to delete their data)."""
        async with entry.lock:
            entry.access = None
            stored = await self._secret(key, entry)
            stored.pop(REFRESH_TOKEN, None)
            await self._write_secret(key, entry, stored)
            await self._set(
                key,
                entry,
                GrantState(
                    False,
                    REVOKED,
                    "the user removed the app in Zoom (Zoom's deauthorization notice); the "
                    "user must authorize again at the authorizationUrl",
                ),
            )
        log.info("grant revoked by Zoom's notice", extra={"grant": f"{key[0]}/{key[1]}"})

    async def _app_secret(self, key: Key, entry: GrantEntry) -> dict[str, str]:
        """The app Secret's data if it may be used (the opt-in label); {} otherwise. Kept a
        minute: notices from anyone on the network must not each cost API reads."""
        if entry.app_data is not None and entry.app_data[0] > time.monotonic():
            return entry.app_data[1]
        try:
            data = await self._read_app_secret(key, entry)
        except (SecretNotAllowed, ApiError, InvalidName):
            data = {}  # this grant's app cannot verify anything; the others still can
        entry.app_data = (time.monotonic() + APP_SECRET_SECONDS, data)
        return data

    async def _read_app_secret(self, key: Key, entry: GrantEntry) -> dict[str, str]:
        """The app Secret's data; SecretNotAllowed if it is missing or not opted in."""
        name = entry.grant.spec.app_credentials_secret_ref.name
        secret = await self.kube.read_secret(key[0], name)
        if secret is None:
            raise SecretNotAllowed(f"Secret {name!r} not found")
        return usable(secret, name, SecretUse.ZOOM_CREDENTIALS)

    # --- tokens ---------------------------------------------------------------------------

    async def access_token(self, namespace: str, name: str) -> SecretStr:
        """A user access token for the grant, refreshed when due (one refresh at a time)."""
        key = (namespace, name)
        entry = self._entry(key)
        access = entry.access
        if access is not None and access.expires_at > time.monotonic():
            return access.value
        async with entry.lock:
            access = entry.access
            if access is None or access.expires_at <= time.monotonic():
                access = await self._refresh(key, entry)
            return access.value

    def token_refused(self, namespace: str, name: str, token: SecretStr) -> None:
        """Zoom said the access token is invalid (124): the next use refreshes."""
        entry = self.entries.get((namespace, name))
        if entry is not None and entry.access is not None and entry.access.value == token:
            entry.access = None

    async def keep_fresh(self) -> None:
        """Rotate every Ready grant not refreshed for grant_refresh_seconds: a refresh token
        left unused lapses (Zoom: about 90 days), and a revocation shows in the status."""
        horizon = datetime.now(UTC) - timedelta(seconds=self.settings.grant_refresh_seconds)
        for key, entry in list(self.entries.items()):
            last = entry.grant.status.last_refresh_time or entry.grant.status.authorized_time
            if not entry.state.ready or (last is not None and last > horizon):
                continue
            try:
                async with entry.lock:
                    await self._refresh(key, entry)
            except GrantProblem:
                continue  # already in the status
            except Exception as error:  # isolation: one grant's failure stays with it
                log.warning(
                    "grant refresh failed; trying it again at the next sweep",
                    extra={"grant": "/".join(key), "error": type(error).__name__},
                )

    async def _refresh(self, key: Key, entry: GrantEntry) -> AccessToken:
        """Rotate the refresh token; the caller holds the grant's lock."""
        if not entry.state.ready and entry.state.reason in (REVOKED, INTERRUPTED, AWAITING):
            raise GrantProblem(entry.state.reason, entry.state.message)
        token_url, app = await self._app(key, entry)
        data = await self._secret(key, entry)
        stored = data.get(REFRESH_TOKEN)
        if not stored:
            await self._set(key, entry, GrantState(False, AWAITING, "not authorized yet"))
            raise GrantProblem(AWAITING, "not authorized yet")
        interrupted = bool(data.get(REFRESHING))
        # The mark first: if we die after Zoom rotates the token, the next run knows why the
        # stored token no longer works.
        data[REFRESHING] = datetime.now(UTC).isoformat(timespec="seconds")
        await self._write_secret(key, entry, data)
        try:
            tokens = await user_oauth.refresh(
                self._http(key, entry), token_url, app, SecretStr(stored)
            )
        except UserOAuthError as error:
            if error.revoked:
                state = (
                    GrantState(
                        False,
                        INTERRUPTED,
                        "a refresh was cut off after Zoom rotated the refresh token (the "
                        "operator stopped before it could store the new one); the user must "
                        "authorize again at the authorizationUrl",
                    )
                    if interrupted
                    else GrantState(
                        False,
                        REVOKED,
                        f"{error.message}: the user removed the app or the grant expired; the "
                        "user must authorize again at the authorizationUrl",
                    )
                )
                await self._set(key, entry, state)
                raise GrantProblem(state.reason, state.message) from None
            # Not sent, or no answer: the stored token may or may not be spent. The mark stays.
            raise GrantProblem(NOT_USABLE, f"refresh failed: {error.message}") from None
        data.pop(REFRESHING, None)
        data[REFRESH_TOKEN] = tokens.refresh.get_secret_value()
        await self._write_secret(key, entry, data)  # before the access token is used
        entry.access = tokens.access
        await self._authorized(key, entry, tokens.access, first=False)
        return tokens.access

    async def _authorized(
        self,
        key: Key,
        entry: GrantEntry,
        access: AccessToken,
        *,
        first: bool,
        request: str | None = None,
    ) -> None:
        """Who authorized (GET /users/me) and the Ready status."""
        client = self.accounts.client(key[0], entry.grant.spec.account_ref.name)
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
        await self._set(key, entry, GrantState(True, AUTHORIZED, f"authorized by {who}"))

    # --- helpers --------------------------------------------------------------------------

    def _entry(self, key: Key) -> GrantEntry:
        entry = self.entries.get(key)
        if entry is None:
            raise GrantProblem("ZoomUserGrantNotFound", "no such ZoomUserGrant", status=404)
        return entry

    async def _app(self, key: Key, entry: GrantEntry) -> tuple[str, AppCredentials]:
        """The token endpoint (the ZoomAccount's cloud) and the app's credentials."""
        spec = entry.grant.spec
        client = self.accounts.client(key[0], spec.account_ref.name)
        if client is None:
            problem = GrantState(
                False, NOT_USABLE, f"ZoomAccount {spec.account_ref.name!r} is not ready"
            )
            await self._set(key, entry, problem)
            raise GrantProblem(problem.reason, problem.message)
        name = spec.app_credentials_secret_ref.name
        try:
            data = await self._read_app_secret(key, entry)
            if not data.get("clientId") or not data.get("clientSecret"):
                raise SecretNotAllowed(f"Secret {name!r} lacks clientId or clientSecret")
        except (SecretNotAllowed, ApiError, InvalidName) as error:
            text = (
                f"the operator could not read Secret {name!r}: {error.message}"
                if isinstance(error, ApiError)
                else str(error)
            )
            problem = GrantState(False, NOT_USABLE, text)
            await self._set(key, entry, problem)
            raise GrantProblem(problem.reason, problem.message) from None
        app = AppCredentials(data["clientId"], SecretStr(data["clientSecret"]))
        return client.endpoints.oauth_url, app

    def _http(self, key: Key, entry: GrantEntry) -> Any:
        client = self.accounts.client(key[0], entry.grant.spec.account_ref.name)
        assert client is not None  # checked by _app
        return client.http

    async def _secret(self, key: Key, entry: GrantEntry) -> dict[str, str]:
        """The grant's Secret data ({} if it does not exist); NameTaken if not ours."""
        return await self.kube.read_owned_secret(key[0], secret_name(key[1]), entry.uid) or {}

    async def _write_secret(self, key: Key, entry: GrantEntry, data: dict[str, str]) -> None:
        await self.kube.upsert_secret(grant_secret(key[0], key[1], entry.uid, data))

    async def _set(self, key: Key, entry: GrantEntry, state: GrantState) -> None:
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
