"""The bot's state machine: SDK events and the clock in, state and leave decisions out.

Pure: no browser, no I/O, time passed in. States: Starting, Joining, WaitingRoom, InMeeting,
Leaving, Ended. Leave rules (a zero disables one):
- waiting room: in the waiting room longer than waitingRoomTimeoutSeconds -> WaitingRoomTimeout
- nobody joined: in the meeting, no person seen for noOneJoinedTimeoutSeconds -> NoOneJoined
- everyone left: people were there, then none for everyoneLeftTimeoutSeconds -> EveryoneLeft
- maximum duration: in the meeting longer than maxDurationSeconds -> MaxDurationReached
"People" are the other participants, minus anyone with this bot's own display name (its
sibling bots), so a room of bots counts as empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from meetingbot_contract import BotState, ExitCode, LeaveRules
from meetingbot_contract.reasons import SUCCESS, Reason, reason_for_sdk_error

# Left without doing the job: the waiting room, removal, or recording refused (capture.py).
LEFT_EARLY = {
    Reason.WAITING_ROOM_TIMEOUT,
    Reason.REMOVED_BY_HOST,
    Reason.RECORDING_DENIED,
    Reason.HOST_ABSENT,
}
# Close reasons of the real bundle that mean the host removed us ("expeled" is its spelling).
REMOVAL_WORDS = ("expeled", "expelled", "kicked", "removed")
# What the machine reads from the SDK, per source: a test checks each against the real bundle
# (tests/integration/test_real_sdk.py), so an SDK upgrade that renames one shows up there.
READ_FIELDS: dict[str, tuple[str, ...]] = {
    "connection-change": ("state", "reason", "errorCode"),
    "roster events (user-added, user-updated, user-removed)": ("userId", "displayName", "bHold"),
    "getCurrentUser() / getAttendeeslist()": ("userId", "displayName", "isHold"),
}
CONNECTION_STATES = ("Connected", "Closed", "Fail")
# OBF: Zoom removes the bot when the user who authorized it leaves (the bundle's 4019 reason).
OBF_MASTER_LEFT = "master leaving"


def exit_code_for(reason: str) -> ExitCode:
    if reason in SUCCESS:
        return ExitCode.LEFT
    if reason in LEFT_EARLY:
        return ExitCode.LEFT_EARLY
    if reason in (Reason.BOT_CRASHED, Reason.OOM_KILLED):
        return ExitCode.BROWSER_FAILED
    return ExitCode.JOIN_FAILED


@dataclass
class Machine:
    rules: LeaveRules
    display_name: str
    state: BotState = BotState.STARTING
    reason: str | None = None
    message: str | None = None
    joined_at: datetime | None = None
    left_at: datetime | None = None
    me: str | None = None  # our own participant id
    entered_at: datetime | None = None  # when the current state began
    people_seen: bool = False
    alone_since: datetime | None = None
    attendees: dict[str, dict[str, Any]] = field(default_factory=dict)

    # --- transitions driven by the runner ---------------------------------------------------

    def joining(self, now: datetime) -> None:
        self._enter(BotState.JOINING, now)

    def joined(
        self, current_user: dict[str, Any], attendees: list[dict[str, Any]], now: datetime
    ) -> None:
        self.me = str(current_user.get("userId"))
        for person in attendees:
            self.attendees[str(person.get("userId"))] = person
        if _on_hold(current_user):
            self._enter(BotState.WAITING_ROOM, now)
        else:
            self._admitted(now)

    def join_failed(self, code: int, reason: str, now: datetime) -> None:
        self._end(reason_for_sdk_error(code), f"Zoom error {code}: {reason}", now)

    def crashed(self, message: str, now: datetime, oom_kills: int = 0) -> None:
        """The browser or the page failed; `oom_kills` is how many of the container's
        processes the kernel killed for memory since the bot started (oom.py)."""
        if oom_kills > 0:
            self._end(
                Reason.OOM_KILLED,
                f"the kernel killed {oom_kills} of the bot's processes for memory ({message}); "
                "raise spec.podTemplate.resources.limits.memory",
                now,
            )
        else:
            self._end(Reason.BOT_CRASHED, message, now)

    def sigterm(self, now: datetime) -> None:
        self.leave(Reason.CANCELED, "asked to leave (SIGTERM)", now)

    def leave(self, reason: str, message: str, now: datetime) -> None:
        if self.state in (BotState.LEAVING, BotState.ENDED):
            return
        self.reason, self.message = reason, message
        self._enter(BotState.LEAVING, now)

    def left(self, now: datetime) -> None:
        """The SDK confirmed the leave the bot asked for."""
        self._end(self.reason or Reason.CANCELED, self.message or "left", now)

    # --- SDK events --------------------------------------------------------------------------

    def event(self, name: str, payload: Any, now: datetime) -> None:
        if self.state == BotState.ENDED:
            return
        if name == "connection-change" and isinstance(payload, dict):
            self._connection(payload, now)
        elif name in ("user-added", "user-updated", "user-removed") and isinstance(payload, list):
            for person in payload:
                key = str(person.get("userId"))
                if name == "user-removed":
                    self.attendees.pop(key, None)
                else:
                    self.attendees[key] = person
                if key == self.me and name == "user-updated":
                    if _on_hold(person) and self.state == BotState.IN_MEETING:
                        self._enter(BotState.WAITING_ROOM, now)  # put back in the waiting room
                    elif not _on_hold(person) and self.state == BotState.WAITING_ROOM:
                        self._admitted(now)
            self._count_people(now)

    def _connection(self, payload: dict[str, Any], now: datetime) -> None:
        state = payload.get("state")
        reason = str(payload.get("reason") or "")
        if state == "Closed":
            if self.state == BotState.LEAVING:
                self.left(now)
            elif OBF_MASTER_LEFT in reason:
                self._end(
                    Reason.AUTHORIZING_USER_LEFT, "the authorizing user left (Zoom 4019)", now
                )
            elif any(word in reason for word in REMOVAL_WORDS):
                self._end(Reason.REMOVED_BY_HOST, f"removed by the host ({reason})", now)
            else:
                self._end(Reason.MEETING_ENDED, f"the meeting ended ({reason or 'closed'})", now)
        elif state == "Fail":
            code = int(payload.get("errorCode") or 0)
            self._end(reason_for_sdk_error(code), f"Zoom error {code}: {reason}", now)

    # --- the clock ----------------------------------------------------------------------------

    def tick(self, now: datetime) -> None:
        """Apply the leave rules; the runner leaves the meeting when the state is Leaving."""
        rules, since = self.rules, self.entered_at or now
        if self.state == BotState.WAITING_ROOM and _over(
            rules.waiting_room_timeout_seconds, since, now
        ):
            self.leave(
                Reason.WAITING_ROOM_TIMEOUT, "not admitted from the waiting room in time", now
            )
        elif self.state == BotState.IN_MEETING:
            assert self.joined_at is not None
            if _over(rules.max_duration_seconds, self.joined_at, now):
                self.leave(Reason.MAX_DURATION_REACHED, "maxDurationSeconds reached", now)
            elif not self.people_seen and _over(
                rules.no_one_joined_timeout_seconds, self.joined_at, now
            ):
                self.leave(Reason.NO_ONE_JOINED, "nobody joined", now)
            elif (
                self.people_seen
                and self.alone_since
                and _over(rules.everyone_left_timeout_seconds, self.alone_since, now)
            ):
                self.leave(Reason.EVERYONE_LEFT, "everyone else left", now)

    def people(self) -> list[dict[str, Any]]:
        return [
            p
            for key, p in self.attendees.items()
            if key != self.me and p.get("displayName") != self.display_name and not _on_hold(p)
        ]

    def _count_people(self, now: datetime) -> None:
        if self.state != BotState.IN_MEETING:
            return
        if self.people():
            self.people_seen = True
            self.alone_since = None
        elif self.people_seen and self.alone_since is None:
            self.alone_since = now

    def _admitted(self, now: datetime) -> None:
        self.joined_at = self.joined_at or now
        self._enter(BotState.IN_MEETING, now)
        self._count_people(now)

    def _enter(self, state: BotState, now: datetime) -> None:
        self.state = state
        self.entered_at = now

    def _end(self, reason: str, message: str, now: datetime) -> None:
        self.reason, self.message = reason, message
        self.left_at = now if self.joined_at else None
        self._enter(BotState.ENDED, now)

    @property
    def exit_code(self) -> ExitCode:
        return exit_code_for(self.reason or Reason.BOT_CRASHED)


def _over(limit_seconds: int, since: datetime, now: datetime) -> bool:
    return limit_seconds > 0 and now - since >= timedelta(seconds=limit_seconds)


def _on_hold(user: dict[str, Any]) -> bool:
    """In the waiting room: roster events' raw user objects say `bHold`; getCurrentUser() and
    getAttendeeslist() add the alias `isHold` (the .d.ts declares only that one)."""
    return bool(user.get("bHold", user.get("isHold")))
