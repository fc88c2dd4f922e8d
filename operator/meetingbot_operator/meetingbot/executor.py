"""Carries decisions out: starts attempts (the join Secret and the bot Pod), deletes what a
decision says to, and passes the identity actions on (identities/, zoomaccount/). Reports
what a start did as an `AttemptResult`, which the next pass reads: whether to retry, wait or
move to another user is the decisions'.

Starting spends nothing that could be wasted: before a start that calls Zoom, the pod is
admitted by the API server in a dry run, so a pod it refuses (an invalid field, a quota, a
policy) never costs a Zoom call (a start that reuses a ZAK calls nothing and skips it); a
name held by someone else is reported (NameConflict), never overwritten.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from meetingbot_api import BotAuth, MeetingBot, meeting_number
from meetingbot_contract import (
    AuthMode,
    BotIdentity,
    CaptureConfig,
    JoinConfig,
    MeetingInfo,
    ReportTarget,
    StreamConfig,
)
from meetingbot_contract.logs import redact
from meetingbot_contract.reasons import Reason
from meetingbot_operator import metrics
from meetingbot_operator.artifacts.service import ArtifactProblem, ArtifactService
from meetingbot_operator.identities.claims import ZOOM_USER_ANNOTATION
from meetingbot_operator.identities.pool import USER_LEVEL
from meetingbot_operator.identities.service import Identities
from meetingbot_operator.keys import ReportTokens
from meetingbot_operator.kube.client import ApiError, InvalidName
from meetingbot_operator.kube.secrets import (
    SecretMissing,
    SecretNotAllowed,
    SecretUnreadable,
    SecretUse,
    read_opted_in,
)
from meetingbot_operator.kube.verbs import Kube, NameTaken, controlled_by
from meetingbot_operator.meetingbot import children
from meetingbot_operator.meetingbot.decisions import Action, ActionKind
from meetingbot_operator.meetingbot.observed import (
    AttemptRefused,
    AttemptResult,
    AttemptStarted,
    Meta,
    PodFound,
)
from meetingbot_operator.meetingbot.reports import report_path, uploads_path
from meetingbot_operator.settings import Settings
from meetingbot_operator.webhooks.envelope import BadSigningSecret, signing_key
from meetingbot_operator.webhooks.stream_token import stream_allowed, stream_token
from meetingbot_operator.zoom import Zak, ZoomError, sdk_signature
from meetingbot_operator.zoomaccount.service import AccountService
from meetingbot_operator.zoomaccount.state import ReadyAccount
from meetingbot_operator.zoomusergrant.service import GrantService
from meetingbot_operator.zoomusergrant.state import GrantProblem

log = logging.getLogger(__name__)

# What a passcode may not hold (as models.PASSCODE says for the spec's own).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class AttemptExecutor:
    def __init__(
        self,
        kube: Kube,
        accounts: AccountService,
        identities: Identities,
        grants: GrantService,
        settings: Settings,
        tokens: ReportTokens,
        artifacts: ArtifactService,
    ) -> None:
        self.kube = kube
        self.artifacts = artifacts
        self.accounts = accounts
        self.identities = identities
        self.grants = grants
        self.settings = settings
        self.tokens = tokens

    async def start(
        self, bot: MeetingBot, meta: Meta, action: Action
    ) -> tuple[AttemptResult | PodFound, bool]:
        """Write attempt `action.attempt`'s Secret and Pod; (the result, whether the pod was
        created now). PodFound: nothing written, the attempt's pod is there for another user
        (`_started_before`), for the next pass to decide with."""
        now = datetime.now(UTC)
        pod = children.bot_pod(meta, action.attempt, bot.spec, self.settings, action.user)
        secret = children.secret_name(meta.name)
        try:
            entry = self._account(bot, meta)
            self._check_image(entry, pod)
            for name, key in children.env_secrets(bot.spec):
                # The kubelet would hand it over whoever named it: only with its owner's label.
                await self._secret_value(meta.namespace, name, key, SecretUse.BOT_ENV)
            if bot.spec.artifacts is not None:
                # Where the files go is usable before a bot is started to make them.
                await self.artifacts.check(meta.namespace, bot.spec.artifacts)
            # The dry run guards a Zoom call; a start that reuses a ZAK spends none, and in a
            # burst that request was a quarter of what each bot cost the API server.
            pod_exists = (
                False
                if self._spends_nothing(entry, bot, action)
                else not await self.kube.create_pod(pod, dry_run=True)
            )
            if bot.status.reason == Reason.NAME_CONFLICT and await self.kube.secret_taken(
                meta.namespace, secret, meta.uid
            ):
                # Still held by someone else: say so again without minting a ZAK for nothing.
                raise NameTaken("Secret", meta.namespace, secret)
            config, zak_expires = await self._join_config(entry, bot, meta, action)
            found: dict[str, Any] | None = None

            async def started_before(existing: dict[str, Any]) -> bool:
                nonlocal found
                found = await self._started_before(bot, meta, action, existing, pod, config)
                return found is not None

            body = children.join_secret(meta, action.attempt, config)
            if not await self._write_join_secret(body, started_before) and found is not None:
                return PodFound(action.attempt, found), False
            created = False if pod_exists else await self.kube.create_pod(pod)
        except _UserRefused as problem:
            refused = AttemptRefused(
                action.attempt,
                now,
                problem.reason,
                str(problem),
                another_user=True,
                user=problem.user,
            )
            return refused, False
        except ZoomError as error:
            metrics.ZAK_MINTS.labels(error.reason.value).inc()
            return AttemptRefused(action.attempt, now, error.reason, error.message), False
        except (_StartProblem, ArtifactProblem) as problem:
            return AttemptRefused(action.attempt, now, problem.reason, str(problem)), False
        except NameTaken as taken:
            return AttemptRefused(action.attempt, now, Reason.NAME_CONFLICT, str(taken)), False
        except ApiError as error:
            reason, message = pod_refusal(error)
            return AttemptRefused(action.attempt, now, reason, message), False
        started = AttemptStarted(action.attempt, now, config.zoom_user, zak_expires, config.auth)
        return started, created

    async def _started_before(
        self,
        bot: MeetingBot,
        meta: Meta,
        action: Action,
        secret: dict[str, Any],
        pod: dict[str, Any],
        config: JoinConfig,
    ) -> dict[str, Any] | None:
        """The attempt's pod, if an earlier pass made it for another user than this start's
        (one of a leader that stopped before the status said so, which this process's pod
        watch has not listed yet): its Secret is this attempt's, the pod is there, alive and
        ours. Replacing the Secret would give the attempt a user its pod does not join as.
        Only where the decisions would adopt the pod (decisions.py, `started_pod`): a pool's
        pick, not an adopted start nor a `spec.user`."""
        annotations = secret["metadata"].get("annotations") or {}
        if action.adopted or bot.spec.user:
            return None
        if annotations.get(children.ATTEMPT_LABEL) != str(action.attempt):
            return None  # an older attempt's Secret: replaced
        existing = await self.kube.read_pod(meta.namespace, pod["metadata"]["name"])
        if existing is None or existing["metadata"].get("deletionTimestamp"):
            return None
        if not controlled_by(existing, meta.uid):
            return None  # someone else's: the pod's creation says NameConflict
        user = (existing["metadata"].get("annotations") or {}).get(ZOOM_USER_ANNOTATION)
        return existing if user and user != config.zoom_user else None

    async def _write_join_secret(
        self, body: dict[str, Any], keep: Callable[[dict[str, Any]], Awaitable[bool]]
    ) -> bool:
        """The join Secret (False: kept as it was, `keep` said so); a refusal is said as the
        Secret's, not as the pod's."""
        try:
            return await self.kube.upsert_secret(body, keep)
        except ApiError as error:
            if error.status >= 500:
                raise  # the pass is retried as a whole
            raise _StartProblem(
                Reason.POD_FAILED,
                f"the API server refused the join Secret {body['metadata']['name']!r}: "
                f"{error.message}",
            ) from None

    def _spends_nothing(self, entry: ReadyAccount, bot: MeetingBot, action: Action) -> bool:
        """Whether this start would make no Zoom call: a ZAK start whose user has a reusable
        ZAK now (a refused pod then wastes nothing, so it needs no dry run first)."""
        if (
            _auth_mode(bot, action) != AuthMode.ZAK
            or action.user is None
            or not entry.spec.zak.reuse
        ):
            return False
        margin = timedelta(seconds=entry.spec.zak.min_remaining_seconds)
        return self.identities.zaks.reusable(entry.key, action.user, margin) is not None

    def identity_action(self, meta: Meta, bot: MeetingBot, action: Action) -> None:
        """ProvisionUser, ForgetZak, MarkUserUnavailable: handed to their owners."""
        account = (meta.namespace, bot.spec.account_ref.name)
        if action.kind == ActionKind.PROVISION_USER:
            self.accounts.want_more_users(*account)
        elif action.kind == ActionKind.FORGET_ZAK and action.user:
            self.identities.zaks.forget(account, action.user, action.expires_at)
        elif action.kind == ActionKind.MARK_USER_UNAVAILABLE and action.user:
            self.identities.user_refused(
                account, action.user, action.reason, action.message, datetime.now(UTC)
            )
            log.warning(
                "service user unavailable",
                extra={"account": "/".join(account), "reason": action.reason},
            )

    async def delete_pod(self, meta: Meta, name: str) -> None:
        await self.kube.delete_pod(meta.namespace, name, meta.uid)

    async def delete_secret(self, meta: Meta) -> None:
        await self.kube.delete_owned_secret(
            meta.namespace, children.secret_name(meta.name), meta.uid
        )

    async def set_finalizers(self, meta: Meta, finalizers: list[str]) -> None:
        await self.kube.set_finalizers(
            "meetingbots", meta.namespace, meta.name, meta.uid, finalizers
        )

    async def delete_bot(self, meta: Meta) -> None:
        await self.kube.delete_custom("meetingbots", meta.namespace, meta.name)

    def _account(self, bot: MeetingBot, meta: Meta) -> ReadyAccount:
        entry = self.accounts.ready(meta.namespace, bot.spec.account_ref.name)
        if entry is None:
            # Decided while it was Ready; it changed since. The account's own events follow.
            raise _StartProblem(Reason.ZOOM_ACCOUNT_NOT_READY, "the ZoomAccount is not ready")
        return entry

    def _check_image(self, entry: ReadyAccount, pod: dict[str, Any]) -> None:
        """A ZoomAccount's tokens go only to the images it allows (default: the operator's)."""
        image = pod["spec"]["containers"][0]["image"]
        allowed = entry.spec.bot_images or [self.settings.bot_image]
        if not any(image == pattern or fnmatch.fnmatchcase(image, pattern) for pattern in allowed):
            raise _StartProblem(
                Reason.IMAGE_NOT_ALLOWED,
                f"image {image!r} may not receive this ZoomAccount's tokens; list it in the "
                "ZoomAccount's spec.botImages",
            )

    async def _join_config(
        self, entry: ReadyAccount, bot: MeetingBot, meta: Meta, action: Action
    ) -> tuple[JoinConfig, datetime | None]:
        spec = bot.spec
        number = meeting_number(spec.meeting)
        passcode = spec.meeting.passcode or ""
        if spec.meeting.passcode_secret_ref:
            ref = spec.meeting.passcode_secret_ref
            passcode = await self._secret_value(
                meta.namespace, ref.name, ref.key, SecretUse.MEETING_PASSCODE
            )
            if CONTROL_CHARACTERS.search(passcode):
                # The CRD refuses these in spec.meeting.passcode; a Secret's value is checked
                # here (never echoed: it is a passcode).
                raise _StartProblem(
                    Reason.SPEC_INVALID,
                    f"the passcode in Secret {ref.name!r} (key {ref.key!r}) holds control "
                    "characters (a newline, NUL, ...); Zoom's passcodes are printable text",
                )
        zak = obf = None
        zak_expires: datetime | None = None
        mode = _auth_mode(bot, action)
        if mode is None:
            # Decisions resolve auto before they start an attempt; never guess here.
            raise _StartProblem(Reason.SPEC_INVALID, "auth auto was not resolved")
        user = action.user if mode == AuthMode.ZAK else None
        if mode == AuthMode.ZAK:
            if user is None:
                raise _StartProblem(Reason.USER_NOT_IN_ACCOUNT, "the ZoomAccount lists no users")
            # The user is held from the decision on (its `hold`); the next pass lets it go
            # when the attempt is over or could not start.
            try:
                minted = await self._zak(entry, user)
            except ZoomError as error:
                if error.reason in USER_LEVEL and not spec.user:
                    # About the user, not the bot: said so, and the next pass moves on.
                    metrics.ZAK_MINTS.labels(error.reason.value).inc()
                    raise _UserRefused(error.reason, error.message, user) from None
                raise
            zak, zak_expires = minted.token, minted.expires_at
        elif mode == AuthMode.OBF:
            obf = await self._obf_token(entry, bot, meta, number)
        signature = sdk_signature(entry.sdk, number)
        report_token = self.tokens.token(meta.namespace, meta.name, meta.uid, action.attempt)
        stream = await self._stream(bot, meta, action)
        secrets = (zak, obf, signature, report_token, stream.token if stream else None)
        redact(*(s.get_secret_value() for s in secrets if s is not None))
        config = JoinConfig(
            bot=BotIdentity(
                namespace=meta.namespace, name=meta.name, uid=meta.uid, attempt=action.attempt
            ),
            meeting=MeetingInfo(number=number, passcode=SecretStr(passcode)),
            display_name=spec.display_name,
            auth=mode,
            sdk_key=entry.sdk.sdk_key,
            signature=signature,
            zak=zak,
            obf_token=obf,
            zoom_user=user,
            leave=spec.leave,
            report=ReportTarget(
                url=self.settings.report_url.rstrip("/") + report_path(meta.namespace, meta.name),
                token=report_token,
                interval_seconds=self.settings.report_interval_seconds,
            ),
            capture=self._capture(bot, meta),
            stream=stream,
        )
        return config, zak_expires

    async def _stream(self, bot: MeetingBot, meta: Meta, action: Action) -> StreamConfig | None:
        """spec.stream: the endpoint, if the operator allows it, and this attempt's token."""
        spec = bot.spec.stream
        if spec is None:
            return None
        if not stream_allowed(spec.url, self.settings.webhook_endpoints):
            raise _StartProblem(
                Reason.STREAM_ENDPOINT_NOT_ALLOWED,
                f"stream.url {spec.url.split('?')[0]!r} is not under an endpoint the operator "
                "allows (its setting MEETINGBOT_WEBHOOK_ENDPOINTS, the chart's "
                "operator.webhookEndpoints; http:// there covers ws://, https:// wss://)",
            )
        ref = spec.signing_secret_ref
        secret = await self._secret_value(
            meta.namespace, ref.name, ref.key, SecretUse.WEBHOOK_SIGNING
        )
        try:
            key = signing_key(secret)
        except BadSigningSecret as problem:
            raise _StartProblem(Reason.SPEC_INVALID, f"Secret {ref.name!r}: {problem}") from None
        leave = bot.spec.leave
        token = stream_token(
            key,
            url=spec.url,
            namespace=meta.namespace,
            name=meta.name,
            uid=meta.uid,
            attempt=action.attempt,
            now=datetime.now(UTC),
            lifetime=timedelta(seconds=leave.max_duration_seconds + bot.spec.start_timeout_seconds),
        )
        return StreamConfig(url=spec.url, token=token, audio=spec.audio, events=spec.events)

    def _capture(self, bot: MeetingBot, meta: Meta) -> CaptureConfig | None:
        capture = bot.spec.capture
        if capture is None:
            return None
        return CaptureConfig(
            audio=capture.audio,
            events=capture.events,
            segment_seconds=capture.segment_seconds,
            ask_permission=capture.ask_permission,
            on_denied=capture.on_denied,
            announcement=capture.announcement,
            uploads_url=self.settings.report_url.rstrip("/")
            + uploads_path(meta.namespace, meta.name),
        )

    async def _obf_token(
        self, entry: ReadyAccount, bot: MeetingBot, meta: Meta, number: str
    ) -> SecretStr:
        """An OBF token for this meeting, minted now with the authorizing user's token: from
        the ZoomUserGrant (kept fresh by the operator) or from a Secret someone pasted."""
        assert bot.spec.obf is not None
        grant = bot.spec.obf.grant_ref
        if grant is not None:
            if not self.grants.allows(meta.namespace, grant.name, dict(meta.labels)):
                raise _StartProblem(
                    Reason.GRANT_NOT_FOR_BOT,
                    f"ZoomUserGrant {grant.name!r} lets only MeetingBots matching its "
                    "botSelector join on its user's behalf; this one's labels do not match",
                )
            try:
                user_token = await self.grants.access_token(meta.namespace, grant.name)
            except GrantProblem as problem:
                raise _StartProblem(
                    Reason.GRANT_NOT_READY, f"ZoomUserGrant {grant.name!r}: {problem.message}"
                ) from None
        else:
            ref = bot.spec.obf.user_token_secret_ref
            assert ref is not None
            user_token = SecretStr(
                await self._secret_value(meta.namespace, ref.name, ref.key, SecretUse.OBF_TOKEN)
            )
        try:
            obf = await entry.client.mint_obf(user_token, "me", number)
        except ZoomError as error:
            if grant is not None and error.reason == Reason.ZOOM_CREDENTIALS_INVALID:
                # The user's access token was refused: the next attempt refreshes the grant.
                self.grants.token_refused(meta.namespace, grant.name, user_token)
                raise _StartProblem(
                    Reason.GRANT_NOT_READY,
                    f"ZoomUserGrant {grant.name!r}: Zoom refused the user's access token; the "
                    "grant is refreshed for the next attempt",
                ) from None
            raise
        metrics.ZAK_MINTS.labels("ok").inc()
        return obf

    async def _zak(self, entry: ReadyAccount, user: str) -> Zak:
        """A ZAK for `user`: with reuse on, the shared one while it has more than
        minRemainingSeconds to live (identities/zaks.py); off, one minted for this attempt."""
        settings = entry.spec.zak

        async def mint() -> Zak:
            return await entry.client.mint_zak(user, settings.ttl_seconds)

        if not settings.reuse:
            minted = await mint()
            metrics.ZAK_MINTS.labels("ok").inc()
            return minted
        margin = timedelta(seconds=settings.min_remaining_seconds)
        zak, reused = await self.identities.zaks.shared(entry.key, user, margin, mint)
        metrics.ZAK_MINTS.labels("reused" if reused else "ok").inc()
        return zak

    async def _secret_value(self, namespace: str, name: str, key: str, use: SecretUse) -> str:
        """One key of an opted-in Secret. Whether a key exists is said only of a Secret opted
        in for this use."""
        try:
            data = await read_opted_in(self.kube, namespace, name, use)
        except InvalidName as error:
            raise _StartProblem(Reason.SPEC_INVALID, f"Secret reference: {error}") from None
        except SecretUnreadable as refused:
            # Said as what it is: a refused read of this Secret, not a refused pod.
            raise _StartProblem(Reason.SECRET_UNREADABLE, str(refused)) from None
        except SecretMissing:
            data = {}
        except SecretNotAllowed as refused:
            raise _StartProblem(Reason.SECRET_NOT_ALLOWED, str(refused)) from None
        if key not in data:
            raise _StartProblem(
                Reason.SECRET_NOT_FOUND, f"Secret {name!r} with key {key!r} not found"
            )
        return data[key]


def _auth_mode(bot: MeetingBot, action: Action) -> AuthMode | None:
    """How this attempt authenticates: the decision's choice, else the spec's (None: auto,
    unresolved)."""
    if action.auth is not None:
        return action.auth
    return None if bot.spec.auth == BotAuth.AUTO else AuthMode(bot.spec.auth.value)


class _StartProblem(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _UserRefused(_StartProblem):
    """Zoom refused the service user, not the bot (USER_LEVEL): caught before its base."""

    def __init__(self, reason: Reason, message: str, user: str) -> None:
        super().__init__(reason, message)
        self.user = user


def pod_refusal(error: ApiError) -> tuple[Reason, str]:
    """Why the API server refused a bot pod, as a reason: a spec it will never accept fails
    the bot; a quota may free up, so it is retried with backoff. Anything else (5xx, a
    timeout) is raised: the pass is retried as a whole."""
    message = error.message
    refused = f"the API server refused the bot pod: {message}"
    if error.status in (400, 422):
        return Reason.POD_SPEC_INVALID, refused
    if error.status == 403 and "exceeded quota" in message:
        return Reason.POD_QUOTA_EXCEEDED, f"the bot pod does not fit the quota: {message}"
    if error.status == 403 and "no PriorityClass" in message:
        return Reason.POD_SPEC_INVALID, refused
    if error.status == 403 and "PodSecurity" in message:
        return Reason.POD_FORBIDDEN, f"the bot pod is forbidden by policy: {message}"
    if error.status == 403:
        # Usually RBAC (the operator's own grants): retried with backoff once fixed, never silent.
        return Reason.POD_FAILED, refused
    raise error
