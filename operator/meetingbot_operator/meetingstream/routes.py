"""Which MeetingStreams a webhook can be for, found without walking them all.

A webhook is verified against each app Secret the MeetingStreams name, and routed among the
MeetingStreams of the apps that verified it which name its meeting, name no meeting, or already
list its stream (notices.recipient chooses among those). Walking every MeetingStream for every
webhook made a burst quadratic: with 1000 streams starting together, 10 % of the operator's
CPU and a share of Zoom's 3 s for each answer (docs/benchmarks.md, "RTMS"). This index keeps,
per MeetingStream, its app Secret, its meeting and the stream ids its status lists, updated
wherever the service takes a new version of one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from meetingbot_api import MeetingStream
from meetingbot_operator.meetingstream.notices import Key

AppRef = tuple[str, str]  # the app Secret: namespace, name
T = TypeVar("T")
_Entry = tuple[AppRef, str | None, frozenset[str]]  # app, meeting number (None: any), streams


class StreamRoutes:
    def __init__(self) -> None:
        self._entries: dict[Key, _Entry] = {}
        self._by_app: dict[AppRef, set[Key]] = {}
        self._by_meeting: dict[str | None, set[Key]] = {}
        self._by_stream: dict[str, set[Key]] = {}

    def hold(self, key: Key, stream: MeetingStream | None) -> None:
        """The MeetingStream as the service now knows it (None: gone)."""
        entry = None if stream is None else _entry(key, stream)
        before = self._entries.get(key)
        if entry == before:
            return
        if before is not None:
            del self._entries[key]
            app, meeting, streams = before
            _drop(self._by_app, app, key)
            _drop(self._by_meeting, meeting, key)
            for stream_id in streams:
                _drop(self._by_stream, stream_id, key)
        if entry is not None:
            self._entries[key] = entry
            app, meeting, streams = entry
            self._by_app.setdefault(app, set()).add(key)
            self._by_meeting.setdefault(meeting, set()).add(key)
            for stream_id in streams:
                self._by_stream.setdefault(stream_id, set()).add(key)

    def apps(self) -> list[AppRef]:
        """Every app Secret a MeetingStream names, each once."""
        return list(self._by_app)

    def candidates(
        self, meeting_number: str | None, stream_id: str, apps: Iterable[AppRef]
    ) -> set[Key]:
        """The MeetingStreams of these apps that name the meeting, name none, or list the
        stream."""
        allowed = set(apps)
        found = set(self._by_meeting.get(None, ()))
        if meeting_number is not None:
            found |= self._by_meeting.get(meeting_number, set())
        found |= self._by_stream.get(stream_id, set())
        return {key for key in found if self._entries[key][0] in allowed}


def _entry(key: Key, stream: MeetingStream) -> _Entry:
    meeting = stream.spec.meeting
    return (
        (key[0], stream.spec.app_credentials_secret_ref.name),
        meeting.number if meeting is not None else None,
        frozenset(s.stream_id for s in stream.status.streams),
    )


def _drop(index: dict[T, set[Key]], value: T, key: Key) -> None:
    keys = index.get(value)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[value]
