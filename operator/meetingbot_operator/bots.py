"""The MeetingBot service: gathers what is known about each bot, asks `reconcile.decide` what
to do, and does it (Zoom, the Secret, the Pod, the status, events).

Every trigger (a MeetingBot or Pod watch event, a bot's report, a timer, the periodic sweep)
ends in the same `reconcile(key)`, serialized per bot and coalesced: a burst of triggers for
one bot runs at most one reconcile now and one after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import SecretStr, ValidationError

from meetingbot_operator import children, metrics
from meetingbot_operator.accounts import AccountService
from meetingbot_operator.contract import (
    AuthMode,
    BotIdentity,
    BotReport,
    JoinConfig,
    MeetingInfo,
    ReportTarget,
)
from meetingbot_operator.kube import Kube, NameTaken, api_message
from meetingbot_operator.logs import redact
from meetingbot_operator.models import (
    TERMINAL_PHASES,
    MeetingBot,
    MeetingBotStatus,
    Phase,
    meeting_number,
)
from meetingbot_operator.reasons import Reason
from meetingbot_operator.reconcile import (
    Action,
    ActionKind,
    Event,
    Meta,
    Observed,
    Plan,
    PodObservation,
    Timing,
    after_start_failure,
    decide,
    pod_name,
    spec_invalid,
    started,
)
from meetingbot_operator.reports import Outcome, ReportTokens, report_path
from meetingbot_operator.secret_refs import SecretNotAllowed, SecretUse, usable
from meetingbot_operator.settings import Settings
from meetingbot_operator.zoom import ZoomError, sdk_signature

log = logging.getLogger(__name__)

Key = tuple[str, str]
# (body, type, reason, message): posts a Kubernetes Event about the object
EventSink = Callable[[dict[str, Any], str, str, str], None]


@dataclass
class BotMemory:
    body: dict[str, Any] | None = None
    # Pods seen with this bot's label, by attempt, with the uid of their controller: decisions
    # read only the one named for the attempt and controlled by this MeetingBot's uid.
    pods: dict[int, tuple[str | None, PodObservation]] = field(default_factory=dict)
    report: BotReport | None = None
    last_report_at: datetime | None = None
    secret_cleaned: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    dirty: bool = False
    task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    in_meeting_seen: bool = False

    def pod(self, meta: Meta, attempt: int) -> PodObservation | None:
        """The attempt's pod, if the one seen is really ours: its name is the attempt's and its
        controller is this MeetingBot (not a pod of an earlier MeetingBot of the same name,
        nor any pod that merely carries our labels)."""
        seen = self.pods.get(attempt)
        if seen is None:
            return None
        owner, observation = seen
        if owner != meta.uid or observation.name != pod_name(meta.name, attempt):
            return None
        return observation


class BotService:
    def __init__(
        self,
        kube: Kube,
        accounts: AccountService,
        settings: Settings,
        tokens: ReportTokens,
        post_event: EventSink,
    ) -> None:
        self.kube = kube
        self.accounts = accounts
        self.settings = settings
        self.tokens = tokens
        self.post_event = post_event
        self.memory: dict[Key, BotMemory] = {}
        self.started_at = datetime.now(UTC)
        self.timing = Timing(
            start_lead=timedelta(seconds=settings.start_lead_seconds),
            retry_base=settings.retry_base_seconds,
            retry_max=settings.retry_max_seconds,
            max_duration_grace=timedelta(seconds=settings.max_duration_grace_seconds),
            unresponsive_after=timedelta(
                seconds=settings.report_interval_seconds * settings.unresponsive_intervals
            ),
        )
        # Bounds the Zoom and API work of attempts started at once (a burst of applies).
        self._starts = asyncio.Semaphore(64)

    # --- observations -----------------------------------------------------------------------

    def observe_bot(self, event_type: str, body: dict[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if event_type == "DELETED":
            memory = self.memory.pop(key, None)
            if memory and memory.timer:
                memory.timer.cancel()
            return
        memory = self.memory.setdefault(key, BotMemory())
        current = memory.body
        if current is not None and body["metadata"].get("uid") != current["metadata"].get("uid"):
            self.memory[key] = memory = BotMemory()  # deleted and re-created with the same name
            current = None
        if current is not None and _same_version(body, current):
            return  # the echo of our own status patch: already known
        if not _older(body, current):
            memory.body = body
        self.trigger(key)

    def observe_pod(self, event_type: str, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        bot = (meta.get("labels") or {}).get(children.BOT_LABEL)
        attempt = (meta.get("labels") or {}).get(children.ATTEMPT_LABEL, "")
        if not bot or not attempt.isdigit():
            return
        key = (meta["namespace"], bot)
        deleted = event_type == "DELETED"
        if deleted and (key not in self.memory or self.memory[key].body is None):
            # The pod of a bot that is gone (or never seen): nothing to decide, nothing to keep.
            orphan = self.memory.get(key)
            if orphan is not None:
                orphan.pods.pop(int(attempt), None)
                if not orphan.pods:
                    del self.memory[key]
            return
        memory = self.memory.setdefault(key, BotMemory())
        observation = parse_pod(body, deleted=deleted)
        if observation.name != pod_name(bot, observation.attempt):
            return  # carries our labels, but is not named as any pod of ours would be
        seen = (controller_uid(body), observation)
        if memory.pods.get(observation.attempt) == seen:
            return  # nothing the decisions look at has changed (conditions, IPs, ...)
        memory.pods[observation.attempt] = seen
        self.trigger(key)

    def observe_report(self, namespace: str, name: str, report: BotReport) -> Outcome:
        memory = self.memory.get((namespace, name))
        if memory is None or memory.body is None:
            return "unknown"
        memory.last_report_at = datetime.now(UTC)
        if report == memory.report:
            return "accepted"  # a heartbeat: the liveness timer reads last_report_at
        memory.report = report
        self.trigger((namespace, name))
        return "accepted"

    def identity(self, namespace: str, name: str) -> tuple[str, int] | None:
        memory = self.memory.get((namespace, name))
        if memory is None or memory.body is None:
            return None
        status = memory.body.get("status") or {}
        return memory.body["metadata"]["uid"], int(status.get("attempts") or 0)

    def phases(self) -> Counter[str]:
        return Counter(
            ((m.body.get("status") or {}).get("phase") or "Pending")
            for m in self.memory.values()
            if m.body is not None
        )

    def bots_of_account(self, namespace: str, account: str) -> list[Key]:
        return [
            key
            for key, m in self.memory.items()
            if key[0] == namespace
            and m.body is not None
            and (m.body.get("spec") or {}).get("accountRef", {}).get("name") == account
        ]

    # --- scheduling ---------------------------------------------------------------------------

    def trigger(self, key: Key) -> None:
        memory = self.memory.get(key)
        if memory is None:
            return
        memory.dirty = True
        if memory.task is None or memory.task.done():
            memory.task = asyncio.create_task(self._run(key), name=f"reconcile {key[0]}/{key[1]}")

    def _schedule(self, key: Key, memory: BotMemory, delay: float) -> None:
        if memory.timer:
            memory.timer.cancel()
        loop = asyncio.get_running_loop()
        memory.timer = loop.call_later(max(delay, 0.05), self.trigger, key)

    async def _run(self, key: Key) -> None:
        memory = self.memory.get(key)
        while memory is not None and memory.dirty:
            memory.dirty = False
            try:
                await self.reconcile(key, memory)
            except Exception as error:
                if isinstance(error, ApiException) and "NamespaceTerminating" in str(error.body):
                    return  # the bot goes with its namespace
                # Never lost: the bot is retried by a timer, and by the sweep after that.
                log.exception("reconcile failed", extra={"bot": f"{key[0]}/{key[1]}"})
                self._schedule(key, memory, 10.0)
            memory = self.memory.get(key)

    def sweep(self) -> None:
        """The safety net behind watch events (which are not retried): touch every bot."""
        for key in list(self.memory):
            self.trigger(key)

    async def stop(self) -> None:
        tasks = [m.task for m in self.memory.values() if m.task and not m.task.done()]
        for memory in self.memory.values():
            if memory.timer:
                memory.timer.cancel()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- reconcile ----------------------------------------------------------------------------

    async def reconcile(self, key: Key, memory: BotMemory) -> None:
        body = memory.body
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        meta = _meta(body)
        try:
            bot = MeetingBot.model_validate(body)
        except ValidationError as error:
            # The CRD should have refused it (an older CRD, or a rule it cannot state): say so
            # in the status once, rather than retrying something that cannot work.
            await self._spec_invalid(memory, meta, error)
            return
        attempt = bot.status.attempts
        report = memory.report if memory.report and memory.report.attempt == attempt else None
        observed = Observed(
            now=datetime.now(UTC),
            account=self.accounts.state(meta.namespace, bot.spec.account_ref.name),
            pod=memory.pod(meta, attempt),
            report=report,
            last_report_at=memory.last_report_at if report else None,
            operator_started=self.started_at,
            secret_cleaned=memory.secret_cleaned,
        )
        plan = decide(bot, meta, observed, self.timing)
        if log.isEnabledFor(logging.DEBUG):  # a hot path in bursts: build the record only if shown
            log.debug(
                "decided",
                extra={
                    "bot": f"{key[0]}/{key[1]}",
                    "phase": plan.status.phase,
                    "actions": [a.kind.value for a in plan.actions],
                    "requeue": plan.requeue_after,
                },
            )
        start = next((a for a in plan.actions if a.kind == ActionKind.START_ATTEMPT), None)
        if start is not None:
            async with self._starts:
                plan = await self._start_attempt(memory, bot, meta, start)
        await self._carry_out(key, memory, bot, meta, plan)

    async def _carry_out(
        self, key: Key, memory: BotMemory, bot: MeetingBot, meta: Meta, plan: Plan
    ) -> None:
        assert memory.body is not None
        await self._write_status(memory, meta, bot.status, plan.status)
        for event in plan.events:
            self.post_event(memory.body, event.type, event.reason, event.message[:1024])
        for action in plan.actions:
            if action.kind == ActionKind.DELETE_POD:
                await self.kube.delete_pod(meta.namespace, action.pod_name, meta.uid)
            elif action.kind == ActionKind.DELETE_SECRET:
                await self.kube.delete_owned_secret(
                    meta.namespace, children.secret_name(meta.name), meta.uid
                )
                memory.secret_cleaned = True
            elif action.kind == ActionKind.DELETE_BOT:
                await self.kube.delete_custom("meetingbots", meta.namespace, meta.name)
        if plan.status.phase == Phase.IN_MEETING and not memory.in_meeting_seen:
            memory.in_meeting_seen = True
            since = max(filter(None, [_created(memory.body), bot.spec.join_at]))
            metrics.APPLY_TO_IN_MEETING.observe((datetime.now(UTC) - since).total_seconds())
        if plan.status.phase in TERMINAL_PHASES and bot.status.phase not in TERMINAL_PHASES:
            metrics.FINISHED.labels(plan.status.phase.value, plan.status.reason or "").inc()
        if plan.requeue_after is not None:
            self._schedule(key, memory, plan.requeue_after)

    async def _write_status(
        self, memory: BotMemory, meta: Meta, old: MeetingBotStatus, new: MeetingBotStatus
    ) -> None:
        document = new.model_dump(mode="json", by_alias=True)
        if document == old.model_dump(mode="json", by_alias=True):
            return
        result = await self.kube.patch_status("meetingbots", meta.namespace, meta.name, document)
        if result is not None and memory.body is not None and not _older(result, memory.body):
            memory.body = result

    async def _spec_invalid(self, memory: BotMemory, meta: Meta, error: ValidationError) -> None:
        status = MeetingBotStatus.model_validate((memory.body or {}).get("status") or {})
        if status.reason == Reason.SPEC_INVALID:
            return
        message = f"the spec cannot be used: {_first_error(error)}"
        log.warning("MeetingBot spec invalid", extra={"bot": f"{meta.namespace}/{meta.name}"})
        failed = spec_invalid(status, meta, message, datetime.now(UTC))
        await self._write_status(memory, meta, status, failed)
        if memory.body is not None:
            self.post_event(memory.body, "Warning", Reason.SPEC_INVALID, message)

    async def _start_attempt(
        self, memory: BotMemory, bot: MeetingBot, meta: Meta, action: Action
    ) -> Plan:
        """Secret and Pod for a new attempt, in an order that spends nothing that could be
        wasted: the pod is admitted (dry run) before any ZAK is minted, so a pod the API
        server refuses never costs a Zoom call, and a name held by someone else is reported,
        never overwritten."""
        now = datetime.now(UTC)
        pod = children.bot_pod(meta, action.attempt, bot.spec, self.settings)
        secret = children.secret_name(meta.name)
        try:
            self._check_image(bot, meta, pod)
            pod_exists = not await self.kube.create_pod(pod, dry_run=True)
            if bot.status.reason == Reason.NAME_CONFLICT and await self.kube.secret_taken(
                meta.namespace, secret, meta.uid
            ):
                # Still held by someone else: say so again without minting a ZAK for nothing.
                raise NameTaken("Secret", meta.namespace, secret)
            config, zak_expires = await self._join_config(bot, meta, action)
        except ZoomError as error:
            metrics.ZAK_MINTS.labels(error.reason.value).inc()
            return after_start_failure(bot, meta, error.reason, error.message, now, self.timing)
        except _StartProblem as problem:
            return after_start_failure(bot, meta, problem.reason, str(problem), now, self.timing)
        except NameTaken as taken:
            return after_start_failure(
                bot, meta, Reason.NAME_CONFLICT, str(taken), now, self.timing
            )
        except ApiException as error:
            reason, message = pod_refusal(error)
            return after_start_failure(bot, meta, reason, message, now, self.timing)
        status = started(bot, meta, action.attempt, config.zoom_user, zak_expires, now)
        # Intent first: if the operator stops before the pod exists, the next run sees a
        # Starting attempt without a pod and creates it again under the same name.
        await self._write_status(memory, meta, bot.status, status)
        updated = bot.model_copy(update={"status": status})
        try:
            await self.kube.upsert_secret(children.join_secret(meta, action.attempt, config))
            memory.secret_cleaned = False
            created = False if pod_exists else await self.kube.create_pod(pod)
        except NameTaken as taken:
            # Back to the status before this attempt: the attempt never ran.
            return after_start_failure(
                bot, meta, Reason.NAME_CONFLICT, str(taken), now, self.timing
            )
        except ApiException as error:
            if error.status not in (400, 403, 422):
                raise
            reason, message = pod_refusal(error)
            return after_start_failure(bot, meta, reason, message, now, self.timing)
        # The pod exists now; its watch event may lag behind under load. Until it arrives, this
        # stands for it, so a busy operator does not take the pod for lost.
        memory.pods.setdefault(
            action.attempt,
            (meta.uid, PodObservation(pod_name(meta.name, action.attempt), action.attempt)),
        )
        if created and action.attempt == 1 and memory.body is not None:
            metrics.APPLY_TO_POD.observe(
                (datetime.now(UTC) - _created(memory.body)).total_seconds()
            )
        plan = decide(
            updated,
            meta,
            Observed(
                now=now,
                account=self.accounts.state(meta.namespace, bot.spec.account_ref.name),
                operator_started=self.started_at,
            ),
            self.timing,
        )
        plan.events.insert(0, Event("Normal", Phase.STARTING.value, status.message or ""))
        return plan

    def _check_image(self, bot: MeetingBot, meta: Meta, pod: dict[str, Any]) -> None:
        """A ZoomAccount's ZAKs go only to the images it allows (default: the operator's)."""
        image = pod["spec"]["containers"][0]["image"]
        entry = self.accounts.get(meta.namespace, bot.spec.account_ref.name)
        allowed = (entry.spec.bot_images if entry else None) or [self.settings.bot_image]
        if not any(image == pattern or fnmatch.fnmatchcase(image, pattern) for pattern in allowed):
            raise _StartProblem(
                Reason.IMAGE_NOT_ALLOWED,
                f"image {image!r} may not receive this ZoomAccount's tokens; list it in the "
                "ZoomAccount's spec.botImages",
            )

    async def _join_config(
        self, bot: MeetingBot, meta: Meta, action: Action
    ) -> tuple[JoinConfig, datetime | None]:
        entry = self.accounts.get(meta.namespace, bot.spec.account_ref.name)
        if entry is None or entry.client is None or entry.sdk is None or not entry.state.ready:
            raise _StartProblem(Reason.ZOOM_ACCOUNT_NOT_READY, "the ZoomAccount is not ready")
        spec = bot.spec
        number = meeting_number(spec.meeting)
        passcode = spec.meeting.passcode or ""
        if spec.meeting.passcode_secret_ref:
            ref = spec.meeting.passcode_secret_ref
            passcode = await self._secret_value(
                meta.namespace, ref.name, ref.key, SecretUse.MEETING_PASSCODE
            )
        zak = obf = None
        zak_expires: datetime | None = None
        user = action.user if spec.auth == AuthMode.ZAK else None
        if spec.auth == AuthMode.ZAK:
            if user is None:
                raise _StartProblem(Reason.USER_NOT_IN_ACCOUNT, "the ZoomAccount lists no users")
            minted = await entry.client.mint_zak(user, entry.spec.zak.ttl_seconds)
            zak, zak_expires = minted.token, minted.expires_at
        elif spec.auth == AuthMode.OBF:
            assert spec.obf is not None
            ref = spec.obf.user_token_secret_ref
            user_token = SecretStr(
                await self._secret_value(meta.namespace, ref.name, ref.key, SecretUse.OBF_TOKEN)
            )
            obf = await entry.client.mint_obf(user_token, "me", number)
        metrics.ZAK_MINTS.labels("ok").inc()
        signature = sdk_signature(entry.sdk, number)
        report_token = self.tokens.token(meta.namespace, meta.name, meta.uid, action.attempt)
        redact(
            *(s.get_secret_value() for s in (zak, obf, signature, report_token) if s is not None)
        )
        config = JoinConfig(
            bot=BotIdentity(
                namespace=meta.namespace, name=meta.name, uid=meta.uid, attempt=action.attempt
            ),
            meeting=MeetingInfo(number=number, passcode=SecretStr(passcode)),
            display_name=spec.display_name,
            auth=spec.auth,
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
        )
        return config, zak_expires

    async def _secret_value(self, namespace: str, name: str, key: str, use: SecretUse) -> str:
        secret = await self.kube.read_secret(namespace, name)
        if secret is None or key not in secret.data:
            raise _StartProblem(
                Reason.SECRET_NOT_FOUND, f"Secret {name!r} with key {key!r} not found"
            )
        try:
            return usable(secret, name, use)[key]
        except SecretNotAllowed as refused:
            raise _StartProblem(Reason.SECRET_NOT_ALLOWED, str(refused)) from None


class _StartProblem(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def pod_refusal(error: ApiException) -> tuple[Reason, str]:
    """Why the API server refused a bot pod, as a reason: a spec it will never accept fails
    the bot; a quota may free up, so it is retried with backoff."""
    message = api_message(error)
    if error.status in (400, 422):
        return Reason.POD_SPEC_INVALID, f"the API server refused the bot pod: {message}"
    if error.status == 403 and "exceeded quota" in message:
        return Reason.POD_QUOTA_EXCEEDED, f"the bot pod does not fit the quota: {message}"
    if error.status == 403 and "no PriorityClass" in message:
        return Reason.POD_SPEC_INVALID, f"the API server refused the bot pod: {message}"
    if error.status == 403 and "PodSecurity" in message:
        return Reason.POD_FORBIDDEN, f"the bot pod is forbidden by policy: {message}"
    if error.status == 403:
        # Usually RBAC (the operator's own grants): retried with backoff once fixed, never silent.
        return Reason.POD_FAILED, f"the API server refused the bot pod: {message}"
    raise error


def controller_uid(body: dict[str, Any]) -> str | None:
    for owner in body["metadata"].get("ownerReferences") or []:
        if owner.get("controller"):
            return str(owner.get("uid"))
    return None


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def parse_pod(body: dict[str, Any], *, deleted: bool = False) -> PodObservation:
    meta, status = body["metadata"], body.get("status") or {}
    labels = meta.get("labels") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    disruption = conditions.get("DisruptionTarget") or {}
    scheduled = conditions.get("PodScheduled") or {}
    container = (
        next((c for c in status.get("containerStatuses") or [] if c.get("name") == "bot"), None)
        or {}
    )
    state = container.get("state") or {}
    terminated = state.get("terminated") or {}
    waiting = state.get("waiting") or {}
    return PodObservation(
        name=meta["name"],
        attempt=int(labels.get(children.ATTEMPT_LABEL, "0")),
        phase=status.get("phase") or "Pending",
        deleted=deleted,
        deleting=bool(meta.get("deletionTimestamp")),
        disruption=(
            f"{disruption.get('reason')}: {disruption.get('message') or ''}".strip(": ")
            if disruption.get("status") == "True"
            else None
        ),
        unschedulable=(
            scheduled.get("message") or "no node fits the pod"
            if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable"
            else None
        ),
        exit_code=terminated.get("exitCode"),
        terminated_reason=terminated.get("reason"),
        termination_message=terminated.get("message"),
        waiting_reason=waiting.get("reason"),
        waiting_message=waiting.get("message"),
        status_reason=status.get("reason"),
        status_message=status.get("message"),
    )


def _meta(body: dict[str, Any]) -> Meta:
    m = body["metadata"]
    return Meta(
        name=m["name"],
        namespace=m["namespace"],
        uid=m["uid"],
        generation=int(m.get("generation", 1)),
    )


def _created(body: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(body["metadata"]["creationTimestamp"].replace("Z", "+00:00"))


def _same_version(a: dict[str, Any], b: dict[str, Any]) -> bool:
    version = a["metadata"].get("resourceVersion")
    return bool(version) and version == b["metadata"].get("resourceVersion")


def _older(candidate: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """Whether `candidate` is an older version than `current` (a late watch event after our own
    patch). resourceVersions are opaque, but etcd's are integers; when they are not, trust
    arrival order."""
    if current is None:
        return False
    a = candidate["metadata"].get("resourceVersion", "")
    b = current["metadata"].get("resourceVersion", "")
    return a.isdigit() and b.isdigit() and int(a) < int(b)
