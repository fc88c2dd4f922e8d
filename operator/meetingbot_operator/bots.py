"""The MeetingBot service: gathers what is known about each bot, asks `reconcile.decide` what
to do, and does it (Zoom, the Secret, the Pod, the status, events).

Every trigger (a MeetingBot or Pod watch event, a bot's report, a timer, the periodic sweep)
ends in the same `reconcile(key)`, serialized per bot and coalesced: a burst of triggers for
one bot runs at most one reconcile now and one after it.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from meetingbot_operator.kube import Kube
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
    started,
)
from meetingbot_operator.reports import Outcome, ReportTokens, report_path
from meetingbot_operator.settings import Settings
from meetingbot_operator.zoom import ZoomError, sdk_signature

log = logging.getLogger(__name__)

Key = tuple[str, str]
# (body, type, reason, message): posts a Kubernetes Event about the object
EventSink = Callable[[dict[str, Any], str, str, str], None]


@dataclass
class BotMemory:
    body: dict[str, Any] | None = None
    pods: dict[int, PodObservation] = field(default_factory=dict)
    report: BotReport | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    dirty: bool = False
    task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    start_failures: int = 0
    in_meeting_seen: bool = False


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
        if memory.pods.get(observation.attempt) == observation:
            return  # nothing the decisions look at has changed (conditions, IPs, ...)
        memory.pods[observation.attempt] = observation
        self.trigger(key)

    def observe_report(self, namespace: str, name: str, report: BotReport) -> Outcome:
        memory = self.memory.get((namespace, name))
        if memory is None or memory.body is None:
            return "unknown"
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
            log.warning(
                "MeetingBot does not parse",
                extra={"bot": f"{key[0]}/{key[1]}", "error": str(error)},
            )
            return
        attempt = bot.status.attempts
        observed = Observed(
            now=datetime.now(UTC),
            account=self.accounts.state(meta.namespace, bot.spec.account_ref.name),
            pod=memory.pods.get(attempt),
            report=memory.report if memory.report and memory.report.attempt == attempt else None,
            operator_started=self.started_at,
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
                await self.kube.delete_pod(meta.namespace, action.pod_name)
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

    async def _start_attempt(
        self, memory: BotMemory, bot: MeetingBot, meta: Meta, action: Action
    ) -> Plan:
        now = datetime.now(UTC)
        try:
            config, zak_expires = await self._join_config(bot, meta, action)
        except ZoomError as error:
            metrics.ZAK_MINTS.labels(error.reason.value).inc()
            memory.start_failures += 1
            return after_start_failure(
                bot, meta, error.reason, error.message, memory.start_failures, now, self.timing
            )
        except _StartProblem as problem:
            memory.start_failures += 1
            return after_start_failure(
                bot, meta, problem.reason, str(problem), memory.start_failures, now, self.timing
            )
        memory.start_failures = 0
        status = started(bot, meta, action.attempt, config.zoom_user, zak_expires, now)
        # Intent first: if the operator stops before the pod exists, the next run sees a
        # Starting attempt without a pod and creates it again under the same name.
        await self._write_status(memory, meta, bot.status, status)
        await self.kube.upsert_secret(children.join_secret(meta, action.attempt, config))
        created = await self.kube.create_pod(
            children.bot_pod(meta, action.attempt, bot.spec, self.settings)
        )
        # The pod exists now; its watch event may lag behind under load. Until it arrives, this
        # stands for it, so a busy operator does not take the pod for lost.
        memory.pods.setdefault(
            action.attempt, PodObservation(pod_name(meta.name, action.attempt), action.attempt)
        )
        if created and action.attempt == 1 and memory.body is not None:
            metrics.APPLY_TO_POD.observe(
                (datetime.now(UTC) - _created(memory.body)).total_seconds()
            )
        updated = bot.model_copy(update={"status": status})
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
            passcode = await self._secret_value(
                meta.namespace,
                spec.meeting.passcode_secret_ref.name,
                spec.meeting.passcode_secret_ref.key,
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
            user_token = SecretStr(await self._secret_value(meta.namespace, ref.name, ref.key))
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
            ),
        )
        return config, zak_expires

    async def _secret_value(self, namespace: str, name: str, key: str) -> str:
        data = await self.kube.secret_data(namespace, name)
        if data is None or key not in data:
            raise _StartProblem(
                Reason.SECRET_NOT_FOUND, f"Secret {name!r} with key {key!r} not found"
            )
        return data[key]


class _StartProblem(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_pod(body: dict[str, Any], *, deleted: bool = False) -> PodObservation:
    meta, status = body["metadata"], body.get("status") or {}
    labels = meta.get("labels") or {}
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
