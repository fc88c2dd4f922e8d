"""The safety rules without a cluster: outcomes from facts, liveness, ownership, opt-in Secrets,
allowed endpoints, the report endpoint's answers, pod refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr, ValidationError

from meetingbot_api import MeetingBot, Phase
from meetingbot_contract import BotReport, BotResult
from meetingbot_contract.reasons import Reason
from meetingbot_operator.keys import ReportTokens
from meetingbot_operator.kube.client import ApiError
from meetingbot_operator.kube.secrets import SecretNotAllowed, SecretUse, SecretView, usable
from meetingbot_operator.meetingbot.cache import BotRecord, parse_pod
from meetingbot_operator.meetingbot.children import bot_pod
from meetingbot_operator.meetingbot.decisions import ActionKind, Decision, Timing, decide
from meetingbot_operator.meetingbot.executor import pod_refusal
from meetingbot_operator.meetingbot.observed import Meta, Observed, PodObservation
from meetingbot_operator.meetingbot.reports import make_app
from meetingbot_operator.settings import Settings, endpoint_allowed
from meetingbot_operator.zoomaccount.state import AccountState
from tests.support.specs import meeting_bot

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
META = Meta(name="bot", namespace="ns", uid="0a1b2c3d-0000", generation=1)
READY = AccountState(True, "CredentialsVerified", "ok", ("svc@example.com",))
TIMING = Timing(unresponsive_after=timedelta(seconds=120))


def bot(status: dict[str, Any] | None = None, **spec: Any) -> MeetingBot:
    return meeting_bot(status, **{"displayName": "Bot", **spec})


def in_meeting(**extra: Any) -> dict[str, Any]:
    return {
        "phase": "InMeeting",
        "attempts": 1,
        "podName": "bot-1",
        "startedAt": (NOW - timedelta(minutes=5)).isoformat(),
        "joinedAt": (NOW - timedelta(minutes=4)).isoformat(),
        **extra,
    }


def observe(**fields: Any) -> Observed:
    fields.setdefault("last_report_at", NOW - timedelta(seconds=5))
    fields.setdefault("pod", PodObservation("bot-1", 1, "Running"))
    return Observed(now=fields.pop("now", NOW), account=READY, **fields)


def ended(reason: str) -> BotReport:
    return BotReport(attempt=1, state="Ended", reason=reason)


# --- outcomes from facts ---------------------------------------------------------------------


def test_a_sigterm_the_operator_did_not_send_is_a_disruption_and_is_retried() -> None:
    """An eviction (drain, autoscaler, preemption): the bot left saying Canceled; nobody asked
    the operator to stop it, so the attempt failed and another one follows."""
    evicted = PodObservation(
        "bot-1", 1, "Running", deleting=True, disruption="EvictionByEvictionAPI: Eviction API"
    )
    plan = decide(bot(in_meeting()), META, observe(report=ended("Canceled"), pod=evicted), TIMING)
    assert (plan.status.phase, plan.status.reason) == (Phase.PENDING, Reason.POD_DISRUPTED)
    assert "EvictionByEvictionAPI" in (plan.status.message or "")
    assert plan.status.next_attempt_at is not None


def test_a_pod_result_saying_canceled_without_a_stop_is_a_disruption() -> None:
    result = BotResult(attempt=1, reason="Canceled", message="asked to leave (SIGTERM)")
    pod = PodObservation(
        "bot-1", 1, "Succeeded", exit_code=0, termination_message=result.model_dump_json()
    )
    plan = decide(bot(in_meeting()), META, observe(pod=pod), TIMING)
    assert plan.status.reason == Reason.POD_DISRUPTED
    assert plan.status.phase == Phase.PENDING


def test_a_pod_deleted_by_someone_else_is_retried() -> None:
    gone = PodObservation("bot-1", 1, "Running", deleted=True)
    plan = decide(bot(in_meeting()), META, observe(pod=gone), TIMING)
    assert (plan.status.phase, plan.status.reason) == (Phase.PENDING, Reason.POD_DISRUPTED)


def test_the_operators_own_stop_ends_with_its_recorded_reason() -> None:
    """maxDuration lowered mid-meeting: the operator stops the bot as MaxDurationReached, and
    the bot's SIGTERM answer (Canceled) does not replace it."""
    stopped = in_meeting(
        phase="Leaving",
        stop={"attempt": 1, "reason": "MaxDurationReached", "message": "maxDurationSeconds passed"},
    )
    plan = decide(bot(stopped), META, observe(report=ended("Canceled")), TIMING)
    assert (plan.status.phase, plan.status.reason) == (Phase.SUCCEEDED, "MaxDurationReached")


def test_lowering_max_duration_stops_the_bot_with_its_own_reason() -> None:
    plan = decide(
        bot(in_meeting(), leave={"maxDurationSeconds": 60}),
        META,
        observe(report=BotReport(attempt=1, state="InMeeting")),
        TIMING,
    )
    assert plan.status.stop is not None and plan.status.stop.reason == "MaxDurationReached"
    assert plan.status.phase == Phase.LEAVING
    assert [a.kind for a in plan.actions] == [ActionKind.DELETE_POD]


def test_a_stop_from_an_earlier_attempt_does_not_count() -> None:
    status = in_meeting(attempts=2, stop={"attempt": 1, "reason": "MaxDurationReached"})
    plan = decide(
        bot(status),
        META,
        observe(report=BotReport(attempt=2, state="Ended", reason="Canceled")),
        TIMING,
    )
    assert plan.status.reason == Reason.POD_DISRUPTED


# --- liveness ----------------------------------------------------------------------------------


def test_a_bot_that_stops_reporting_is_stopped_and_retried() -> None:
    report = BotReport(attempt=1, state="InMeeting")
    fine = decide(bot(in_meeting()), META, observe(report=report), TIMING)
    assert fine.actions == [] and fine.requeue_after == pytest.approx(115)
    silent = decide(
        bot(in_meeting()),
        META,
        observe(report=report, last_report_at=NOW - timedelta(seconds=121)),
        TIMING,
    )
    assert silent.status.stop is not None and silent.status.stop.reason == "BotUnresponsive"
    assert [a.kind for a in silent.actions] == [ActionKind.DELETE_POD]
    # Then the pod goes: the attempt failed for that reason, which is worth another attempt.
    after = decide(
        bot(silent.status.model_dump(mode="json", by_alias=True)),
        META,
        observe(pod=PodObservation("bot-1", 1, deleted=True)),
        TIMING,
    )
    assert (after.status.phase, after.status.reason) == (Phase.PENDING, "BotUnresponsive")


def test_a_bot_that_hangs_while_leaving_is_stopped_too() -> None:
    leaving = BotReport(attempt=1, state="Leaving", reason="EveryoneLeft")
    plan = decide(
        bot(in_meeting(phase="Leaving")),
        META,
        observe(report=leaving, last_report_at=NOW - timedelta(seconds=121)),
        TIMING,
    )
    assert plan.status.stop is not None and plan.status.stop.reason == "BotUnresponsive"
    assert [a.kind for a in plan.actions] == [ActionKind.DELETE_POD]


def test_a_restart_does_not_count_as_silence() -> None:
    plan = decide(
        bot(in_meeting()),
        META,
        observe(last_report_at=None, operator_started=NOW - timedelta(seconds=30)),
        TIMING,
    )
    assert plan.actions == []


def test_silence_counts_from_when_this_process_first_saw_the_bot() -> None:
    """A new leader of a loaded shard can list its bots for longer than the allowance: a bot
    it has known for less than that is not silent yet, however long ago its process started
    (the bot's reports were answered "not yet" until it was seen)."""

    def known_for(seconds: int) -> Decision:
        observed = observe(
            last_report_at=None,
            operator_started=NOW - timedelta(minutes=5),
            known_since=NOW - timedelta(seconds=seconds),
        )
        return decide(bot(in_meeting()), META, observed, TIMING)

    recent = known_for(30)
    assert recent.actions == [] and recent.requeue_after == pytest.approx(90)
    silent = known_for(121)
    assert silent.status.stop is not None and silent.status.stop.reason == "BotUnresponsive"


def test_an_unschedulable_pod_says_why_then_times_out() -> None:
    starting = {
        "phase": "Starting",
        "attempts": 1,
        "podName": "bot-1",
        "startedAt": (NOW - timedelta(seconds=20)).isoformat(),
    }
    pod = PodObservation("bot-1", 1, unschedulable="0/3 nodes are available: 3 Insufficient cpu.")
    plan = decide(bot(starting, startTimeoutSeconds=60), META, observe(pod=pod), TIMING)
    assert "Unschedulable: 0/3 nodes" in (plan.status.message or "")
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "Unschedulable")]
    assert plan.requeue_after == pytest.approx(40)
    late = decide(
        bot(starting, startTimeoutSeconds=60),
        META,
        observe(pod=pod, now=NOW + timedelta(seconds=41)),
        TIMING,
    )
    assert late.status.stop is not None and late.status.stop.reason == "StartTimeout"
    assert "Insufficient cpu" in late.status.stop.message


def test_the_join_secret_goes_when_the_bot_finishes() -> None:
    plan = decide(bot(in_meeting()), META, observe(report=ended("MeetingEnded")), TIMING)
    assert plan.status.phase == Phase.SUCCEEDED
    assert ActionKind.DELETE_SECRET in [a.kind for a in plan.actions]
    # A finished bot whose Secret may still exist (after a restart) deletes it once.
    done = bot(plan.status.model_dump(mode="json", by_alias=True))
    exited = PodObservation("bot-1", 1, "Succeeded", exit_code=0)
    again = decide(done, META, observe(secret_cleaned=False, pod=exited), TIMING)
    assert [a.kind for a in again.actions] == [ActionKind.DELETE_SECRET]
    assert decide(done, META, observe(secret_cleaned=True, pod=exited), TIMING).actions == []


# --- ownership -----------------------------------------------------------------------------------


def pod_body(name: str, attempt: str, owner: str | None) -> dict[str, Any]:
    owners = [{"uid": owner, "controller": True, "kind": "MeetingBot"}] if owner else []
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "labels": {"meetingbot.dev/bot": "bot", "meetingbot.dev/attempt": attempt},
            "ownerReferences": owners,
        },
        "status": {"phase": "Running"},
    }


def test_only_the_pod_controlled_by_this_meetingbot_is_observed() -> None:
    memory = BotRecord()
    for body, owner in (
        (pod_body("bot-1", "1", "old-uid"), "old-uid"),  # a recreated bot's predecessor
        (pod_body("bot-1", "1", None), None),  # a pod that only carries the labels
    ):
        memory.pods[1] = (owner, parse_pod(body))
        assert memory.pod(META, 1) is None
    memory.pods[1] = (META.uid, parse_pod(pod_body("bot-1", "1", META.uid)))
    assert memory.pod(META, 1) is not None


def test_pod_refusals_map_to_reasons() -> None:
    def refused(status: int, message: str) -> ApiError:
        return ApiError(status, "x", json.dumps({"message": message}).encode())

    assert pod_refusal(refused(422, "Pod is invalid"))[0] == Reason.POD_SPEC_INVALID
    assert pod_refusal(refused(403, "exceeded quota: q"))[0] == Reason.POD_QUOTA_EXCEEDED
    assert pod_refusal(refused(403, 'violates PodSecurity "restricted"'))[0] == (
        Reason.POD_FORBIDDEN
    )
    assert "Pod is invalid" in pod_refusal(refused(422, "Pod is invalid"))[1]
    with pytest.raises(ApiError):
        pod_refusal(refused(500, "etcd down"))


# --- confused deputy -----------------------------------------------------------------------------


def test_secrets_are_used_only_when_opted_in_for_that_use() -> None:
    labelled = SecretView({"meetingbot.dev/secret-for": "meeting-passcode"}, {"passcode": "x"})
    assert usable(labelled, "pw", SecretUse.MEETING_PASSCODE) == {"passcode": "x"}
    with pytest.raises(SecretNotAllowed, match=r"meetingbot\.dev/secret-for=obf-token"):
        usable(labelled, "pw", SecretUse.OBF_TOKEN)
    with pytest.raises(SecretNotAllowed):
        usable(SecretView({}, {"passcode": "x"}), "db-creds", SecretUse.MEETING_PASSCODE)


def test_custom_endpoints_must_be_allowed_and_safe() -> None:
    allowed = ["http://127.0.0.1:8080", "https://zoom-proxy.example.com/zoom"]
    assert endpoint_allowed("http://127.0.0.1:8080/v2", allowed)
    assert endpoint_allowed("https://zoom-proxy.example.com/zoom/oauth/token", allowed)
    assert not endpoint_allowed("http://127.0.0.1:9999/v2", allowed)
    assert not endpoint_allowed("https://zoom-proxy.example.com/zoomish", allowed)
    assert not endpoint_allowed("http://169.254.169.254/latest", allowed)
    assert not endpoint_allowed("https://zoom.us/oauth/token", [])
    for url in ("http://10.0.0.5:8080", "http://zoom-proxy.example.com", "ftp://x"):
        with pytest.raises(ValidationError):
            Settings(allowed_endpoints=[url])
    Settings(allowed_endpoints=["http://zoomsim.sandbox.svc:8080", "http://localhost:1"])


def test_display_names_refuse_control_and_bidi_characters() -> None:
    for name in ("Note\x00taker", "Note\ttaker", "evil\u202egnp.exe", "a\u2066b"):
        with pytest.raises(ValidationError):
            bot(displayName=name)
    assert bot(displayName="Notetaker (Zoë, 記録)").spec.display_name.startswith("Notetaker")


def test_the_pod_has_a_liveness_probe_and_the_operators_sdk_setting() -> None:
    settings = Settings(bot_sdk_url="http://127.0.0.1:1/fake.js")
    pod = bot_pod(META, 1, bot().spec, settings)
    container = pod["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8090}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MEETINGBOT_SDK_URL"] == "http://127.0.0.1:1/fake.js"
    assert env["MEETINGBOT_HEALTH_PORT"] == "8090"
    assert (
        "livenessProbe"
        not in bot_pod(META, 1, bot().spec, Settings(bot_health_port=0))["spec"]["containers"][0]
    )


# --- the report endpoint -------------------------------------------------------------------------


async def test_the_report_endpoint_checks_the_token_first_and_says_nothing_of_strangers() -> None:
    tokens = ReportTokens(SecretStr("key"))
    known = {("ns", "bot"): ("uid-1", 2)}
    received: list[BotReport] = []

    def sink(namespace: str, name: str, report: BotReport) -> Any:
        received.append(report)
        return "accepted"

    warming = [False]
    app = make_app(tokens, lambda ns, name: known.get((ns, name)), sink, lambda: warming[0])
    async with TestClient(TestServer(app)) as http:
        path = "/v1/namespaces/ns/meetingbots/{}/report"

        async def post(name: str, token: str, body: str) -> tuple[int, Any]:
            response = await http.post(
                path.format(name), data=body, headers={"Authorization": f"Bearer {token}"}
            )
            return response.status, await response.json()

        good = tokens.token("ns", "bot", "uid-1", 2).get_secret_value()
        report = BotReport(attempt=2, state="InMeeting").model_dump_json(by_alias=True)
        # A wrong token and an unknown bot: the same answer, and the body is never parsed.
        assert await post("bot", "wrong", "not json") == (401, {"result": "unauthorized"})
        assert await post("nobody", "wrong", "not json") == (401, {"result": "unauthorized"})
        assert await post("nobody", good, report) == (401, {"result": "unauthorized"})
        assert received == []
        assert (await post("bot", good, report))[0] == 202
        assert (await post("bot", good, "not json"))[0] == 400
        # Attempt 1's token still names attempt 1: stale, so the old pod stops reporting.
        old = tokens.token("ns", "bot", "uid-1", 1).get_secret_value()
        stale = BotReport(attempt=1, state="InMeeting").model_dump_json(by_alias=True)
        assert (await post("bot", old, stale))[0] == 409
        # A token is good only for the attempt it was issued for.
        assert (await post("bot", old, report))[0] == 401
        assert len(received) == 1
        # A token of the attempt after the one in status (its pod was made just before a
        # restart; the status catches up): "try again", not stale. Two ahead: no such token.
        early = BotReport(attempt=3, state="Joining").model_dump_json(by_alias=True)
        third = tokens.token("ns", "bot", "uid-1", 3).get_secret_value()
        assert await post("bot", third, early) == (503, {"result": "early"})
        fourth = tokens.token("ns", "bot", "uid-1", 4).get_secret_value()
        assert (await post("bot", fourth, early))[0] == 401
        # A just-started operator that has not yet seen every bot: "try again" (503) for any
        # unknown bot, a known one as before.
        warming[0] = True
        assert await post("nobody", "wrong", "not json") == (503, {"result": "warming"})
        assert (await post("bot", good, report))[0] == 202
