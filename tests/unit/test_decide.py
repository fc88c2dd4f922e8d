"""`decide`: every decision the operator makes, without a cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meetingbot_api import MeetingBot, Phase
from meetingbot_contract import AuthMode, BotReport, BotResult
from meetingbot_contract.reasons import Reason
from meetingbot_operator.meetingbot.decisions import (
    ActionKind,
    Timing,
    after_start_failure,
    backoff,
    decide,
    pick_user,
    started,
)
from meetingbot_operator.meetingbot.notifications import happened
from meetingbot_operator.meetingbot.observed import (
    AttemptRefused,
    AttemptStarted,
    Meta,
    Observed,
    PodObservation,
)
from meetingbot_operator.zoomaccount.state import AccountState, MeetingOwner
from meetingbot_operator.zoomusergrant.state import GrantState
from tests.support.specs import meeting_bot

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
META = Meta(name="bot", namespace="ns", uid="0a1b2c3d-0000", generation=1)
READY = AccountState(True, "CredentialsVerified", "ok", ("svc@example.com",))
TIMING = Timing(
    start_lead=timedelta(seconds=60),
    retry_base=5,
    retry_max=300,
    max_duration_grace=timedelta(seconds=120),
)


def bot(status: dict[str, Any] | None = None, **spec: Any) -> MeetingBot:
    return meeting_bot(status, **{"displayName": "Bot", **spec})


def running(attempt: int = 1, phase: str = "Starting", **extra: Any) -> dict[str, Any]:
    return {
        "phase": phase,
        "attempts": attempt,
        "podName": f"bot-{attempt}",
        "startedAt": (NOW - timedelta(seconds=30)).isoformat(),
        **extra,
    }


def observe(**fields: Any) -> Observed:
    return Observed(now=fields.pop("now", NOW), account=fields.pop("account", READY), **fields)


def test_a_new_bot_starts_its_first_attempt() -> None:
    plan = decide(bot(), META, observe(), TIMING)
    (action,) = plan.actions
    assert (action.kind, action.attempt, action.user) == (
        ActionKind.START_ATTEMPT,
        1,
        "svc@example.com",
    )


def test_join_at_in_the_future_is_scheduled_with_the_lead_time() -> None:
    plan = decide(bot(joinAt=(NOW + timedelta(minutes=10)).isoformat()), META, observe(), TIMING)
    assert plan.status.phase == Phase.SCHEDULED
    assert plan.actions == []
    assert plan.requeue_after == pytest.approx(540)
    soon = decide(bot(joinAt=(NOW + timedelta(seconds=30)).isoformat()), META, observe(), TIMING)
    assert soon.actions[0].kind == ActionKind.START_ATTEMPT


def test_missing_or_unready_account_waits() -> None:
    missing = decide(bot(), META, observe(account=None), TIMING)
    assert (missing.status.phase, missing.status.reason) == (Phase.PENDING, "ZoomAccountNotFound")
    unready = decide(
        bot(),
        META,
        observe(account=AccountState(False, "ZoomCredentialsInvalid", "bad secret")),
        TIMING,
    )
    assert (unready.status.reason, unready.actions) == ("ZoomCredentialsInvalid", [])
    assert unready.requeue_after == 30.0


def test_an_account_not_seen_just_after_a_start_or_a_takeover_is_waited_for_unsaid() -> None:
    """Just started, or just took the bot's shard: the account may not be listed yet, so the
    status does not say it is missing until LIST_SETTLE has passed. A new bot is Pending (one
    phase event for its webhook, however many passes wait), one with a phase keeps it."""
    just = observe(account=None, operator_started=NOW - timedelta(seconds=2))
    plan = decide(bot(), META, just, TIMING)
    assert (plan.status.phase, plan.status.reason, plan.actions) == (Phase.PENDING, None, [])
    assert plan.requeue_after == pytest.approx(8)
    told = plan.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert happened(plan.status, decide(bot(told), META, just, TIMING).status) == []
    waiting = {"phase": "Pending", "reason": "NoServiceUserAvailable", "message": "all busy"}
    again = decide(bot(waiting), META, just, TIMING)
    assert (again.status.reason, again.status.message) == ("NoServiceUserAvailable", "all busy")
    later = observe(account=None, operator_started=NOW - timedelta(seconds=10))
    missing = decide(bot(), META, later, TIMING)
    assert (missing.status.phase, missing.status.reason) == (Phase.PENDING, "ZoomAccountNotFound")


def test_a_user_outside_the_account_fails_at_once() -> None:
    plan = decide(bot(user="other@example.com"), META, observe(), TIMING)
    assert (plan.status.phase, plan.status.reason) == (Phase.FAILED, "ZoomUserNotInAccount")
    assert plan.actions == []


def test_user_choice_is_stable_per_bot() -> None:
    users = ("a", "b", "c")
    assert pick_user(None, users, "0000000f-x") == pick_user(None, users, "0000000f-x")
    assert pick_user("b", users, "anything") == "b"
    assert {pick_user(None, users, f"{i:08x}-x") for i in range(30)} == set(users)


@pytest.mark.parametrize(
    ("state", "phase"),
    [
        ("Joining", Phase.JOINING),
        ("WaitingRoom", Phase.WAITING_ROOM),
        ("InMeeting", Phase.IN_MEETING),
        ("Leaving", Phase.LEAVING),
    ],
)
def test_reports_set_the_phase(state: str, phase: Phase) -> None:
    report = BotReport(attempt=1, state=state, joined_at=NOW if state == "InMeeting" else None)
    plan = decide(
        bot(running()),
        META,
        observe(report=report, pod=PodObservation("bot-1", 1, "Running")),
        TIMING,
    )
    assert plan.status.phase == phase
    conditions = {c.type: c.status for c in plan.status.conditions}
    assert conditions["InMeeting"] == ("True" if phase == Phase.IN_MEETING else "False")
    # kstatus's Ready (the bot is where it should be) and Reconciling (on its way; this bot's
    # status had none, and it is written from the first time it is True).
    assert conditions["Ready"] == ("True" if phase == Phase.IN_MEETING else "False")
    assert conditions.get("Reconciling") == (None if phase == Phase.IN_MEETING else "True")
    assert not conditions.keys() & {"Stalled", "Complete", "Failed"}
    assert any(e.reason == phase.value for e in plan.events)


def test_a_report_of_an_earlier_attempt_is_ignored() -> None:
    plan = decide(
        bot(running(2)),
        META,
        observe(
            report=BotReport(attempt=1, state="InMeeting"),
            pod=PodObservation("bot-2", 2, "Running"),
        ),
        TIMING,
    )
    assert plan.status.phase == Phase.STARTING


def test_meeting_ended_succeeds() -> None:
    report = BotReport(attempt=1, state="Ended", reason="MeetingEnded")
    plan = decide(bot(running(phase="InMeeting")), META, observe(report=report), TIMING)
    assert (plan.status.phase, plan.status.reason) == (Phase.SUCCEEDED, "MeetingEnded")
    assert plan.status.completion_time == NOW
    assert {c.type: c.status for c in plan.status.conditions}["Complete"] == "True"


def test_conditions_true_only_in_their_case_are_absent_until_they_are_true() -> None:
    """Complete, Failed, Reconciling and Stalled are written from the first time they are
    True, then kept (kstatus reads an absent one as False; a Job's Complete and Failed appear
    so too): a starting bot's status carries three conditions, not six."""

    def conditions(plan: Any) -> dict[str, str]:
        return {c.type: c.status for c in plan.status.conditions}

    def then(plan: Any) -> MeetingBot:
        return bot(plan.status.model_dump(mode="json", by_alias=True, exclude_none=True))

    result = AttemptStarted(1, NOW, "svc@example.com", NOW + timedelta(hours=2), AuthMode.ZAK)
    starting = decide(bot(), META, observe(attempt_result=result), TIMING)
    assert starting.status.phase == Phase.STARTING
    assert conditions(starting) == {"Ready": "False", "InMeeting": "False", "Reconciling": "True"}
    pod = PodObservation(starting.status.pod_name or "", 1, "Running")
    joined = BotReport(attempt=1, state="InMeeting", joined_at=NOW)
    in_meeting = decide(then(starting), META, observe(report=joined, pod=pod), TIMING)
    assert conditions(in_meeting) == {"Ready": "True", "InMeeting": "True", "Reconciling": "False"}
    ended = BotReport(attempt=1, state="Ended", reason="MeetingEnded")
    done = decide(then(in_meeting), META, observe(report=ended, pod=pod), TIMING)
    assert done.status.phase == Phase.SUCCEEDED
    assert conditions(done) == {
        "Ready": "True",
        "InMeeting": "False",
        "Complete": "True",
        "Reconciling": "False",
    }
    refused = BotReport(attempt=1, state="Ended", reason="WrongPasscode", message="3004")
    failed = decide(then(starting), META, observe(report=refused), TIMING)
    assert failed.status.phase == Phase.FAILED
    assert conditions(failed) == {
        "Ready": "False",
        "InMeeting": "False",
        "Failed": "True",
        "Reconciling": "False",
        "Stalled": "True",
    }


def test_a_permanent_reason_fails_without_retry() -> None:
    report = BotReport(attempt=1, state="Ended", reason="WrongPasscode", message="3004")
    plan = decide(bot(running(phase="Joining")), META, observe(report=report), TIMING)
    assert (plan.status.phase, plan.status.reason) == (Phase.FAILED, "WrongPasscode")
    assert [a.kind for a in plan.actions] == [ActionKind.DELETE_SECRET]  # no retry, no ZAK left
    assert plan.events[0].type == "Warning"


def test_a_reported_failure_waits_for_the_containers_exit_which_may_say_oomkilled() -> None:
    report = BotReport(attempt=1, state="Ended", reason="BotCrashed", message="browser died")
    still = PodObservation("bot-1", 1, "Running")
    waiting = decide(
        bot(running(phase="InMeeting")), META, observe(report=report, pod=still), TIMING
    )
    assert (waiting.status.phase, waiting.status.reason) == (Phase.LEAVING, "BotCrashed")
    assert waiting.actions == []
    oom = PodObservation("bot-1", 1, "Failed", exit_code=5, terminated_reason="OOMKilled")
    plan = decide(bot(running(phase="InMeeting")), META, observe(report=report, pod=oom), TIMING)
    assert (plan.status.phase, plan.status.reason) == (Phase.PENDING, "OOMKilled")
    crashed = PodObservation("bot-1", 1, "Failed", exit_code=5, terminated_reason="Error")
    plan = decide(
        bot(running(phase="InMeeting")), META, observe(report=report, pod=crashed), TIMING
    )
    assert (plan.status.phase, plan.status.reason) == (Phase.PENDING, "BotCrashed")


def test_a_transient_reason_retries_with_backoff_then_starts_the_next_attempt() -> None:
    pod = PodObservation("bot-1", 1, "Failed", exit_code=1)
    plan = decide(bot(running(phase="InMeeting")), META, observe(pod=pod), TIMING)
    assert (plan.status.phase, plan.status.reason) == (Phase.PENDING, "BotCrashed")
    delay = backoff(META.uid, 1, TIMING)
    assert 4 <= delay <= 6
    assert plan.status.next_attempt_at == NOW + timedelta(seconds=delay)
    waiting = decide(
        bot(plan.status.model_dump(mode="json", by_alias=True)),
        META,
        observe(pod=pod, now=NOW + timedelta(seconds=1)),
        TIMING,
    )
    assert waiting.actions == []
    due = decide(
        bot(plan.status.model_dump(mode="json", by_alias=True)),
        META,
        observe(pod=pod, now=NOW + timedelta(seconds=10)),
        TIMING,
    )
    assert (due.actions[0].kind, due.actions[0].attempt) == (ActionKind.START_ATTEMPT, 2)


def test_retries_stop_at_the_limit() -> None:
    pod = PodObservation("bot-3", 3, "Failed", exit_code=1)
    plan = decide(bot(running(3), retry={"limit": 2}), META, observe(pod=pod), TIMING)
    assert (plan.status.phase, plan.status.reason) == (Phase.FAILED, "BotCrashed")
    assert "attempt 3" in (plan.status.message or "")


def test_backoff_grows_and_is_capped() -> None:
    delays = [backoff("u", n, TIMING) for n in range(1, 12)]
    assert delays[0] < delays[3] < delays[6]
    assert max(delays) <= 300 * 1.2


@pytest.mark.parametrize(
    ("pod", "reason"),
    [
        (
            PodObservation("bot-1", 1, "Failed", exit_code=137, terminated_reason="OOMKilled"),
            "OOMKilled",
        ),
        # The browser was killed for memory; the bot says only that its browser died.
        (
            PodObservation(
                "bot-1",
                1,
                "Failed",
                exit_code=5,
                terminated_reason="OOMKilled",
                termination_message='{"attempt": 1, "reason": "BotCrashed", "message": "gone"}',
            ),
            "OOMKilled",
        ),
        (
            PodObservation(
                "bot-1", 1, "Failed", status_reason="Evicted", status_message="low memory"
            ),
            "PodDisrupted",
        ),
        (PodObservation("bot-1", 1, "Running", deleted=True), "PodDisrupted"),
        (PodObservation("bot-1", 1, "Failed", exit_code=5), "BotCrashed"),
        (PodObservation("bot-1", 1, "Succeeded", exit_code=0), "Completed"),
        (
            PodObservation(
                "bot-1", 1, "Pending", waiting_reason="InvalidImageName", waiting_message="bad"
            ),
            "ImagePullFailed",
        ),
    ],
)
def test_pod_outcomes(pod: PodObservation, reason: str) -> None:
    plan = decide(bot(running(phase="InMeeting")), META, observe(pod=pod), TIMING)
    assert plan.status.reason == reason


def test_the_termination_message_names_the_outcome() -> None:
    result = BotResult(attempt=1, reason="EveryoneLeft", message="alone for 60 s")
    pod = PodObservation(
        "bot-1",
        1,
        "Succeeded",
        exit_code=0,
        termination_message=result.model_dump_json(by_alias=True),
    )
    plan = decide(bot(running(phase="InMeeting")), META, observe(pod=pod), TIMING)
    assert (plan.status.phase, plan.status.reason, plan.status.message) == (
        Phase.SUCCEEDED,
        "EveryoneLeft",
        "alone for 60 s",
    )
    stale = BotResult(attempt=7, reason="EveryoneLeft").model_dump_json(by_alias=True)
    other = decide(
        bot(running(phase="InMeeting")),
        META,
        observe(pod=PodObservation("bot-1", 1, "Failed", exit_code=3, termination_message=stale)),
        TIMING,
    )
    assert other.status.reason == "BotCrashed"


def test_an_image_that_cannot_be_pulled_fails_after_patience_and_the_pod_goes() -> None:
    pod = PodObservation("bot-1", 1, "Pending", waiting_reason="ImagePullBackOff")
    early = decide(bot(running()), META, observe(pod=pod), TIMING)
    assert early.status.phase == Phase.STARTING
    late = decide(bot(running()), META, observe(pod=pod, now=NOW + timedelta(minutes=5)), TIMING)
    assert (late.status.phase, late.status.reason) == (Phase.FAILED, "ImagePullFailed")
    assert [a.kind for a in late.actions] == [ActionKind.DELETE_SECRET, ActionKind.DELETE_POD]


def test_a_pod_never_seen_is_created_again_after_patience() -> None:
    status = running()
    quiet = decide(bot(status), META, observe(operator_started=NOW - timedelta(seconds=5)), TIMING)
    assert quiet.actions == []
    assert quiet.requeue_after == pytest.approx(5)
    later = decide(bot(status), META, observe(operator_started=NOW - timedelta(minutes=5)), TIMING)
    assert (later.actions[0].kind, later.actions[0].attempt) == (ActionKind.START_ATTEMPT, 1)
    gone = decide(
        bot(running(phase="InMeeting")),
        META,
        observe(operator_started=NOW - timedelta(minutes=5)),
        TIMING,
    )
    assert gone.status.reason == "PodDisrupted"


def test_max_duration_backstop_stops_the_pod_and_counts_as_success() -> None:
    status = running(phase="InMeeting", joinedAt=(NOW - timedelta(hours=5)).isoformat())
    pod = PodObservation("bot-1", 1, "Running")
    plan = decide(bot(status), META, observe(pod=pod), TIMING)
    assert (plan.status.phase, plan.status.reason) == (Phase.LEAVING, "MaxDurationReached")
    assert [a.kind for a in plan.actions] == [ActionKind.DELETE_POD]
    killed = PodObservation("bot-1", 1, "Failed", exit_code=137)
    after = decide(
        bot(plan.status.model_dump(mode="json", by_alias=True)), META, observe(pod=killed), TIMING
    )
    assert (after.status.phase, after.status.reason) == (Phase.SUCCEEDED, "MaxDurationReached")


def test_ttl_after_finished() -> None:
    done = {
        "phase": "Succeeded",
        "reason": "MeetingEnded",
        "attempts": 1,
        "completionTime": (NOW - timedelta(seconds=30)).isoformat(),
    }
    cleaned = observe(secret_cleaned=True)
    keep = decide(bot(done, ttlSecondsAfterFinished=60), META, cleaned, TIMING)
    assert keep.actions == [] and keep.requeue_after == pytest.approx(30)
    delete = decide(bot(done, ttlSecondsAfterFinished=10), META, cleaned, TIMING)
    assert [a.kind for a in delete.actions] == [ActionKind.DELETE_BOT]
    forever = decide(bot(done), META, cleaned, TIMING)
    assert forever.actions == [] and forever.requeue_after is None


def test_conditions_keep_their_transition_time_while_unchanged() -> None:
    first = decide(bot(running()), META, observe(pod=PodObservation("bot-1", 1, "Running")), TIMING)
    again = decide(
        bot(first.status.model_dump(mode="json", by_alias=True)),
        META,
        observe(now=NOW + timedelta(minutes=1), pod=PodObservation("bot-1", 1, "Running")),
        TIMING,
    )
    assert [c.last_transition_time for c in again.status.conditions] == [
        c.last_transition_time for c in first.status.conditions
    ]
    assert again.events == []


def test_start_failures() -> None:
    transient = after_start_failure(
        bot({"startFailures": 2}), META, "ZoomRateLimited", "rate limited", NOW, TIMING
    )
    assert (transient.status.phase, transient.status.reason) == (Phase.PENDING, "ZoomRateLimited")
    delay = backoff(META.uid, 3, TIMING)
    assert transient.requeue_after == pytest.approx(delay)
    # The count and the next try live in status, so a restarted operator keeps the schedule.
    assert transient.status.start_failures == 3
    assert transient.status.next_attempt_at == NOW + timedelta(seconds=delay)
    account = after_start_failure(bot(), META, "ZoomCredentialsInvalid", "bad", NOW, TIMING)
    assert (account.status.phase, account.requeue_after) == (Phase.PENDING, 30.0)
    permanent = after_start_failure(bot(), META, "ZoomUserNotFound", "no such user", NOW, TIMING)
    assert (permanent.status.phase, permanent.status.reason) == (Phase.FAILED, "ZoomUserNotFound")


def test_a_start_backoff_survives_a_restart() -> None:
    """After a restart the same status gives the same wait: no new attempt before
    nextAttemptAt, whatever the operator's memory lost."""
    waiting = after_start_failure(bot(), META, "ZoomUnavailable", "down", NOW, TIMING)
    restored = bot(waiting.status.model_dump(mode="json", by_alias=True))
    soon = decide(restored, META, observe(now=NOW + timedelta(seconds=1)), TIMING)
    assert soon.actions == []
    assert soon.requeue_after is not None and soon.requeue_after > 0
    later = decide(restored, META, observe(now=NOW + timedelta(minutes=10)), TIMING)
    assert [a.kind for a in later.actions] == [ActionKind.START_ATTEMPT]


def test_started_resets_the_attempt_fields() -> None:
    previous = bot(
        {
            "phase": "Pending",
            "attempts": 1,
            "joinedAt": NOW.isoformat(),
            "nextAttemptAt": NOW.isoformat(),
        }
    )
    status = started(
        previous, META, AttemptStarted(2, NOW, "svc@example.com", NOW + timedelta(hours=2))
    )
    assert (status.attempts, status.pod_name, status.phase) == (2, "bot-2", Phase.STARTING)
    assert status.joined_at is None and status.next_attempt_at is None


def test_an_attempts_result_is_the_next_passes_observation() -> None:
    """The executor's result is read by the next decision, which writes it into status once:
    started -> Starting with the attempt's fields; refused -> the start backoff."""
    new = bot()
    first = decide(new, META, observe(), TIMING)
    assert [a.kind for a in first.actions] == [ActionKind.START_ATTEMPT]
    pod = PodObservation("bot-1", 1)
    result = AttemptStarted(1, NOW, "svc@example.com", NOW + timedelta(hours=2))
    after = decide(new, META, observe(attempt_result=result, pod=pod), TIMING)
    assert (after.status.phase, after.status.attempts, after.status.pod_name) == (
        Phase.STARTING,
        1,
        "bot-1",
    )
    assert after.status.zoom_user == "svc@example.com" and after.status.started_at == NOW
    assert after.actions == []
    assert [e.reason for e in after.events] == ["Starting"]
    refused = AttemptRefused(1, NOW, "PodQuotaExceeded", "exceeded quota")
    waiting = decide(new, META, observe(attempt_result=refused), TIMING)
    assert (waiting.status.phase, waiting.status.reason) == (Phase.PENDING, "PodQuotaExceeded")
    assert waiting.status.attempts == 0 and waiting.status.start_failures == 1
    assert waiting.actions == []


def test_the_same_attempt_found_again_keeps_its_start() -> None:
    """After a restart the pod of the current attempt is created again (same name): its
    timeouts still count from the first start."""
    earlier = NOW - timedelta(minutes=3)
    status = running(startedAt=earlier.isoformat())
    again = decide(
        bot(status),
        META,
        observe(attempt_result=AttemptStarted(1, NOW, "svc@example.com")),
        TIMING,
    )
    assert again.status.started_at == earlier


# --- the service-user pool ----------------------------------------------------------------


def pool_account(
    users: tuple[str, ...], loads: dict[str, int], cap: int | None = None, **extra: Any
) -> AccountState:
    return AccountState(
        True,
        "CredentialsVerified",
        "ok",
        users,
        all_users=extra.pop("all_users", users),
        loads=tuple(loads.items()),
        max_per_user=cap,
        **extra,
    )


def test_the_least_loaded_user_is_chosen_under_the_cap() -> None:
    account = pool_account(("a", "b", "c"), {"a": 3, "b": 1, "c": 2}, cap=3)
    plan = decide(bot(), META, observe(account=account), TIMING)
    assert [(a.kind, a.user) for a in plan.actions] == [(ActionKind.START_ATTEMPT, "b")]
    assert pick_user(None, ("a", "b"), "0000000f-x", {"a": 1, "b": 1}, 1) is None


def test_every_user_at_the_cap_waits_without_consuming_an_attempt() -> None:
    account = pool_account(("a", "b"), {"a": 2, "b": 2}, cap=2)
    plan = decide(bot(), META, observe(account=account), TIMING)
    assert plan.actions == []
    assert (plan.status.phase, plan.status.reason) == (Phase.PENDING, "NoServiceUserAvailable")
    assert "maxBotsPerUser (2)" in (plan.status.message or "")
    assert plan.status.attempts == 0 and plan.requeue_after is not None
    assert plan.requeue_after <= 5


def test_no_usable_user_says_which_are_unavailable_and_why() -> None:
    account = pool_account((), {}, all_users=("a",), unavailable=(("a", "ZoomUserInactive"),))
    plan = decide(bot(), META, observe(account=account), TIMING)
    assert plan.status.reason == "NoServiceUserAvailable"
    assert "a (ZoomUserInactive)" in (plan.status.message or "")
    # A pinned user that is listed but Unavailable is still the bot's user (spec.user wins).
    pinned = decide(bot(user="a"), META, observe(account=account), TIMING)
    assert [a.user for a in pinned.actions] == ["a"]


def test_a_refusal_about_the_user_moves_the_bot_on_at_once_and_costs_nothing() -> None:
    refused = AttemptRefused(1, NOW, "ZoomUserInactive", "the user is not active", True)
    plan = decide(bot(), META, observe(attempt_result=refused), TIMING)
    assert (plan.status.phase, plan.status.reason) == (Phase.PENDING, "ZoomUserInactive")
    assert plan.status.start_failures == 0 and plan.status.next_attempt_at is None
    assert plan.requeue_after is not None and plan.requeue_after < 1
    assert not [e for e in plan.events if e.type == "Warning"]  # not a failure of the bot


def test_a_capped_pool_waits_for_the_first_lists_after_a_restart() -> None:
    account = pool_account(("a",), {"a": 0}, cap=1)
    just = observe(account=account, operator_started=NOW - timedelta(seconds=1))
    plan = decide(bot(), META, just, TIMING)
    assert plan.actions == [] and plan.requeue_after == pytest.approx(4)
    later = observe(account=account, operator_started=NOW - timedelta(seconds=10))
    assert decide(bot(), META, later, TIMING).actions[0].user == "a"
    # Started long ago, but its watches listed an object a second ago (a loaded machine
    # that took this long to list, or a relist): the claims may not be whole yet.
    listing = observe(
        account=account,
        operator_started=NOW - timedelta(seconds=10),
        listed_at=NOW - timedelta(seconds=1),
    )
    plan = decide(bot(), META, listing, TIMING)
    assert plan.actions == [] and plan.requeue_after == pytest.approx(4)


def test_a_start_found_with_its_pod_but_no_status_keeps_the_pods_user() -> None:
    """The operator (or a shard's leader) stopped after creating attempt 1's pod, before any
    status said so. The start is decided again with the user the pod joins as, even when
    another user has room and this one is full (the pod holds its seat already, counted by
    the ledger from the pod), and even before the restarted pool has settled."""
    account = pool_account(("a", "b"), {"a": 1, "b": 0}, cap=1)
    pod = PodObservation("bot-1", 1, "Running", zoom_user="a")
    observed = observe(account=account, started_pod=pod, operator_started=NOW)
    plan = decide(bot(), META, observed, TIMING)
    (start,) = plan.actions
    assert (start.kind, start.attempt, start.user, start.adopted) == (
        ActionKind.START_ATTEMPT, 1, "a", True,
    )  # fmt: skip
    assert plan.hold is not None and (plan.hold.user, plan.hold.capped) == ("a", False)
    # Without the pod, or with the pod gone, the same pass waits for the pool to settle,
    # then picks "b".
    gone = PodObservation("bot-1", 1, "Running", deleted=True, zoom_user="a")
    waits = observe(account=account, started_pod=gone, operator_started=NOW)
    assert decide(bot(), META, waits, TIMING).actions == []
    assert decide(bot(), META, observe(account=account, operator_started=NOW), TIMING).actions == []
    fresh = decide(bot(), META, observe(account=account), TIMING)
    assert [(a.user, a.adopted) for a in fresh.actions] == [("b", False)]
    assert fresh.hold is not None and fresh.hold.capped


# --- auth: auto and ZoomUserGrants -----------------------------------------------------------

GRANT = {"grantRef": {"name": "alice"}}


def test_auth_auto_looks_the_meeting_up_before_anything_else() -> None:
    plan = decide(bot(auth="auto"), META, observe(), TIMING)
    assert [a.kind for a in plan.actions] == [ActionKind.LOOKUP_MEETING]
    assert plan.status.phase == Phase.PENDING and plan.requeue_after is not None


@pytest.mark.parametrize(
    ("owner", "obf", "mode"),
    [
        (MeetingOwner.OWN, None, AuthMode.ZAK),
        (MeetingOwner.OWN, GRANT, AuthMode.ZAK),
        (MeetingOwner.EXTERNAL, GRANT, AuthMode.OBF),
        (MeetingOwner.UNKNOWN, GRANT, AuthMode.OBF),
        (MeetingOwner.UNKNOWN, None, AuthMode.ZAK),
    ],
)
def test_auth_auto_resolves_from_the_meetings_owner(
    owner: MeetingOwner, obf: dict[str, Any] | None, mode: AuthMode
) -> None:
    spec: dict[str, Any] = {"auth": "auto", **({"obf": obf} if obf else {})}
    grant = GrantState(True, "Authorized", "ok")
    plan = decide(bot(**spec), META, observe(meeting_owner=owner, grant=grant), TIMING)
    (action,) = plan.actions
    assert (action.kind, action.auth) == (ActionKind.START_ATTEMPT, mode)
    assert (action.user is not None) == (mode == AuthMode.ZAK)
    lookup = [c for c in plan.status.conditions if c.type == "MeetingLookedUp"]
    assert bool(lookup) == (owner == MeetingOwner.UNKNOWN)


def test_auth_auto_fails_an_external_meeting_without_a_grant_citing_the_policy() -> None:
    plan = decide(bot(auth="auto"), META, observe(meeting_owner=MeetingOwner.EXTERNAL), TIMING)
    assert plan.actions == [] and plan.status.phase == Phase.FAILED
    assert plan.status.reason == "ObfRequiredForExternalMeeting"
    assert "March 2026" in (plan.status.message or "")


@pytest.mark.parametrize(
    ("grant", "reason"),
    [
        (None, "ZoomUserGrantNotFound"),
        (GrantState(False, "GrantRevoked", "the user removed the app"), "ZoomUserGrantNotReady"),
    ],
)
def test_an_obf_bot_waits_for_its_grant_consuming_nothing(
    grant: GrantState | None, reason: str
) -> None:
    plan = decide(bot(auth="obf", obf=GRANT), META, observe(grant=grant), TIMING)
    assert plan.actions == []
    assert (plan.status.phase, plan.status.reason, plan.status.attempts) == (
        Phase.PENDING,
        reason,
        0,
    )
    assert plan.requeue_after is not None


def test_a_bot_its_liveness_probe_ended_is_unresponsive_not_crashed() -> None:
    """Exit 137 without a result: after a long silence (the probe's window and the SIGTERM
    grace the frozen bot let run out) the kubelet ended it; a bot that had just reported and
    then died with SIGKILL crashed."""
    killed = PodObservation("bot-1", 1, "Failed", exit_code=137)
    status = running(phase="InMeeting")
    frozen = decide(
        bot(status), META, observe(pod=killed, last_report_at=NOW - timedelta(seconds=95)), TIMING
    )
    assert frozen.status.reason == "BotUnresponsive"
    assert "liveness probe" in (frozen.status.message or "")
    crashed = decide(
        bot(status), META, observe(pod=killed, last_report_at=NOW - timedelta(seconds=5)), TIMING
    )
    assert crashed.status.reason == "BotCrashed"


def test_a_finished_bot_whose_pod_still_runs_is_stopped() -> None:
    """A status says Succeeded (written by someone else, seen by a restarted operator) while
    the attempt's pod runs and its bot has not said it left: the pod is stopped. A bot that
    reported Ended is let go on its own (its logs stay with its pod)."""
    done = {"phase": "Succeeded", "reason": "MeetingEnded", "attempts": 1, "podName": "bot-1"}
    alive = PodObservation("bot-1", 1, "Running")
    in_meeting = BotReport(attempt=1, state="InMeeting")
    plan = decide(bot(done), META, observe(pod=alive, report=in_meeting), TIMING)
    assert (ActionKind.DELETE_POD, "bot-1") in [(a.kind, a.pod_name) for a in plan.actions]
    leaving = BotReport(attempt=1, state="Ended", reason="MeetingEnded")
    plan = decide(bot(done), META, observe(pod=alive, report=leaving), TIMING)
    assert ActionKind.DELETE_POD not in [a.kind for a in plan.actions]


# --- Zoom identities: the user a bot holds, and the actions the decisions name ------------


def test_a_start_holds_its_user_capped_unless_pinned_and_a_running_bot_keeps_it() -> None:
    ready = AccountState(True, "ok", "ok", ("a", "b"), all_users=("a", "b"), max_per_user=2)
    start = decide(bot(), META, observe(account=ready), TIMING)
    (action,) = start.actions
    assert start.hold is not None and start.hold.user == action.user and start.hold.capped
    pinned = decide(bot(user="a"), META, observe(account=ready), TIMING)
    assert pinned.hold is not None and (pinned.hold.user, pinned.hold.capped) == ("a", False)
    running_bot = bot(running(phase="InMeeting", zoomUser="b"))
    pod = PodObservation("bot-1", 1, "Running")
    report = BotReport(attempt=1, state="InMeeting", joined_at=NOW)
    held = decide(running_bot, META, observe(account=ready, pod=pod, report=report), TIMING)
    assert held.hold is not None and (held.hold.user, held.hold.capped) == ("b", False)
    ended = BotReport(attempt=1, state="Ended", reason="MeetingEnded")
    done = decide(running_bot, META, observe(account=ready, pod=pod, report=ended), TIMING)
    assert done.hold is None  # a finished bot holds no user


def test_a_join_refused_for_the_zak_forgets_that_zak_once() -> None:
    expires = NOW + timedelta(hours=2)
    running_bot = bot(running(phase="Joining", zoomUser="a", zakExpiresAt=expires.isoformat()))
    refused = BotReport(attempt=1, state="Ended", reason="ZakInvalid", message="3265")
    pod = PodObservation("bot-1", 1, "Failed", exit_code=3)
    plan = decide(running_bot, META, observe(report=refused, pod=pod), TIMING)
    assert plan.status.reason == "ZakInvalid"
    forget = [a for a in plan.actions if a.kind == ActionKind.FORGET_ZAK]
    assert [(a.user, a.expires_at) for a in forget] == [("a", expires)]
    again = decide(
        bot(plan.status.model_dump(mode="json", by_alias=True)),
        META,
        observe(report=refused, pod=pod, now=NOW + timedelta(seconds=1)),
        TIMING,
    )
    assert ActionKind.FORGET_ZAK not in [a.kind for a in again.actions]


def test_every_user_busy_asks_for_one_only_where_provisioning_may_create_it() -> None:
    full = AccountState(
        True, "ok", "ok", ("a",), all_users=("a",), loads=(("a", 1),), max_per_user=1
    )
    plan = decide(bot(), META, observe(account=full), TIMING)
    assert plan.status.reason == "NoServiceUserAvailable" and plan.actions == []
    can = AccountState(
        True,
        "ok",
        "ok",
        ("a",),
        all_users=("a",),
        loads=(("a", 1),),
        max_per_user=1,
        can_provision=True,
    )
    plan = decide(bot(), META, observe(account=can), TIMING)
    assert [a.kind for a in plan.actions] == [ActionKind.PROVISION_USER]
    assert plan.hold is None


def test_a_user_zoom_refused_is_marked_unavailable_and_the_bot_moves_on() -> None:
    refused = AttemptRefused(
        1, NOW, "ZoomUserInactive", "HTTP 400, Zoom code 1120", another_user=True, user="a"
    )
    plan = decide(bot(), META, observe(attempt_result=refused), TIMING)
    (mark,) = plan.actions
    assert (mark.kind, mark.user, mark.reason) == (
        ActionKind.MARK_USER_UNAVAILABLE,
        "a",
        "ZoomUserInactive",
    )
    assert plan.status.phase == Phase.PENDING and plan.status.start_failures == 0
    assert plan.hold is None


def test_cancel_before_the_start_finishes_at_once_and_during_an_attempt_stops_it() -> None:
    plan = decide(bot(cancel=True), META, observe(), TIMING)
    assert (plan.status.phase, plan.status.reason) == (Phase.SUCCEEDED, Reason.CANCELED)
    assert not any(a.kind == ActionKind.START_ATTEMPT for a in plan.actions)

    report = BotReport(attempt=1, state="InMeeting", joined_at=NOW)
    pod = PodObservation("bot-1", 1, "Running")
    plan = decide(bot(running(), cancel=True), META, observe(report=report, pod=pod), TIMING)
    assert (plan.status.phase, plan.status.reason) == (Phase.LEAVING, Reason.CANCELED)
    assert plan.status.stop is not None and plan.status.stop.reason == Reason.CANCELED
    assert ActionKind.DELETE_POD in [a.kind for a in plan.actions]
