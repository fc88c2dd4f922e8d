"""Pure decisions for one MeetingBot: (spec, status, observed state, now) -> a Decision.

Nothing here does I/O. The controller gathers the observations (observed.py: the MeetingBot,
its account, the pod of the current attempt, the bot's latest report, and what the attempt
executor did last), calls `decide`, writes the status once and carries the actions out. The
result of an action is the next pass's observation, never a call back into this module.
Level-based: the same inputs give the same decision, so running it twice, or after a
restart, does no harm.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import ValidationError

from meetingbot_api import (
    RUNNING_PHASES,
    TERMINAL_PHASES,
    BotAuth,
    MeetingBot,
    MeetingBotStatus,
    Phase,
    StopRequest,
)
from meetingbot_contract import AuthMode, BotReport, BotResult, BotState
from meetingbot_contract.reasons import ACCOUNT_LEVEL, SUCCESS, Reason, is_transient
from meetingbot_operator.conditions import Progress, progress, set_condition
from meetingbot_operator.identities.claims import Hold
from meetingbot_operator.meetingbot.capture_status import capture_status
from meetingbot_operator.meetingbot.notifications import notify
from meetingbot_operator.meetingbot.observed import (
    AttemptRefused,
    AttemptStarted,
    Meta,
    Observed,
    PodObservation,
    pod_name,
)
from meetingbot_operator.zoomaccount.state import (
    NOT_READY_RECHECK_SECONDS,
    AccountState,
    MeetingOwner,
)

# A bot waiting for a service user looks again this often (and at once when the pool changes).
NO_USER_RECHECK_SECONDS = 2.0
# After the operator starts, and after the last object its watches listed, a capped pool gives
# no user out for this long (see _maybe_start).
POOL_SETTLE = timedelta(seconds=5)
IMAGE_PULL_FAILURES = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
CONFIG_FAILURES = frozenset({"CreateContainerConfigError", "CreateContainerError"})
SIGKILLED = 137  # 128 + SIGKILL: the runtime's kill after a grace period ran out
# A finished bot whose webhook events are pending looks again this often (delivery triggers a
# pass too): its ttlSecondsAfterFinished waits for them.
WEBHOOK_TTL_RECHECK_SECONDS = 60.0
# After the operator starts or takes the bot's shard, a bot's ZoomAccount or ZoomUserGrant not
# seen yet is waited for this long before its status says it is not found: the watches list
# them beside the bots (taking over a shard of 333 bots, 78 and 152 passes found no account
# that was there, before).
LIST_SETTLE = timedelta(seconds=10)
# A pod the operator meant to create but has not seen yet is created (again) after this long:
# long enough for the watch to deliver it after a restart, short enough to recover quickly.
MISSING_POD_PATIENCE = timedelta(seconds=10)

STATE_PHASES = {
    BotState.STARTING: Phase.STARTING,
    BotState.JOINING: Phase.JOINING,
    BotState.WAITING_ROOM: Phase.WAITING_ROOM,
    BotState.IN_MEETING: Phase.IN_MEETING,
    BotState.LEAVING: Phase.LEAVING,
}
OOM_OUTCOME = (
    Reason.OOM_KILLED,
    "the bot's container went over its memory limit (OOMKilled); raise "
    "spec.podTemplate.resources.limits.memory",
)
PHASE_MESSAGES = {
    Phase.SCHEDULED: "waiting for joinAt",
    Phase.STARTING: "bot pod starting",
    Phase.JOINING: "joining the meeting",
    Phase.WAITING_ROOM: "in the waiting room",
    Phase.IN_MEETING: "in the meeting",
    Phase.LEAVING: "leaving the meeting",
}

# The bot's phase as kstatus tells it (every other phase is on its way: Reconciling). A
# Scheduled bot is Current: nothing is in progress until its joinAt, so a GitOps sync that
# waits for health is not held for days.
PROGRESS = {
    Phase.SCHEDULED: Progress.CURRENT,
    Phase.IN_MEETING: Progress.CURRENT,
    Phase.SUCCEEDED: Progress.CURRENT,
    Phase.FAILED: Progress.STALLED,
}

# What a bot reports when it left because it got SIGTERM. Whether that is a success depends
# on who sent it: the operator (a StopRequest in status) or anyone else (a disruption).
SIGTERM_REASONS = frozenset({Reason.CANCELED})


@dataclass(frozen=True)
class Timing:
    start_lead: timedelta = timedelta(seconds=60)
    retry_base: float = 5.0
    retry_max: float = 300.0
    max_duration_grace: timedelta = timedelta(seconds=120)
    # A bot that has reported once and then stays silent this long is stopped (BotUnresponsive).
    unresponsive_after: timedelta = timedelta(seconds=120)
    # How long an image pull may fail before the bot fails (the kubelet retries in between).
    image_pull_patience: timedelta = timedelta(seconds=90)
    # A bot SIGKILLed (exit 137, not for memory) after at least this long without a report was
    # ended by its liveness probe: the probe failed for its whole window, then the bot, frozen,
    # let its SIGTERM grace run out. A bot that crashed had reported within one interval.
    liveness_silence: timedelta = timedelta(seconds=90)


class ActionKind(StrEnum):
    START_ATTEMPT = "StartAttempt"
    DELETE_POD = "DeletePod"
    DELETE_SECRET = "DeleteSecret"  # noqa: S105 - the join Secret, once no pod needs it
    DELETE_BOT = "DeleteBot"
    LOOKUP_MEETING = "LookupMeeting"  # auth: auto (GET /meetings/{id}); the result is observed
    # Zoom identities (the bot's own user is the decision's `hold`):
    PROVISION_USER = "ProvisionUser"  # every user is busy: the account may create one
    FORGET_ZAK = "ForgetZak"  # a join refused the shared ZAK: the next start mints anew
    MARK_USER_UNAVAILABLE = "MarkUserUnavailable"  # Zoom refused the user, not the bot
    # artifacts.deleteOnDelete: the finalizer that holds a deleted bot until its objects go.
    ADD_FINALIZER = "AddFinalizer"
    # spec.webhook: status.webhook.pending has events; the deliverer sends them in order.
    DELIVER_WEBHOOKS = "DeliverWebhooks"


ARTIFACTS_FINALIZER = "meetingbot.dev/artifacts"


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    attempt: int = 0
    pod_name: str = ""
    user: str | None = None
    auth: AuthMode | None = None  # the mode the attempt joins with (auth: auto resolved)
    reason: str = ""  # MarkUserUnavailable: Zoom's refusal
    message: str = ""
    expires_at: datetime | None = None  # ForgetZak: the refused ZAK's (a newer one stays)
    # StartAttempt: the attempt's pod is there already, made for `user` (Observed.started_pod);
    # the bot keeps that user whatever the cap, as a running attempt does.
    adopted: bool = False


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass
class Decision:
    status: MeetingBotStatus
    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    # The service user the bot holds after this pass (identities/claims.py), None: none.
    hold: Hold | None = None


def backoff(uid: str, attempt: int, timing: Timing) -> float:
    """Exponential with ±20 % jitter, deterministic per bot and attempt (pure, repeatable)."""
    base = min(timing.retry_base * 2.0 ** max(attempt - 1, 0), timing.retry_max)
    jitter: float = random.Random(f"{uid}/{attempt}").uniform(0.8, 1.2)  # noqa: S311
    return base * jitter


def pick_user(
    spec_user: str | None,
    users: tuple[str, ...],
    uid: str,
    loads: dict[str, int] | None = None,
    cap: int | None = None,
) -> str | None:
    """The spec's user, or the least-loaded of the usable users under the cap (None when all
    are at it). Ties go to the user the bot's uid points at, then the next ones in order, so
    that bots spread evenly and one bot keeps its choice while nothing changes."""
    if spec_user:
        return spec_user
    if not users:
        return None
    loads = loads or {}
    start = int(uid.replace("-", "")[:8] or "0", 16) % len(users)
    ordered = users[start:] + users[:start]
    open_users = [u for u in ordered if cap is None or loads.get(u, 0) < cap]
    if not open_users:
        return None
    return min(open_users, key=lambda u: loads.get(u, 0))  # min keeps the first of equals


def decide(bot: MeetingBot, meta: Meta, observed: Observed, timing: Timing) -> Decision:
    old = bot.status
    result = observed.attempt_result
    if result is not None and (old.phase or Phase.PENDING) not in TERMINAL_PHASES:
        if isinstance(result, AttemptRefused):
            return after_start_failure(
                bot,
                meta,
                result.reason,
                result.message,
                observed.now,
                timing,
                another_user=result.another_user,
                refused_user=result.user,
            )
        # Started: the attempt's status, then the same decisions as for any running attempt.
        bot = bot.model_copy(update={"status": started(bot, meta, result)})
    status = bot.status.model_copy()  # shallow: nothing nested is mutated, conditions replaced
    status.observed_generation = meta.generation
    phase = status.phase or Phase.PENDING
    decision = Decision(status=status)
    if bot.spec.auth == BotAuth.AUTO and observed.meeting_owner == MeetingOwner.UNKNOWN:
        _lookup_unavailable(bot, observed, decision)

    if phase in TERMINAL_PHASES:
        pod, report = observed.pod, observed.report
        leaving = report is not None and report.state == BotState.ENDED
        if pod is not None and not (pod.finished or pod.deleted or pod.deleting or leaving):
            # Finished, yet its pod runs and its bot has not said it left (a status written
            # by someone else, which a restarted operator cannot tell from its own): a bot is
            # never left in a meeting unsupervised.
            decision.actions.append(Action(ActionKind.DELETE_POD, pod_name=pod.name))
        if not observed.secret_cleaned:
            decision.actions.append(Action(ActionKind.DELETE_SECRET))
        _delete_after_ttl(bot, observed.now, decision)
    elif bot.status.attempts == 0 or bot.status.next_attempt_at is not None:
        if bot.spec.cancel:
            _succeed(
                status, Reason.CANCELED, "canceled (spec.cancel) before it started", observed.now
            )
        else:
            _maybe_start(bot, meta, observed, timing, decision)
    else:
        if bot.spec.cancel and status.stop is None:
            # Stopped like any stop the operator decides: the attempt ends with this reason.
            status.stop = StopRequest(
                attempt=status.attempts, reason=Reason.CANCELED, message="canceled (spec.cancel)"
            )
        _follow_attempt(bot, meta, observed, timing, decision)

    artifacts = bot.spec.artifacts
    if artifacts and artifacts.delete_on_delete and ARTIFACTS_FINALIZER not in meta.finalizers:
        decision.actions.append(Action(ActionKind.ADD_FINALIZER))
    _identities(bot, old, decision)
    _conditions_and_events(old, meta, observed.now, decision)
    capture_status(bot, observed, decision.status, meta.generation, observed.now)
    if notify(bot, old, decision.status, observed.webhook, observed.now):
        decision.actions.append(Action(ActionKind.DELIVER_WEBHOOKS))
        _hold_deletion(decision)
    return decision


def _hold_deletion(decision: Decision) -> None:
    """ttlSecondsAfterFinished waits for the webhook's outbox (which a day of failures
    empties): the last notifications are not deleted with the bot."""
    if any(a.kind == ActionKind.DELETE_BOT for a in decision.actions):
        decision.actions = [a for a in decision.actions if a.kind != ActionKind.DELETE_BOT]
        decision.requeue_after = _sooner(decision.requeue_after, WEBHOOK_TTL_RECHECK_SECONDS)


def _identities(bot: MeetingBot, old: MeetingBotStatus, decision: Decision) -> None:
    """The service user the bot holds after this pass, and what the ZAK cache must forget.
    A start holds its user from the decision on (capped unless spec.user pins it or its pod
    is there already); a running attempt holds the user it joined as; anything else holds
    none."""
    status = decision.status
    start = next((a for a in decision.actions if a.kind == ActionKind.START_ATTEMPT), None)
    if start is not None and start.user:
        decision.hold = Hold(start.user, capped=not (bot.spec.user or start.adopted))
    elif (status.phase or Phase.PENDING) in RUNNING_PHASES and status.zoom_user:
        decision.hold = Hold(status.zoom_user, capped=False)
    if status.reason == Reason.ZAK_INVALID and old.reason != status.reason and status.zoom_user:
        decision.actions.append(
            Action(ActionKind.FORGET_ZAK, user=status.zoom_user, expires_at=status.zak_expires_at)
        )


def _delete_after_ttl(bot: MeetingBot, now: datetime, decision: Decision) -> None:
    """ttlSecondsAfterFinished: delete the finished bot when it has passed, else look again then."""
    ttl = bot.spec.ttl_seconds_after_finished
    done = bot.status.completion_time
    if ttl is None or done is None:
        return
    due = done + timedelta(seconds=ttl)
    if now >= due:
        decision.actions.append(Action(ActionKind.DELETE_BOT))
    else:
        decision.requeue_after = (due - now).total_seconds()


def _maybe_start(
    bot: MeetingBot, meta: Meta, observed: Observed, timing: Timing, decision: Decision
) -> None:
    status, now = decision.status, observed.now
    join_at = bot.spec.join_at
    if join_at is not None and now < join_at - timing.start_lead:
        _set_phase(
            status, Phase.SCHEDULED, None, f"starts at {(join_at - timing.start_lead).isoformat()}"
        )
        decision.requeue_after = (join_at - timing.start_lead - now).total_seconds()
        return
    account = observed.account
    if account is None and _listing(
        observed, decision, f"ZoomAccount {bot.spec.account_ref.name!r}"
    ):
        return
    if account is None:
        _set_phase(
            status,
            Phase.PENDING,
            Reason.ZOOM_ACCOUNT_NOT_FOUND,
            f"ZoomAccount {bot.spec.account_ref.name!r} not found in this namespace",
        )
        decision.requeue_after = NOT_READY_RECHECK_SECONDS
        return
    if not account.ready:
        _set_phase(
            status, Phase.PENDING, account.reason, f"ZoomAccount not ready: {account.message}"
        )
        decision.requeue_after = NOT_READY_RECHECK_SECONDS
        return
    mode = _join_mode(bot, observed, decision)
    if mode is None:
        return
    if mode == AuthMode.OBF and not _grant_ready(bot, observed, decision):
        return
    user = None
    zak = mode == AuthMode.ZAK
    if zak and bot.spec.user and bot.spec.user not in (account.all_users or account.users):
        _fail(
            status,
            Reason.USER_NOT_IN_ACCOUNT,
            f"user {bot.spec.user!r} is not one of the account's users",
            now,
        )
        decision.events.append(Event("Warning", Reason.USER_NOT_IN_ACCOUNT, status.message or ""))
        return
    if status.next_attempt_at is not None and now < status.next_attempt_at:
        decision.requeue_after = (status.next_attempt_at - now).total_seconds()
        return
    started = observed.started_pod
    if started is not None and (started.deleted or started.deleting):
        started = None  # gone or going: it holds no seat, and the start picks as any other
    if zak and started is not None and started.zoom_user and not bot.spec.user:
        # Started before, its status never written: the pod joins as the user it was made for,
        # so the start is decided again with that user, not a new pick (which would rewrite
        # the join Secret for another user while the pod holds the first).
        decision.actions.append(
            Action(
                ActionKind.START_ATTEMPT,
                attempt=status.attempts + 1,
                user=started.zoom_user,
                auth=mode,
                adopted=True,
            )
        )
        return
    if zak and account.max_per_user and observed.operator_started is not None:
        # Just (re)started: the claims of running bots come from the watches' first lists;
        # a capped pool waits for them before it gives a user out, until POOL_SETTLE after
        # the start and after the last object listed (a loaded machine can take longer than
        # that to list at all: counting from the start alone let a start pick before its
        # namespace's running bots were seen).
        settled = (
            max(observed.operator_started, observed.listed_at or observed.operator_started)
            + POOL_SETTLE
        )
        if now < settled:
            decision.requeue_after = (settled - now).total_seconds()
            return
    if zak:
        user = pick_user(
            bot.spec.user, account.users, meta.uid, dict(account.loads), account.max_per_user
        )
        if user is None:
            # Waiting for a user: no attempt is consumed; a slot frees when a bot finishes.
            _set_phase(status, Phase.PENDING, Reason.NO_SERVICE_USER_AVAILABLE, _no_user(account))
            decision.requeue_after = NO_USER_RECHECK_SECONDS
            if account.can_provision:
                decision.actions.append(Action(ActionKind.PROVISION_USER))
            return
    decision.actions.append(
        Action(ActionKind.START_ATTEMPT, attempt=status.attempts + 1, user=user, auth=mode)
    )


# Zoom's policy, cited where auth: auto refuses an external meeting without a grant.
POLICY = (
    "since March 2026 Zoom lets Meeting SDK apps join meetings outside their own account only "
    "with a ZAK, an OBF token or RTMS, and says ZAK sign-in is not for bots joining external "
    "meetings while OBF is"
)
LOOKUP_RECHECK_SECONDS = 5.0


def _join_mode(bot: MeetingBot, observed: Observed, decision: Decision) -> AuthMode | None:
    """The mode an attempt joins with; for auth: auto, from the meeting's owner. None: not
    now (the lookup is asked for, or the bot failed)."""
    status, auth = decision.status, bot.spec.auth
    if auth != BotAuth.AUTO:
        return AuthMode(auth.value)
    owner = observed.meeting_owner
    if owner is None:
        _set_phase(status, Phase.PENDING, None, "looking the meeting up (auth: auto)")
        decision.actions.append(Action(ActionKind.LOOKUP_MEETING))
        decision.requeue_after = LOOKUP_RECHECK_SECONDS  # again if the lookup fails
        return None
    number = bot.spec.meeting.number or "the meeting"
    if owner == MeetingOwner.UNKNOWN:
        # Said in a condition (decide); the spec decides: a grant → obf, else zak.
        return AuthMode.OBF if bot.spec.obf else AuthMode.ZAK
    if owner == MeetingOwner.OWN:
        return AuthMode.ZAK
    if bot.spec.obf is not None:
        return AuthMode.OBF
    message = (
        f"meeting {number} is not one of this ZoomAccount's meetings, and no grant to join on "
        f"behalf of a participant was given (spec.obf.grantRef): {POLICY}"
    )
    _fail(status, Reason.OBF_REQUIRED, message, observed.now)
    decision.events.append(Event("Warning", Reason.OBF_REQUIRED, message))
    return None


def _lookup_unavailable(bot: MeetingBot, observed: Observed, decision: Decision) -> None:
    """auth: auto could not look the meeting up: a condition of its own, on every pass (a
    pass that starts an attempt writes no status), stable once written."""
    decision.status.conditions = set_condition(
        decision.status.conditions,
        "MeetingLookedUp",
        False,
        "MeetingLookupUnavailable",
        "the ZoomAccount's app lacks the scope meeting:read:meeting:admin (or "
        "meeting:read:admin), so auth auto could not look the meeting up; it joins with "
        + ("obf (a grant is given)" if bot.spec.obf else "zak"),
        generation=decision.status.observed_generation,
        now=observed.now,
    )


def _listing(observed: Observed, decision: Decision, what: str) -> bool:
    """Whether `what` the bot names may not be listed yet (LIST_SETTLE): then it is looked at
    again when it may be, its status unchanged (a new bot's says Pending, with no reason: a
    status with no phase would announce Pending to its webhook at every pass)."""
    started = observed.operator_started
    if started is None or observed.now - started >= LIST_SETTLE:
        return False
    if decision.status.phase is None:
        _set_phase(decision.status, Phase.PENDING, None, f"waiting for {what} to be listed")
    decision.requeue_after = (started + LIST_SETTLE - observed.now).total_seconds()
    return True


def _grant_ready(bot: MeetingBot, observed: Observed, decision: Decision) -> bool:
    """OBF with a ZoomUserGrant waits, consuming nothing, until the grant is Ready."""
    obf = bot.spec.obf
    if obf is None or obf.grant_ref is None:
        return True
    grant = observed.grant
    if grant is None and _listing(observed, decision, f"ZoomUserGrant {obf.grant_ref.name!r}"):
        return False
    if grant is None:
        _set_phase(
            decision.status,
            Phase.PENDING,
            Reason.GRANT_NOT_FOUND,
            f"ZoomUserGrant {obf.grant_ref.name!r} not found in this namespace",
        )
    elif not grant.ready:
        _set_phase(
            decision.status,
            Phase.PENDING,
            Reason.GRANT_NOT_READY,
            f"ZoomUserGrant {obf.grant_ref.name!r} is not Ready ({grant.reason}): {grant.message}",
        )
    else:
        return True
    decision.requeue_after = NOT_READY_RECHECK_SECONDS  # and at once when the grant changes
    return False


def _follow_attempt(
    bot: MeetingBot, meta: Meta, observed: Observed, timing: Timing, decision: Decision
) -> None:
    status, now = decision.status, observed.now
    attempt = status.attempts
    name = pod_name(meta.name, attempt)
    pod = observed.pod if observed.pod and observed.pod.attempt == attempt else None
    report = observed.report if observed.report and observed.report.attempt == attempt else None
    stop = status.stop if status.stop and status.stop.attempt == attempt else None

    if report and report.joined_at and not status.joined_at:
        status.joined_at = report.joined_at
    if report and report.left_at:
        status.left_at = report.left_at

    silent_for = now - observed.last_report_at if observed.last_report_at else None
    outcome = _outcome(status, pod, report, stop, now, timing, silent_for)
    if outcome is None and pod is None:
        patience_from = max(
            filter(None, [status.started_at, observed.operator_started]), default=now
        )
        if now - patience_from >= MISSING_POD_PATIENCE:
            if status.phase == Phase.STARTING and stop is None:
                # Meant to be created but never seen (the operator stopped in between): again.
                decision.actions.append(
                    Action(
                        ActionKind.START_ATTEMPT,
                        attempt=attempt,
                        user=status.zoom_user,
                        auth=status.auth,
                    )
                )
                return
            outcome = _stopped(stop) or (Reason.POD_DISRUPTED, f"pod {name} disappeared")
        else:
            decision.requeue_after = (patience_from + MISSING_POD_PATIENCE - now).total_seconds()
    if outcome is not None:
        _end_attempt(bot, meta, outcome, now, timing, decision)
        stuck = pod is not None and pod.waiting_reason in IMAGE_PULL_FAILURES | CONFIG_FAILURES
        if stuck:
            # A container that cannot start would sit there; a bot that reported Ended exits
            # by itself, and its pod stays for `kubectl logs`.
            decision.actions.append(Action(ActionKind.DELETE_POD, pod_name=name))
        return

    if stop is not None:
        # Stopping: the bot's own reports (Leaving/Canceled) do not replace why.
        _set_phase(status, Phase.LEAVING, stop.reason, stop.message)
        if pod is not None and not pod.deleting:
            decision.actions.append(Action(ActionKind.DELETE_POD, pod_name=name))  # again: lost
        return

    if report is not None:
        # Ended but not yet exited (a failure waits for the container's exit): Leaving.
        phase = STATE_PHASES.get(report.state, Phase.LEAVING)
        _set_phase(status, phase, report.reason, report.message or PHASE_MESSAGES[phase])
    elif status.phase in (None, Phase.PENDING, Phase.STARTING):
        # The message changes only for trouble, so routine pod updates write no status.
        trouble = _pod_trouble(pod)
        detail = f": {trouble[0]}: {trouble[1]}".rstrip(": ") if trouble else ""
        message = f"attempt {attempt}: pod {name}{detail}"
        if trouble and message != status.message:
            decision.events.append(Event("Warning", trouble[0], f"pod {name}: {trouble[1]}"))
        _set_phase(status, Phase.STARTING, None, message)

    # A bot on its way out still reports until it exits: one that hangs there is stopped too.
    _watch_liveness(bot, observed, pod, report, timing, decision, name)

    # Backstop for maxDuration: the bot enforces it itself; a bot that does not is stopped.
    anchor = status.joined_at or status.started_at
    if anchor is not None and decision.status.stop is None:
        deadline = (
            anchor
            + timedelta(seconds=bot.spec.leave.max_duration_seconds)
            + timing.max_duration_grace
        )
        if now >= deadline:
            _stop(decision, name, Reason.MAX_DURATION_REACHED, "maxDurationSeconds passed")
        else:
            decision.requeue_after = _sooner(
                decision.requeue_after, (deadline - now).total_seconds()
            )


def _watch_liveness(
    bot: MeetingBot,
    observed: Observed,
    pod: PodObservation | None,
    report: BotReport | None,
    timing: Timing,
    decision: Decision,
    name: str,
) -> None:
    """A bot must report within startTimeoutSeconds of its start, then keep reporting (its
    heartbeat); otherwise its pod is stopped and the attempt retried."""
    status, now = decision.status, observed.now
    if status.started_at is None:
        return
    reported = report is not None or status.phase not in (None, Phase.PENDING, Phase.STARTING)
    if not reported:
        deadline = status.started_at + timedelta(seconds=bot.spec.start_timeout_seconds)
        if now >= deadline:
            trouble = _pod_trouble(pod)
            why = f" ({trouble[0]}: {trouble[1]})".rstrip() if trouble else ""
            _stop(
                decision,
                name,
                Reason.START_TIMEOUT,
                f"no report from the bot within startTimeoutSeconds "
                f"({bot.spec.start_timeout_seconds}s){why}",
            )
        else:
            decision.requeue_after = _sooner(
                decision.requeue_after, (deadline - now).total_seconds()
            )
        return
    # Silence counts from the last report this process accepted, or from when it could first
    # accept one (it saw the MeetingBot): a leader that lists a loaded shard's bots for longer
    # than the allowance would otherwise stop bots that were reporting all along (503 "not
    # yet" while unseen).
    heard = max(
        filter(
            None,
            [
                observed.last_report_at,
                observed.known_since,
                observed.operator_started,
                status.started_at,
            ],
        )
    )
    deadline = heard + timing.unresponsive_after
    if now >= deadline:
        _stop(
            decision,
            name,
            Reason.BOT_UNRESPONSIVE,
            f"no report from the bot for {timing.unresponsive_after.total_seconds():.0f}s",
        )
    else:
        decision.requeue_after = _sooner(decision.requeue_after, (deadline - now).total_seconds())


def _stop(decision: Decision, name: str, reason: str, message: str) -> None:
    """Record why the operator stops this attempt, then stop it (status is written first)."""
    status = decision.status
    status.stop = StopRequest(attempt=status.attempts, reason=reason, message=message)
    _set_phase(status, Phase.LEAVING, reason, f"{message}; stopping the bot")
    decision.actions.append(Action(ActionKind.DELETE_POD, pod_name=name))


def _stopped(stop: StopRequest | None) -> tuple[str, str] | None:
    return (stop.reason, stop.message) if stop else None


def _pod_trouble(pod: PodObservation | None) -> tuple[str, str] | None:
    """Why a pod is not running yet, when that is worth telling: (reason, message)."""
    if pod is None:
        return None
    if pod.unschedulable:
        return "Unschedulable", pod.unschedulable
    if pod.waiting_reason not in (None, "ContainerCreating", "PodInitializing"):
        return pod.waiting_reason or "", pod.waiting_message or ""
    return None


def _outcome(
    status: MeetingBotStatus,
    pod: PodObservation | None,
    report: BotReport | None,
    stop: StopRequest | None,
    now: datetime,
    timing: Timing,
    silent_for: timedelta | None,
) -> tuple[str, str] | None:
    """Why the current attempt is over, or None while it goes on.

    Facts first: what the bot says is trusted only for what it can know. A bot that got
    SIGTERM cannot tell who sent it: the operator's own StopRequest says why, and without one
    the pod was stopped by someone else (eviction, drain, preemption, deletion), which is a
    disruption worth another attempt, never a success."""

    def credited(reason: str, message: str) -> tuple[str, str]:
        if reason in SIGTERM_REASONS or (reason == Reason.COMPLETED and stop is not None):
            return _stopped(stop) or (Reason.POD_DISRUPTED, _disruption(pod))
        return reason, message

    # The runtime's fact beats the bot's account of a failure: when the kernel killed the
    # browser for memory, the bot only saw its browser die.
    oom = pod is not None and pod.finished and pod.terminated_reason == "OOMKilled"
    if report is not None and report.state == BotState.ENDED:
        reason = report.reason or Reason.COMPLETED
        if reason not in SUCCESS and pod is not None:
            if not (pod.finished or pod.deleted or pod.deleting):
                # Wait for the container's exit, which follows the report at once, to learn
                # whether the runtime says more (a bot that hangs is stopped as silent).
                return None
            if oom:
                return OOM_OUTCOME
        return credited(reason, report.message or "the bot left")
    if pod is None:
        return None
    if pod.finished:
        result = _result(pod.termination_message, status.attempts)
        if result is not None and not (oom and result.reason not in SUCCESS):
            return credited(
                result.reason, result.message or f"bot exited with code {pod.exit_code}"
            )
        if stop is not None:
            return stop.reason, stop.message
        if oom:
            return OOM_OUTCOME
        if pod.status_reason == "Evicted" or pod.deleting or pod.disruption:
            return Reason.POD_DISRUPTED, _disruption(pod)
        if pod.exit_code == 0:
            return Reason.COMPLETED, "the bot exited without a result"
        if pod.exit_code == SIGKILLED and silent_for and silent_for >= timing.liveness_silence:
            return (
                Reason.BOT_UNRESPONSIVE,
                f"the bot stopped answering (no report for {silent_for.total_seconds():.0f}s) "
                "and the kubelet ended it after its liveness probe failed (exit 137)",
            )
        if pod.exit_code is None:
            return (
                Reason.POD_FAILED,
                f"pod {pod.phase}: {pod.status_reason or 'no container status'}",
            )
        return Reason.BOT_CRASHED, f"bot exited with code {pod.exit_code} without a result"
    if pod.deleted:
        return _stopped(stop) or (Reason.POD_DISRUPTED, _disruption(pod))
    if pod.waiting_reason in ("InvalidImageName", "ErrImageNeverPull") or (
        pod.waiting_reason in IMAGE_PULL_FAILURES
        and status.started_at is not None
        and now - status.started_at >= timing.image_pull_patience
    ):
        return (
            Reason.IMAGE_PULL_FAILED,
            f"{pod.waiting_reason}: {pod.waiting_message or ''}".strip(),
        )
    if pod.waiting_reason in CONFIG_FAILURES:
        return Reason.POD_FAILED, f"{pod.waiting_reason}: {pod.waiting_message or ''}".strip()
    return None


def _disruption(pod: PodObservation | None) -> str:
    what = "stopped by someone other than the operator"
    if pod is None:
        return f"the bot's pod was {what}"
    if pod.disruption:
        return f"pod {pod.name} {what} ({pod.disruption})"
    if pod.status_reason == "Evicted":
        return f"pod {pod.name} evicted by the kubelet: {pod.status_message or ''}".strip()
    return f"pod {pod.name} {what} (deleted)"


def _result(message: str | None, attempt: int) -> BotResult | None:
    if not message:
        return None
    try:
        result = BotResult.model_validate_json(message.strip().splitlines()[-1])
    except (ValidationError, IndexError):
        return None
    return result if result.attempt in (attempt, 0) else None


def _end_attempt(
    bot: MeetingBot,
    meta: Meta,
    outcome: tuple[str, str],
    now: datetime,
    timing: Timing,
    decision: Decision,
) -> None:
    """The attempt is over with `outcome` (reason, message): the bot succeeds, fails, or
    starts another attempt after its backoff."""
    reason, message = outcome
    status = decision.status
    attempt = status.attempts
    # The join Secret holds a live ZAK: nothing needs it once the attempt is over.
    decision.actions.append(Action(ActionKind.DELETE_SECRET))
    if reason in SUCCESS:
        _set_phase(status, Phase.SUCCEEDED, reason, message)
        status.completion_time = now
        status.left_at = status.left_at or now
        decision.events.append(Event("Normal", reason, message))
        _delete_after_ttl(bot, now, decision)
    elif is_transient(reason) and attempt <= bot.spec.retry.limit:
        delay = backoff(meta.uid, attempt, timing)
        status.next_attempt_at = now + timedelta(seconds=delay)
        _set_phase(
            status,
            Phase.PENDING,
            reason,
            f"attempt {attempt} failed: {message}; retrying in {delay:.0f}s",
        )
        decision.events.append(Event("Warning", reason, status.message or ""))
        decision.requeue_after = delay
    else:
        _fail(status, reason, message if attempt == 0 else f"attempt {attempt}: {message}", now)
        decision.events.append(Event("Warning", reason, status.message or ""))
        _delete_after_ttl(bot, now, decision)


def after_start_failure(
    bot: MeetingBot,
    meta: Meta,
    reason: str,
    message: str,
    now: datetime,
    timing: Timing,
    *,
    another_user: bool = False,
    refused_user: str | None = None,
) -> Decision:
    """The decision when an attempt could not start (minting failed, a Secret is missing, the API
    server refused the pod...). Nothing ran, so no attempt is consumed; the failure count and
    the next try are kept in status, so a restart keeps the backoff. `another_user`: the
    refusal was about the service user `refused_user` (made Unavailable here) or the user
    filled up meanwhile: the bot tries another user at once, with no backoff and nothing
    counted against it."""
    status = bot.status.model_copy()
    decision = Decision(status=status)
    if another_user:
        _set_phase(status, Phase.PENDING, reason, f"{message}; trying another service user")
        decision.requeue_after = 0.1
        if refused_user:
            decision.actions.append(
                Action(
                    ActionKind.MARK_USER_UNAVAILABLE,
                    user=refused_user,
                    reason=reason,
                    message=message,
                )
            )
    elif reason in ACCOUNT_LEVEL:
        # The account's own checks (and its change events) decide when to try again.
        _set_phase(status, Phase.PENDING, reason, f"{message}; waiting for the ZoomAccount")
        decision.requeue_after = NOT_READY_RECHECK_SECONDS
    elif is_transient(reason):
        status.start_failures += 1
        delay = backoff(meta.uid, status.start_failures, timing)
        status.next_attempt_at = now + timedelta(seconds=delay)
        _set_phase(status, Phase.PENDING, reason, f"{message}; trying again in {delay:.0f}s")
        decision.events.append(Event("Warning", reason, status.message or ""))
        decision.requeue_after = delay
    else:
        _fail(status, reason, message, now)
        decision.events.append(Event("Warning", reason, message))
        _delete_after_ttl(bot, now, decision)
    _identities(bot, bot.status, decision)
    _conditions_and_events(bot.status, meta, now, decision)
    return decision


def _no_user(account: AccountState) -> str:
    if not account.users:
        down = ", ".join(f"{user} ({reason})" for user, reason in account.unavailable)
        return f"no service user can mint a ZAK now: {down or 'none listed'}; checked again"
    return (
        f"every service user serves maxBotsPerUser ({account.max_per_user}) bots; the bot "
        "starts when one finishes"
    )


def spec_invalid(
    old: MeetingBotStatus, meta: Meta, message: str, now: datetime
) -> MeetingBotStatus:
    """The status of a MeetingBot whose spec cannot be parsed: Failed, said once."""
    decision = Decision(status=old.model_copy())
    _fail(decision.status, Reason.SPEC_INVALID, message, now)
    _conditions_and_events(old, meta, now, decision)
    return decision.status


def started(bot: MeetingBot, meta: Meta, result: AttemptStarted) -> MeetingBotStatus:
    """The status once the executor has written the attempt's Secret and Pod. The same attempt
    found again after a restart keeps its start time (its timeouts count from the real start)
    and its ZAK's expiry when no new one was minted."""
    old = bot.status
    again = result.attempt == old.attempts
    status = old.model_copy()
    status.attempts = result.attempt
    status.pod_name = pod_name(meta.name, result.attempt)
    status.zoom_user = result.user
    status.auth = result.auth or status.auth
    status.zak_expires_at = result.zak_expires_at or (old.zak_expires_at if again else None)
    status.started_at = (old.started_at if again else None) or result.at
    status.next_attempt_at = None
    status.start_failures = 0
    status.stop = None
    status.joined_at = None
    status.left_at = None
    _set_phase(status, Phase.STARTING, None, f"attempt {result.attempt}: pod {status.pod_name}")
    return status


def _set_phase(status: MeetingBotStatus, phase: Phase, reason: str | None, message: str) -> None:
    status.phase = phase
    status.reason = reason
    status.message = message


def _succeed(status: MeetingBotStatus, reason: str, message: str, now: datetime) -> None:
    _set_phase(status, Phase.SUCCEEDED, reason, message)
    status.completion_time = now
    status.next_attempt_at = None


def _fail(status: MeetingBotStatus, reason: str, message: str, now: datetime) -> None:
    _set_phase(status, Phase.FAILED, reason, message)
    status.completion_time = now
    status.next_attempt_at = None


def _sooner(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


def _conditions_and_events(
    old: MeetingBotStatus, meta: Meta, now: datetime, decision: Decision
) -> None:
    """Conditions follow the phase; a phase change is an event. Ready is kstatus's (and
    Flux's) sense of it, the bot is where it should be (Current); InMeeting is the meeting."""
    status = decision.status
    phase = status.phase or Phase.PENDING
    reason = status.reason or phase.value
    message = status.message or ""
    gen = meta.generation
    where = PROGRESS.get(phase, Progress.RECONCILING)
    conditions = set_condition(
        status.conditions,
        "Ready",
        where == Progress.CURRENT,
        reason,
        message,
        generation=gen,
        now=now,
    )
    conditions = set_condition(
        conditions, "InMeeting", phase == Phase.IN_MEETING, reason, message, generation=gen, now=now
    )
    conditions = set_condition(
        conditions, "Complete", phase == Phase.SUCCEEDED, reason, message, generation=gen, now=now
    )
    conditions = set_condition(
        conditions, "Failed", phase == Phase.FAILED, reason, message, generation=gen, now=now
    )
    status.conditions = progress(conditions, where, reason, message, generation=gen, now=now)
    if phase != old.phase and not any(e.reason == status.reason for e in decision.events):
        kind = "Warning" if phase == Phase.FAILED else "Normal"
        decision.events.append(Event(kind, phase.value, message))
