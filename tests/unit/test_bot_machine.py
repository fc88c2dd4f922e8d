"""The bot's state machine and leave rules, driven by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from meetingbot_bot.machine import Machine, exit_code_for
from meetingbot_bot.oom import OomWatch, oom_kills
from meetingbot_contract import BotState, ExitCode, LeaveRules

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RULES = LeaveRules.model_validate(
    {
        "waitingRoomTimeoutSeconds": 60,
        "noOneJoinedTimeoutSeconds": 120,
        "everyoneLeftTimeoutSeconds": 30,
        "maxDurationSeconds": 3600,
    }
)
ME = {"userId": 1, "displayName": "Bot", "isHold": False}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def joined(attendees: list[dict[str, object]] | None = None, hold: bool = False) -> Machine:
    machine = Machine(RULES, "Bot")
    machine.joining(T0)
    machine.joined({**ME, "isHold": hold}, attendees or [], T0)
    return machine


def test_join_then_meeting_end() -> None:
    machine = joined()
    assert machine.state == BotState.IN_MEETING and machine.joined_at == T0
    machine.event("connection-change", {"state": "Closed", "reason": "ended by host"}, at(5))
    assert (machine.state, machine.reason, machine.exit_code) == (
        BotState.ENDED,
        "MeetingEnded",
        ExitCode.LEFT,
    )
    assert machine.left_at == at(5)


def test_removed_by_host() -> None:
    machine = joined()
    machine.event("connection-change", {"state": "Closed", "reason": "kicked by host"}, at(5))
    assert (machine.reason, machine.exit_code) == ("RemovedByHost", ExitCode.LEFT_EARLY)
    expelled = joined()
    expelled.event("connection-change", {"state": "Closed", "reason": "expeled by host"}, at(5))
    assert expelled.reason == "RemovedByHost"  # the bundle's spelling


def test_obf_bot_removed_because_its_authorizing_user_left_succeeds() -> None:
    machine = joined()
    reason = "bot user kicked due to master leaving"  # the bundle's reason for 4019
    machine.event("connection-change", {"state": "Closed", "reason": reason}, at(5))
    assert (machine.reason, machine.exit_code) == ("AuthorizingUserLeft", ExitCode.LEFT)
    assert exit_code_for("AuthorizingUserLeft") == ExitCode.LEFT


def test_waiting_room_admission_and_timeout() -> None:
    machine = joined(hold=True)
    assert machine.state == BotState.WAITING_ROOM
    machine.event("user-updated", [{**ME, "bHold": False}], at(10))
    # (mypy keeps the narrowing of the assert above across the call that changes the state)
    assert machine.state == BotState.IN_MEETING  # type: ignore[comparison-overlap]
    assert machine.joined_at == at(10)
    stuck = joined(hold=True)
    stuck.tick(at(59))
    assert stuck.state == BotState.WAITING_ROOM
    stuck.tick(at(60))
    assert (stuck.state, stuck.reason) == (BotState.LEAVING, "WaitingRoomTimeout")
    stuck.left(at(61))
    assert (stuck.state, stuck.exit_code) == (BotState.ENDED, ExitCode.LEFT_EARLY)


def test_nobody_joined() -> None:
    machine = joined()
    machine.tick(at(119))
    assert machine.state == BotState.IN_MEETING
    machine.tick(at(120))
    assert machine.reason == "NoOneJoined"


def test_everyone_left_and_bots_do_not_count() -> None:
    machine = joined([{"userId": 2, "displayName": "Bot"}])  # a sibling bot
    machine.tick(at(121))
    assert machine.reason == "NoOneJoined"
    machine = joined([{"userId": 3, "displayName": "Dana"}])
    assert machine.people_seen
    machine.event("user-removed", [{"userId": 3}], at(100))
    machine.tick(at(129))
    assert machine.state == BotState.IN_MEETING
    machine.event("user-added", [{"userId": 4, "displayName": "Eve"}], at(120))
    machine.tick(at(140))
    assert machine.state == BotState.IN_MEETING  # someone came back: the clock restarted
    machine.event("user-removed", [{"userId": 4}], at(200))
    machine.tick(at(230))
    assert (machine.state, machine.reason) == (BotState.LEAVING, "EveryoneLeft")


def test_max_duration() -> None:
    machine = joined([{"userId": 3, "displayName": "Dana"}])
    machine.tick(at(3600))
    assert machine.reason == "MaxDurationReached"
    assert exit_code_for("MaxDurationReached") == ExitCode.LEFT


def test_sigterm_leaves_and_the_close_that_follows_is_ours() -> None:
    machine = joined()
    machine.sigterm(at(3))
    assert (machine.state, machine.reason) == (BotState.LEAVING, "Canceled")
    machine.event("connection-change", {"state": "Closed", "reason": "leave meeting"}, at(4))
    assert (machine.state, machine.reason, machine.exit_code) == (
        BotState.ENDED,
        "Canceled",
        ExitCode.LEFT,
    )


def test_join_failure_and_fail_events_map_zoom_codes() -> None:
    machine = Machine(RULES, "Bot")
    machine.join_failed(3004, "Wrong meeting passcode.", T0)
    assert (machine.reason, machine.exit_code) == ("WrongPasscode", ExitCode.JOIN_FAILED)
    assert machine.left_at is None
    machine = joined()
    machine.event(
        "connection-change", {"state": "Fail", "errorCode": 3634, "reason": "recaptcha"}, at(1)
    )
    assert machine.reason == "BlockedByZoom"


def test_zero_disables_a_rule() -> None:
    rules = LeaveRules.model_validate(
        {
            "waitingRoomTimeoutSeconds": 0,
            "noOneJoinedTimeoutSeconds": 0,
            "everyoneLeftTimeoutSeconds": 0,
        }
    )
    machine = Machine(rules, "Bot")
    machine.joined({**ME, "isHold": True}, [], T0)
    machine.tick(at(10**6))
    assert machine.state == BotState.WAITING_ROOM


def test_crash_is_its_own_exit_code() -> None:
    machine = joined()
    machine.crashed("page crashed", at(1))
    assert (machine.reason, machine.exit_code) == ("BotCrashed", ExitCode.BROWSER_FAILED)


def test_a_browser_killed_for_memory_is_oomkilled_and_says_what_to_raise() -> None:
    machine = joined()
    machine.crashed("browser failed: CdpError", at(1), oom_kills=1)
    assert (machine.reason, machine.exit_code) == ("OOMKilled", ExitCode.BROWSER_FAILED)
    assert "memory" in (machine.message or "") and "limits.memory" in (machine.message or "")


def test_the_oom_counter_is_read_from_cgroup_v1_or_v2_and_counts_from_the_start(
    tmp_path: Path,
) -> None:
    v2, v1 = tmp_path / "memory.events", tmp_path / "memory.oom_control"
    v1.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert oom_kills((v2, v1)) == 2
    v2.write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n")
    assert oom_kills((v2, v1)) == 1  # v2 first: a v1 file there would be a stale mount
    watch = OomWatch((v2, v1))
    assert watch.killed_since_start() == 0
    v2.write_text("oom 3\noom_kill 3\n")
    assert watch.killed_since_start() == 2
    assert oom_kills((tmp_path / "absent",)) is None
    assert OomWatch((tmp_path / "absent",)).killed_since_start() == 0


def test_the_waiting_room_follows_the_roster_events_bhold_both_ways() -> None:
    """Roster events carry raw user objects (bHold, as the real bundle sends them): an update
    about something else does not admit the bot, and being put back is noticed."""
    machine = joined(hold=True)
    machine.event("user-updated", [{**ME, "isHold": None, "bHold": True, "muted": True}], at(5))
    assert machine.state == BotState.WAITING_ROOM
    machine.event("user-updated", [{"userId": 1, "displayName": "Bot", "bHold": False}], at(6))
    assert machine.state == BotState.IN_MEETING  # type: ignore[comparison-overlap]
    machine.event("user-updated", [{"userId": 1, "displayName": "Bot", "bHold": True}], at(7))
    assert machine.state == BotState.WAITING_ROOM
