"""The MeetingBot controller: one pass per input, observe -> decide -> act.

Every trigger (a MeetingBot or Pod watch event, a bot's report, a timer, the periodic sweep)
runs the same pass for that bot, serialized and coalesced by the work queue:

    cache (observed state) -> decide (pure) -> one status write -> events -> actions

Starting an attempt is an action like the others: the executor writes the Secret and the Pod
and returns what happened (started, or refused and why); that result goes into the cache and
the next pass reads it as an observation, so its status write carries it. Nothing here calls
back into the decisions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from meetingbot_api import (
    TERMINAL_PHASES,
    Artifacts,
    BotAuth,
    MeetingBot,
    MeetingBotStatus,
    Phase,
    first_error,
    meeting_number,
)
from meetingbot_contract import BotReport
from meetingbot_contract.reasons import Reason
from meetingbot_operator import metrics
from meetingbot_operator.artifacts.service import ArtifactProblem, ArtifactService
from meetingbot_operator.artifacts.store import StoreError
from meetingbot_operator.ha.shards import ShardSet
from meetingbot_operator.identities.service import Identities
from meetingbot_operator.keys import ReportTokens
from meetingbot_operator.kube.objects import older
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.meetingbot import children
from meetingbot_operator.meetingbot.cache import (
    POD_TEMPLATE_ELIDED,
    BotCache,
    BotRecord,
    Key,
)
from meetingbot_operator.meetingbot.decisions import (
    ARTIFACTS_FINALIZER,
    ActionKind,
    Decision,
    Timing,
    decide,
    spec_invalid,
)
from meetingbot_operator.meetingbot.executor import AttemptExecutor
from meetingbot_operator.meetingbot.expected import ExpectedBots
from meetingbot_operator.meetingbot.observed import (
    AttemptRefused,
    AttemptStarted,
    Meta,
    Observed,
    PodFound,
)
from meetingbot_operator.meetingbot.reports import Receipt
from meetingbot_operator.meetingbot.workqueue import WorkQueue
from meetingbot_operator.settings import Settings
from meetingbot_operator.webhooks.service import WebhookService
from meetingbot_operator.zoomaccount.service import AccountService
from meetingbot_operator.zoomaccount.state import AccountState
from meetingbot_operator.zoomusergrant.service import GrantService
from meetingbot_operator.zoomusergrant.state import GrantState

log = logging.getLogger(__name__)

# (body, type, reason, message): posts a Kubernetes Event about the object
EventSink = Callable[[dict[str, Any], str, str, str], None]
# Attempts started at once (a burst of applies): bounds the Zoom and API work in flight.
CONCURRENT_STARTS = 64
# Deleting a bot's objects failed: tried again after this long, doubling up to 5 minutes.
DELETE_RETRY_SECONDS = 5.0
IDENTITY_ACTIONS = frozenset(
    {ActionKind.PROVISION_USER, ActionKind.FORGET_ZAK, ActionKind.MARK_USER_UNAVAILABLE}
)


class BotController:
    def __init__(
        self,
        kube: Kube,
        accounts: AccountService,
        identities: Identities,
        settings: Settings,
        grants: GrantService,
        tokens: ReportTokens,
        post_event: EventSink,
        artifacts: ArtifactService,
        webhooks: WebhookService,
        shards: ShardSet | None = None,
    ) -> None:
        """`shards`: what this process leads, and since when (ha/shards.py); a shard taken
        while the operator runs is newer than its start."""
        self.kube = kube
        self.artifacts = artifacts
        self.webhooks = webhooks
        self.accounts = accounts
        self.identities = identities
        self.grants = grants
        self.sweep_seconds = settings.sweep_seconds
        self.tokens = tokens
        self.post_event = post_event
        self.cache = BotCache()
        self.queue = WorkQueue(self.reconcile, settings.concurrent_reconciles, self.cache.unstarted)
        self.executor = AttemptExecutor(
            kube, accounts, identities, grants, settings, tokens, artifacts
        )
        self.started_at = datetime.now(UTC)
        self._shards = shards or ShardSet()
        # By shard, when a watch's list last brought an object of it not known before (a
        # relist of what is known adds no claim the pool lacks: only this replica writes its
        # shards' bots): a shard taken in place is listed without holding back the pools of
        # the shards led already.
        self.listed_at: dict[int, datetime] = {}
        self.timing = Timing(
            start_lead=timedelta(seconds=settings.start_lead_seconds),
            retry_base=settings.retry_base_seconds,
            retry_max=settings.retry_max_seconds,
            max_duration_grace=timedelta(seconds=settings.max_duration_grace_seconds),
            unresponsive_after=timedelta(
                seconds=settings.report_interval_seconds * settings.unresponsive_intervals
            ),
            image_pull_patience=timedelta(seconds=settings.image_pull_patience_seconds),
            liveness_silence=timedelta(
                seconds=max(
                    children.LIVENESS_WINDOW_SECONDS + settings.bot_grace_seconds,
                    2 * settings.report_interval_seconds,
                )
            ),
        )
        self._starts = asyncio.Semaphore(CONCURRENT_STARTS)
        self._expected = ExpectedBots()  # reports from them are answered "not yet"

    # --- inputs --------------------------------------------------------------------------------

    def expect(self, keys: set[Key], patience: float) -> None:
        """The bots listed at startup or when a shard is taken: reports from those not seen yet
        get 503 (expected.py)."""
        self._expected.expect({k for k in keys if self.cache.identity(*k) is None}, patience)

    def hold_unknown(self) -> None:
        """Reports from bots not seen yet get 503 until `expect` says which to wait for."""
        self._expected.hold()

    def warming(self) -> bool:
        return self._expected.waiting()

    def observe_bot(self, event_type: str | None, body: dict[str, Any]) -> None:
        """A MeetingBot's watch event (type None: an object of a watch's list)."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        record = self.cache.get(key)
        event_type = self._listed(event_type, key[0], new=record is None or record.body is None)
        self._expected.seen(key)
        if event_type == "DELETED":
            self.cache.observe_bot(event_type, body)
            self.queue.forget(key)
            self.identities.release(body["metadata"].get("uid", ""))
            self.artifacts.forget(key)
            self.webhooks.forget(key)
        else:
            self.identities.observe_bot(body)
            if self.cache.observe_bot(event_type, body):
                self.queue.trigger(key)

    def observe_pod(self, event_type: str | None, body: dict[str, Any]) -> None:
        """A bot pod's watch event (type None: an object of a watch's list)."""
        seen = self.cache.observe_pod(event_type or "ADDED", body)
        self._listed(event_type, body["metadata"]["namespace"], new=seen is not None)
        if seen is not None:
            key, owner, pod = seen
            self.identities.observe_pod(key[0], owner, pod)
            self.queue.trigger(key)

    def _listed(self, event_type: str | None, namespace: str, *, new: bool) -> str:
        """The event's type. An object of a watch's (re)list keeps the wait for the bots
        expected going, and one not known before (`new`: a bot not in the cache, a pod that
        changed what the cache holds) moves its shard's `listed_at` on: what the claims
        ledger knows is whole only once the lists are, and their end is not signalled (the
        watches send a list's objects as events of no type, then the watch's)."""
        if event_type is not None:
            return event_type
        if new:
            self.listed_at[self._shards.shard(namespace)] = datetime.now(UTC)
        self._expected.listing()
        return "ADDED"

    def observe_report(self, namespace: str, name: str, report: BotReport) -> Receipt:
        receipt, changed = self.cache.observe_report((namespace, name), report)
        if changed:
            self.queue.trigger((namespace, name))
        return receipt

    def identity(self, namespace: str, name: str) -> tuple[str, int] | None:
        return self.cache.identity(namespace, name)

    def artifacts_spec(self, key: Key) -> Artifacts | None:
        """A bot's spec.artifacts, as last seen (the upload endpoints read it)."""
        record = self.cache.get(key)
        spec = (record.body or {}).get("spec", {}).get("artifacts") if record else None
        if not spec:
            return None
        try:
            return Artifacts.model_validate(spec)
        except ValidationError:
            return None

    def sweep(self) -> int:
        """The safety net behind watch events (which are not retried): a pass for every bot
        that has had none for a sweep interval; how many."""
        return self.queue.sweep(self.cache.records, idle_for=self.sweep_seconds)

    def bots_of_account(self, namespace: str, account: str) -> list[Key]:
        return self.cache.bots_of_account(namespace, account)

    def bots_of_grant(self, namespace: str, grant: str) -> list[Key]:
        return self.cache.bots_of_grant(namespace, grant)

    async def stop(self) -> None:
        await self.queue.stop()

    # --- one pass --------------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> None:
        record = self.cache.get(key)
        if record is None or record.body is None:
            return
        meta = _meta(record.body)
        if record.body["metadata"].get("deletionTimestamp"):
            if ARTIFACTS_FINALIZER in meta.finalizers:
                await self._delete_artifacts(key, record, meta)
            return
        try:
            bot = MeetingBot.model_validate(record.body)
        except ValidationError as error:
            # The CRD should have refused it (an older CRD, or a rule it cannot state): say so
            # in the status once, rather than retrying something that cannot work.
            await self._spec_invalid(record, meta, error)
            return
        observed = self._observed(record, meta, bot)
        decision = decide(bot, meta, observed, self.timing)
        if not self._hold(bot, meta, decision, observed.account):
            return
        if log.isEnabledFor(logging.DEBUG):  # a hot path in bursts: build the record only if shown
            log.debug(
                "decided",
                extra={
                    "bot": f"{key[0]}/{key[1]}",
                    "phase": decision.status.phase,
                    "actions": [a.kind.value for a in decision.actions],
                    "requeue": decision.requeue_after,
                },
            )
        await self._act(key, record, bot, meta, decision)

    def _hold(
        self, bot: MeetingBot, meta: Meta, decision: Decision, account: AccountState | None
    ) -> bool:
        """The claims ledger takes the user the decision holds, before any await (the bots
        decided next in a burst see the load). False when a start's claim was refused (the
        user filled up since the pass read the loads): said as the start's refusal, which the
        next pass reads like any other."""
        key = (meta.namespace, bot.spec.account_ref.name)
        cap = account.max_per_user if account else None
        if self.identities.hold(key, meta.uid, decision.hold, cap):
            return True
        start = next(a for a in decision.actions if a.kind == ActionKind.START_ATTEMPT)
        record = self.cache.get((meta.namespace, meta.name))
        if record is not None:
            record.attempt_result = AttemptRefused(
                start.attempt,
                datetime.now(UTC),
                Reason.NO_SERVICE_USER_AVAILABLE,
                "the service user chosen became full or unavailable",
                another_user=True,
            )
            self.queue.trigger((meta.namespace, meta.name))
        return False

    def _grant(self, meta: Meta, bot: MeetingBot) -> GrantState | None:
        obf = bot.spec.obf
        if obf is None or obf.grant_ref is None:
            return None
        return self.grants.state(meta.namespace, obf.grant_ref.name)

    def _observed(self, record: BotRecord, meta: Meta, bot: MeetingBot) -> Observed:
        result = record.attempt_result
        # The attempt the pass reads about: the one just started, if a result is pending.
        attempt = result.attempt if isinstance(result, AttemptStarted) else bot.status.attempts
        report = record.report_for(attempt)
        return Observed(
            now=datetime.now(UTC),
            account=self.accounts.state(meta.namespace, bot.spec.account_ref.name),
            pod=record.pod(meta, attempt),
            started_pod=None if result else record.pod(meta, bot.status.attempts + 1),
            report=report,
            last_report_at=record.last_report_at if report else None,
            operator_started=max(
                filter(None, [self.started_at, self._shards.leading_since(meta.namespace)])
            ),
            known_since=record.known_since,
            listed_at=self.listed_at.get(self._shards.shard(meta.namespace)),
            secret_cleaned=record.secret_cleaned,
            grant=self._grant(meta, bot),
            meeting_owner=(
                self.accounts.meeting_owner(
                    meta.namespace, bot.spec.account_ref.name, meeting_number(bot.spec.meeting)
                )
                if bot.spec.auth == BotAuth.AUTO
                else None
            ),
            attempt_result=result,
            artifacts=self.artifacts.summary((meta.namespace, meta.name), bot.spec.artifacts),
            webhook=self.webhooks.progress((meta.namespace, meta.name), meta.uid),
        )

    async def _act(
        self, key: Key, record: BotRecord, bot: MeetingBot, meta: Meta, decision: Decision
    ) -> None:
        assert record.body is not None
        starting = any(a.kind == ActionKind.START_ATTEMPT for a in decision.actions)
        if not starting:
            # A pass that starts an attempt leaves its status to the next pass, which reads
            # the attempt's result: one status write per start.
            await self._carry(record, meta, bot.status, decision.status)
            record.attempt_result = None  # carried by the status just written
            for event in decision.events:
                self.post_event(record.body, event.type, event.reason, event.message[:1024])
                # The same words in the log (`kubectl logs` of the operator tells the story).
                log.log(
                    logging.WARNING if event.type == "Warning" else logging.INFO,
                    event.message,
                    extra={"bot": f"{key[0]}/{key[1]}", "reason": event.reason},
                )
            self._observe_metrics(record, bot, decision)
        for action in decision.actions:
            if action.kind == ActionKind.START_ATTEMPT:
                whole = await self._whole(record, bot, meta)
                if whole is None:
                    return  # deleted (or re-created) meanwhile: its watch event follows
                async with self._starts:
                    result, created = await self.executor.start(whole, meta, action)
                if isinstance(result, PodFound):
                    # The attempt was started before, as another user: the user this pass
                    # holds is let go and the pod observed (as its watch event will say), so
                    # the next pass keeps the pod's user (an adoption) with the ledger right.
                    log.info(
                        "the attempt's pod was made before for another user; deciding again",
                        extra={"bot": f"{key[0]}/{key[1]}", "attempt": result.attempt},
                    )
                    self.identities.release(meta.uid)
                    self.observe_pod("ADDED", result.body)
                    self.queue.trigger(key)
                    return
                record.attempt_result = result
                record.secret_cleaned = False
                if created:
                    self.cache.created_pod(key, meta, action.attempt)
                    if action.attempt == 1:
                        metrics.APPLY_TO_POD.observe(
                            (datetime.now(UTC) - _created(record.body)).total_seconds()
                        )
                self.queue.follow(key)  # the next pass, at once, reads the result
            elif action.kind == ActionKind.DELETE_POD:
                await self.executor.delete_pod(meta, action.pod_name)
            elif action.kind == ActionKind.DELETE_SECRET:
                await self.executor.delete_secret(meta)
                record.secret_cleaned = True
            elif action.kind == ActionKind.DELETE_BOT:
                await self.executor.delete_bot(meta)
            elif action.kind in IDENTITY_ACTIONS:
                self.executor.identity_action(meta, bot, action)
            elif action.kind == ActionKind.DELIVER_WEBHOOKS:
                # After the status write above (a start's pass writes none): only events the
                # cluster holds are sent.
                hook = decision.status.webhook
                if not starting and bot.spec.webhook is not None and hook is not None:
                    self.webhooks.offer(key, meta.uid, bot.spec.webhook, hook.pending)
            elif action.kind == ActionKind.ADD_FINALIZER:
                await self.executor.set_finalizers(meta, [*meta.finalizers, ARTIFACTS_FINALIZER])
            elif action.kind == ActionKind.LOOKUP_MEETING:
                await self.accounts.lookup_meeting(
                    meta.namespace, bot.spec.account_ref.name, meeting_number(bot.spec.meeting)
                )
                if self.accounts.meeting_owner(
                    meta.namespace, bot.spec.account_ref.name, meeting_number(bot.spec.meeting)
                ):
                    self.queue.trigger(key)  # the next pass reads what was found
        if decision.requeue_after is not None and not starting:
            self.queue.later(key, decision.requeue_after)

    async def _delete_artifacts(self, key: Key, record: BotRecord, meta: Meta) -> None:
        """A deleted bot whose spec asked for it: its objects go, then the finalizer does (its
        pods and Secret go with it, by their owner reference). A bucket that cannot be reached
        holds the deletion, said in an Event, and is tried again with backoff."""
        spec = self.artifacts_spec(key)
        try:
            if spec is not None:
                deleted = await self.artifacts.delete_all(key, spec)
                log.info("artifacts deleted", extra={"bot": "/".join(key), "objects": deleted})
        except (ArtifactProblem, StoreError) as problem:
            record.delete_failures += 1
            delay = min(DELETE_RETRY_SECONDS * 2 ** (record.delete_failures - 1), 300.0)
            log.warning(
                "the bot's objects could not be deleted; trying again",
                extra={"bot": "/".join(key), "error": str(problem), "retry_seconds": delay},
            )
            words = f"{problem}; retried in {delay:.0f} s"
            self.post_event(record.body or {}, "Warning", "ArtifactsNotDeleted", words[:1024])
            self.queue.later(key, delay)
            return
        kept = [f for f in meta.finalizers if f != ARTIFACTS_FINALIZER]
        await self.executor.set_finalizers(meta, kept)

    async def _whole(self, record: BotRecord, bot: MeetingBot, meta: Meta) -> MeetingBot | None:
        """The bot with its whole podTemplate: the cached one, unless the cache left a large
        template out (cache.slim), which is then read from the API server for this start."""
        if not (record.body or {}).get(POD_TEMPLATE_ELIDED):
            return bot
        body = await self.kube.read_meetingbot(meta.namespace, meta.name)
        if body is None or body["metadata"].get("uid") != meta.uid:
            return None
        template = MeetingBot.model_validate(body).spec.pod_template
        spec = bot.spec.model_copy(update={"pod_template": template})
        return bot.model_copy(update={"spec": spec})

    def _observe_metrics(self, record: BotRecord, bot: MeetingBot, decision: Decision) -> None:
        assert record.body is not None
        phase = decision.status.phase
        if phase == Phase.IN_MEETING and not record.in_meeting_seen:
            record.in_meeting_seen = True
            since = max(filter(None, [_created(record.body), bot.spec.join_at]))
            metrics.APPLY_TO_IN_MEETING.observe((datetime.now(UTC) - since).total_seconds())
        if phase in TERMINAL_PHASES and bot.status.phase not in TERMINAL_PHASES:
            metrics.FINISHED.labels(phase.value, decision.status.reason or "").inc()

    async def _carry(
        self, record: BotRecord, meta: Meta, old: MeetingBotStatus, new: MeetingBotStatus
    ) -> None:
        """The status decided from everything observed so far, written if it changed; how
        long the oldest report or pod change it carries waited for it is measured."""
        since, record.waiting_since = record.waiting_since, None
        try:
            wrote = await self._write_status(record, meta, old, new)
        except BaseException:
            if since is not None:  # not carried: still the oldest waiting
                record.waiting_since = since
            raise
        if wrote and since is not None:
            metrics.STATUS_LAG.observe(time.monotonic() - since)

    async def _write_status(
        self, record: BotRecord, meta: Meta, old: MeetingBotStatus, new: MeetingBotStatus
    ) -> bool:
        """Whether a status was written (none is when it would change nothing)."""
        document = new.model_dump(mode="json", by_alias=True)
        if document == old.model_dump(mode="json", by_alias=True) and not record.status_foreign:
            return False
        if record.status_foreign:
            log.warning(
                "MeetingBot status written by someone else; the operator's own is restored",
                extra={"bot": f"{meta.namespace}/{meta.name}"},
            )
        result = await self.kube.patch_status("meetingbots", meta.namespace, meta.name, document)
        if result is not None and record.body is not None and not older(result, record.body):
            self.cache.wrote_status(record, result)
        return result is not None  # None: the bot is gone

    async def _spec_invalid(self, record: BotRecord, meta: Meta, error: ValidationError) -> None:
        status = MeetingBotStatus.model_validate((record.body or {}).get("status") or {})
        if status.reason == "SpecInvalid":
            return
        message = f"the spec cannot be used: {first_error(error)}"
        log.warning("MeetingBot spec invalid", extra={"bot": f"{meta.namespace}/{meta.name}"})
        failed = spec_invalid(status, meta, message, datetime.now(UTC))
        await self._write_status(record, meta, status, failed)
        if record.body is not None:
            self.post_event(record.body, "Warning", "SpecInvalid", message)


def _meta(body: dict[str, Any]) -> Meta:
    m = body["metadata"]
    return Meta(
        name=m["name"],
        namespace=m["namespace"],
        uid=m["uid"],
        generation=int(m.get("generation", 1)),
        labels=tuple(sorted((m.get("labels") or {}).items())),
        finalizers=tuple(m.get("finalizers") or ()),
    )


def _created(body: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(body["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
