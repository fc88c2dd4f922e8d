"""Authorization: a person opens the grant's link, consents on Zoom's page, and comes back.

The status names a link on the operator (`/oauth/start/...?t=`, unguessable: links.py);
opening it redirects to Zoom's consent page with a signed state and a PKCE challenge, storing
nothing (each visit has its own state; a restart between the click and the callback loses
nothing). Zoom redirects back to `/oauth/callback`, which checks the state, exchanges the code
and stores the refresh token. A Ready grant is authorized again only when an editor of the
grant asks for it (the `meetingbot.dev/reauthorize` annotation, a new value each time):
whoever merely has the link cannot re-bind it to another user.
"""

from __future__ import annotations

import logging
import time

from meetingbot_operator.kube.client import ApiError
from meetingbot_operator.settings import Settings
from meetingbot_operator.zoom import user_oauth
from meetingbot_operator.zoom.credentials import AccessToken
from meetingbot_operator.zoom.errors import ZoomError
from meetingbot_operator.zoom.user_oauth import UserOAuthError
from meetingbot_operator.zoomusergrant.links import GrantLinks, StateRefused
from meetingbot_operator.zoomusergrant.state import (
    NOT_USABLE,
    PENDING_AT,
    PENDING_STATE,
    PENDING_VERIFIER,
    REAUTHORIZE,
    REFRESH_TOKEN,
    REFRESHING,
    UNKNOWN_LINK,
    GrantEntry,
    GrantProblem,
    GrantState,
    Key,
    secret_name,
)
from meetingbot_operator.zoomusergrant.store import GrantStore

log = logging.getLogger(__name__)


class Authorization:
    def __init__(self, store: GrantStore, links: GrantLinks, settings: Settings) -> None:
        self.store = store
        self.links = links
        self.settings = settings

    def redirect_uri(self) -> str:
        return self.settings.oauth_public_url.rstrip("/") + "/oauth/callback"

    async def start(self, namespace: str, name: str, token: str) -> str:
        """Zoom's consent page for the grant, if `token` is its link's (nothing is stored)."""
        key = (namespace, name)
        entry = self.store.entries.get(key)
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
        token_url, app = await self.store.app(key, entry)
        state, challenge = self.links.new_state(namespace, name, entry.uid, time.time())
        return user_oauth.authorize_url(token_url, app, self.redirect_uri(), state, challenge)

    async def callback(self, code: str, state: str) -> Key:
        """Zoom sent the person back: check the state, exchange the code, keep the grant."""
        key = self.links.grant_of(state)
        entry = self.store.entries.get(key)
        if entry is None:
            raise GrantProblem("LinkUnknown", UNKNOWN_LINK, status=404)
        try:
            redeemed = self.links.redeem(state, entry.uid, time.time())
        except StateRefused as refused:
            raise GrantProblem(
                "StateMismatch", f"{refused}; open the grant's authorizationUrl again"
            ) from None
        token_url, app = await self.store.app(key, entry)
        async with entry.lock:
            request = self._reauthorization(entry)
            if entry.state.ready and request is None:  # authorized by another visit meanwhile
                raise GrantProblem(
                    "AlreadyAuthorized", "this grant is already authorized", status=409
                )
            try:
                tokens = await user_oauth.exchange_code(
                    self.store.http(key, entry),
                    token_url,
                    app,
                    code,
                    self.redirect_uri(),
                    redeemed.verifier,
                )
            except UserOAuthError as error:
                raise GrantProblem(NOT_USABLE, f"Zoom refused the code: {error.message}") from None
            await self._check_user(key, entry, tokens.access)
            data = await self.store.secret(key, entry)
            for gone in (PENDING_STATE, PENDING_VERIFIER, PENDING_AT, REFRESHING):
                data.pop(gone, None)  # (states of releases that stored them)
            data[REFRESH_TOKEN] = tokens.refresh.get_secret_value()
            try:
                await self.store.write_secret(key, entry, data)
            except ApiError as error:
                # Said on the grant too, not only on the page (e.g. the operator's RBAC lacks
                # zoomusergrants/finalizers under OwnerReferencesPermissionEnforcement).
                problem = GrantState(
                    False,
                    NOT_USABLE,
                    f"the operator could not store the grant's Secret {secret_name(key[1])!r}: "
                    f"{error.message}",
                )
                await self.store.set_state(key, entry, problem)
                raise GrantProblem(problem.reason, problem.message, status=503) from None
            entry.access = tokens.access
            await self.store.authorized(key, entry, tokens.access, first=True, request=request)
        log.info("grant authorized", extra={"grant": f"{key[0]}/{key[1]}"})
        return key

    @staticmethod
    def _reauthorization(entry: GrantEntry) -> str | None:
        """The re-authorization an editor asked for and that is not used yet, if any."""
        annotations = entry.body["metadata"].get("annotations") or {}
        asked = str(annotations.get(REAUTHORIZE) or "")[:256]
        return asked if asked and asked != entry.grant.status.reauthorized_for else None

    async def _check_user(self, key: Key, entry: GrantEntry, access: AccessToken) -> None:
        """spec.email: only that user may authorize (checked before anything is stored)."""
        expected = entry.grant.spec.email
        if not expected:
            return
        client = self.store.client(key, entry)
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
