"""What the bot keeps of the meeting, and when it may keep it: the consent rules, the speaker
timeline, participants, captions, chat, and the page's audio segments, all written to the
spool. It decides; the runner carries out what it asks (`Command`s) on the page.

One clock: every line and every segment is stamped in milliseconds since the epoch by the host
clock (the page's Date.now() for audio, this process's time for events: the same clock).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from meetingbot_bot.spool import Spool
from meetingbot_contract import (
    ArtifactKind,
    CaptureConfig,
    CaptureReport,
    EventLine,
    OnDenied,
    RecordingState,
)

log = logging.getLogger(__name__)
# Captions are said to be off once people spoke this long without a single caption.
CAPTIONS_PATIENCE_MS = 60_000


class Command(StrEnum):
    ASK_PERMISSION = "ask-permission"
    START_RECORDING = "start-recording"
    STOP_RECORDING = "stop-recording"
    ANNOUNCE = "announce"
    LEAVE_DENIED = "leave-denied"
    LEAVE_HOST_ABSENT = "leave-host-absent"


@dataclass
class Capture:
    config: CaptureConfig
    spool: Spool
    self_id: str = ""
    recording: RecordingState = RecordingState.OFF
    keeping_events: bool = False
    # The page's recorder runs (from START_RECORDING until the runner has its last segment):
    # segments are kept while it does, the one in progress at a stop included.
    recorder_on: bool = False
    audio_sources: int = 0
    captions: bool | None = None
    _lines: list[EventLine] = field(default_factory=list)
    _events_sequence: int = 0
    _window_start: int = 0
    _speaking: dict[str, tuple[str, int]] = field(default_factory=dict)
    _first_speech_ms: int | None = None
    _host_ids: set[str] = field(default_factory=set)
    _present: dict[str, str] = field(default_factory=dict)  # userId -> name, the bot excepted
    _said_silent: bool | None = False  # None once audio was found
    # Each event line as it is kept, and the moment someone starts speaking: the live stream's
    # (None: no stream).
    on_line: Callable[[EventLine], None] | None = None

    # --- the meeting ------------------------------------------------------------------------

    def joined(self, self_id: str, people: list[dict[str, Any]], now_ms: int) -> list[Command]:
        self.self_id = self_id
        self._window_start = now_ms
        for person in people:
            self._roster("user-added", person, now_ms, quiet=True)
        commands = [Command.ANNOUNCE] if self.config.announcement else []
        if self.config.ask_permission:
            self.recording = RecordingState.WAITING
            commands.append(Command.ASK_PERMISSION)
        else:
            commands += self._granted(now_ms)
        return commands

    def event(self, name: str, payload: Any, now_ms: int) -> list[Command]:
        if name == "media-capture-permission-change" and isinstance(payload, dict):
            if payload.get("canRecord") is True:
                return self._granted(now_ms)
            if payload.get("canRecord") is False:
                return self._denied(now_ms)
        elif name == "active-speaker" and isinstance(payload, list):
            self._speakers(payload, now_ms)
        elif name == "caption-message" and isinstance(payload, dict):
            if payload.get("done"):
                self.captions = True
                self._keep(
                    EventLine(
                        t=now_ms,
                        type="caption",
                        user_id=str(payload.get("userId", "")),
                        name=str(payload.get("displayName", "")),
                        text=str(payload.get("text", "")),
                    )
                )
        elif name == "chat-on-message" and isinstance(payload, dict):
            sender = payload.get("sender") or {}
            receiver = payload.get("receiver") or {}
            self._keep(
                EventLine(
                    t=now_ms,
                    type="chat",
                    user_id=str(sender.get("userId", "")),
                    name=str(sender.get("name", "")),
                    text=str(payload.get("message", "")),
                    to=str(receiver.get("name", "")) or None,
                )
            )
        elif name in ("user-added", "user-updated", "user-removed") and isinstance(payload, list):
            commands: list[Command] = []
            for person in payload:
                if isinstance(person, dict) and self._roster(name, person, now_ms):
                    commands = self._host_arrived(now_ms)
            return commands
        return []

    def segment(self, payload: dict[str, Any]) -> bool:
        """An audio segment from the page; kept if recording is allowed."""
        sources = payload.get("sources") or {}
        self.audio_sources = sum(int(v) for v in sources.values() if isinstance(v, int))
        if not self.audio_sources and not self._said_silent:
            # Recorded on regardless (a meeting may be silent so far), and said once.
            self._said_silent = True
            log.warning("no capture hook has found the meeting's audio yet", extra=sources)
        elif self.audio_sources and self._said_silent is not None:
            log.info("audio found", extra=sources)
            self._said_silent = None
        if not self.recorder_on:
            return False
        try:
            data = base64.b64decode(str(payload["data"]), validate=True)
            self.spool.write(
                ArtifactKind.AUDIO,
                int(payload["sequence"]),
                data,
                int(payload["startMs"]),
                int(payload["endMs"]),
            )
        except (KeyError, ValueError, binascii.Error, OSError) as error:
            log.warning("an audio segment was not kept", extra={"error": type(error).__name__})
            return False
        return True

    def tick(self, now_ms: int) -> bool:
        """Once a second: cut the events file at each segment boundary; whether a file was
        written (the uploader has work)."""
        if (
            self.captions is None
            and self._first_speech_ms is not None
            and now_ms - self._first_speech_ms > CAPTIONS_PATIENCE_MS
        ):
            self.captions = False
            self._keep(EventLine(t=now_ms, type="captions", state="Unavailable"))
            log.info("no captions: the host's account may not allow them")
        if now_ms - self._window_start >= self.config.segment_seconds * 1000:
            return self.flush(now_ms)
        return False

    def leaving(self, now_ms: int) -> list[Command]:
        for user_id in list(self._speaking):
            self._close_speech(user_id, now_ms)
        commands = [Command.STOP_RECORDING] if self.recording == RecordingState.RECORDING else []
        if self.recording == RecordingState.RECORDING:
            self._keep(EventLine(t=now_ms, type="recording", state="Stopped"))
            self.recording = RecordingState.OFF
        return commands

    def flush(self, now_ms: int) -> bool:
        """Write the events gathered since the last cut as one file."""
        start, self._window_start = self._window_start, now_ms
        if not self._lines:
            return False
        lines, self._lines = self._lines, []
        self._events_sequence += 1
        data = "".join(line.line() + "\n" for line in lines).encode()
        try:
            self.spool.write(ArtifactKind.EVENTS, self._events_sequence, data, start, now_ms)
        except OSError as error:
            log.warning("an events file was not kept", extra={"error": type(error).__name__})
            return False
        return True

    def report(self, delivered: int, pending: int, pending_bytes: int) -> CaptureReport:
        return CaptureReport(
            recording=self.recording,
            captions=self.captions,
            audio_sources=self.audio_sources,
            delivered=delivered,
            pending=pending,
            pending_bytes=pending_bytes,
        )

    # --- consent ----------------------------------------------------------------------------

    def _keep_events(self, now_ms: int) -> None:
        """Events are kept from now on: first, who is here already."""
        if self.keeping_events or not self.config.events:
            return
        self.keeping_events = True
        for user_id, name in self._present.items():
            self._keep(EventLine(t=now_ms, type="join", user_id=user_id, name=name))

    def _granted(self, now_ms: int) -> list[Command]:
        self._keep_events(now_ms)
        if not self.config.audio:
            self.recording = RecordingState.OFF
            return []
        if self.recording == RecordingState.RECORDING:
            return []
        self.recording = RecordingState.RECORDING
        self.recorder_on = True
        self._keep(EventLine(t=now_ms, type="recording", state="Started"))
        return [Command.START_RECORDING]

    def _denied(self, now_ms: int) -> list[Command]:
        absent = not self._host_ids
        state = RecordingState.HOST_ABSENT if absent else RecordingState.DENIED
        was_recording = self.recording == RecordingState.RECORDING
        self.recording = state
        policy = self.config.on_denied
        if policy == OnDenied.EVENTS_ONLY:
            self._keep_events(now_ms)
        else:
            self.keeping_events = False
        self._keep(EventLine(t=now_ms, type="recording", state=state.value), always=True)
        log.info("recording not allowed", extra={"state": state.value, "policy": policy.value})
        commands = [Command.STOP_RECORDING] if was_recording else []
        if policy == OnDenied.LEAVE:
            commands.append(Command.LEAVE_HOST_ABSENT if absent else Command.LEAVE_DENIED)
        return commands

    def _host_arrived(self, now_ms: int) -> list[Command]:
        """A host joined while recording was not allowed: with Wait, ask again."""
        if self.config.on_denied == OnDenied.WAIT and self.recording in (
            RecordingState.DENIED,
            RecordingState.HOST_ABSENT,
        ):
            self.recording = RecordingState.WAITING
            return [Command.ASK_PERMISSION]
        return []

    # --- events -----------------------------------------------------------------------------

    def _roster(self, name: str, person: dict[str, Any], now_ms: int, quiet: bool = False) -> bool:
        """Joins and leaves; whether a host arrived."""
        user_id = str(person.get("userId", ""))
        if not user_id or user_id == self.self_id:
            return False
        display = str(person.get("displayName", ""))
        host = bool(person.get("isHost"))
        if name == "user-removed":
            self._host_ids.discard(user_id)
            self._present.pop(user_id, None)
            self._close_speech(user_id, now_ms)
            self._keep(EventLine(t=now_ms, type="leave", user_id=user_id, name=display))
            return False
        new_host = host and user_id not in self._host_ids
        if host:
            self._host_ids.add(user_id)
        if user_id not in self._present:
            self._keep(EventLine(t=now_ms, type="join", user_id=user_id, name=display))
        self._present[user_id] = display
        return new_host and not quiet

    def _speakers(self, payload: list[Any], now_ms: int) -> None:
        now_speaking = {
            str(p.get("userId")): str(p.get("displayName") or "")
            for p in payload
            if isinstance(p, dict) and p.get("userId") is not None
        }
        for user_id in list(self._speaking):
            if user_id not in now_speaking:
                self._close_speech(user_id, now_ms)
        for user_id, name in now_speaking.items():
            if user_id not in self._speaking:
                self._speaking[user_id] = (name, now_ms)
                if self.on_line is not None and self.keeping_events:
                    self.on_line(EventLine(t=now_ms, type="speaking", user_id=user_id, name=name))
                if self._first_speech_ms is None:
                    self._first_speech_ms = now_ms

    def _close_speech(self, user_id: str, now_ms: int) -> None:
        opened = self._speaking.pop(user_id, None)
        if opened is None:
            return
        name, start = opened
        self._keep(
            EventLine(
                t=now_ms, type="speech", user_id=user_id, name=name, start_ms=start, end_ms=now_ms
            )
        )

    def _keep(self, line: EventLine, *, always: bool = False) -> None:
        # Nothing is kept before consent (or with events off), except the consent's own lines.
        if self.keeping_events or (always and self.config.events):
            self._lines.append(line)
            if self.on_line is not None:
                self.on_line(line)
