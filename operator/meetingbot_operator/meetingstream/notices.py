"""Zoom's RTMS webhooks, read and routed (pure): which stream started or stopped, and which
MeetingStream it belongs to.

A stream goes to one MeetingStream only: Zoom lets one app connection hold a stream (a second
one takes it over), so two receivers would only steal it from each other. Of the MeetingStreams
whose own app Secret verified the webhook, the one already listing the stream keeps it (Zoom
retries a webhook it thinks was lost); else the oldest one naming the meeting; else the oldest
one naming no meeting. Oldest by creation, then namespace and name: every replica picks the
same one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

STARTED_EVENTS = ("meeting.rtms_started",)
STOPPED_EVENTS = ("meeting.rtms_stopped",)
Key = tuple[str, str]


@dataclass(frozen=True)
class RtmsNotice:
    event: Literal["started", "stopped"]
    stream_id: str
    meeting_uuid: str
    meeting_number: str | None
    server_urls: str
    stop_reason: int | None


@dataclass(frozen=True)
class Receiver:
    """What routing needs to know of one MeetingStream."""

    key: Key
    created: str  # metadata.creationTimestamp (RFC 3339 sorts as text)
    meeting_number: str | None
    open: bool  # may take a new stream: not finished, not canceled, nothing streaming now
    streams: frozenset[str]  # stream ids its status lists


class BadNotice(ValueError):
    """Signed, but not an RTMS event we can read."""


def parse(event: dict[str, Any]) -> RtmsNotice | None:
    """The RTMS notice in a verified webhook body; None for events of other kinds."""
    name = event.get("event")
    if name not in STARTED_EVENTS + STOPPED_EVENTS:
        return None
    payload = event.get("payload")
    if not isinstance(payload, dict):
        raise BadNotice("no payload")
    stream_id = str(payload.get("rtms_stream_id") or "")
    meeting_uuid = str(payload.get("meeting_uuid") or "")
    if not stream_id or not meeting_uuid or len(stream_id) > 128 or len(meeting_uuid) > 128:
        raise BadNotice("no rtms_stream_id or meeting_uuid")
    number = payload.get("meeting_id")
    server_urls = str(payload.get("server_urls") or "")
    started = name in STARTED_EVENTS
    if started and not server_urls.startswith(("wss://", "ws://")):
        raise BadNotice("no signaling server in server_urls")
    reason = payload.get("stop_reason")
    return RtmsNotice(
        event="started" if started else "stopped",
        stream_id=stream_id,
        meeting_uuid=meeting_uuid,
        meeting_number=str(number) if isinstance(number, int | str) and str(number) else None,
        server_urls=server_urls,
        stop_reason=int(reason) if isinstance(reason, int) else None,
    )


def recipient(notice: RtmsNotice, verified: list[Receiver]) -> Key | None:
    """The one MeetingStream the notice is for, among those whose app verified it."""
    holding = [r for r in verified if notice.stream_id in r.streams]
    if holding:
        return _oldest(holding).key
    if notice.event == "stopped":
        return None  # a stream nobody took
    naming = [r for r in verified if r.open and r.meeting_number == notice.meeting_number]
    if naming:
        return _oldest(naming).key
    named = {r.meeting_number for r in verified}
    if notice.meeting_number in named:
        return None  # the meeting's own MeetingStream is busy or done: not a catch-all's
    catch_all = [r for r in verified if r.open and r.meeting_number is None]
    return _oldest(catch_all).key if catch_all else None


def _oldest(receivers: list[Receiver]) -> Receiver:
    return min(receivers, key=lambda r: (r.created, r.key))
