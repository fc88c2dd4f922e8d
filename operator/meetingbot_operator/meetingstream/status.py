"""A MeetingStream's status, as each input changes it (pure): created, a stream started, a
stream stopped. Each returns the whole new status; the service writes it."""

from __future__ import annotations

from datetime import datetime

from meetingbot_api import (
    MAX_LISTED_STREAMS,
    ArtifactsStatus,
    MeetingStream,
    MeetingStreamStatus,
    StreamPhase,
    StreamSession,
)
from meetingbot_contract import Reason
from meetingbot_operator.conditions import Progress, progress, set_condition
from meetingbot_operator.meetingstream.notices import RtmsNotice

STOP_BC_MEETING_ENDED = 6  # Zoom's RTMS_STOP_REASON for a meeting that ended


def waiting(stream: MeetingStream, now: datetime, note: str = "") -> MeetingStreamStatus:
    """Waiting for a stream; `note` says what the operator did to get one (start: Api)."""
    if stream.status.phase not in (None, StreamPhase.WAITING):
        return stream.status  # a webhook got there first
    meeting = stream.spec.meeting
    what = f"meeting {meeting.number}" if meeting else "any meeting its app is sent"
    message = f"waiting for Zoom to start a stream of {what} (meeting.rtms_started)"
    return _phase(
        stream,
        stream.status,
        StreamPhase.WAITING,
        Reason.WAITING_FOR_STREAM,
        f"{message}; {note}" if note else message,
        now,
    )


def started(stream: MeetingStream, notice: RtmsNotice, now: datetime) -> MeetingStreamStatus:
    """Zoom started a stream (or told of it again: then nothing changes)."""
    status = stream.status
    if any(s.stream_id == notice.stream_id for s in status.streams):
        return status
    index = status.streams[-1].index + 1 if status.streams else 1
    session = StreamSession(
        stream_id=notice.stream_id,
        index=index,
        meeting_number=notice.meeting_number,
        meeting_uuid=notice.meeting_uuid,
        server_urls=notice.server_urls,
        started_at=now,
    )
    streams = [*status.streams, session][-MAX_LISTED_STREAMS:]
    status = status.model_copy(update={"streams": streams})
    return _phase(
        stream,
        status,
        StreamPhase.STARTING,
        Reason.STREAM_STARTED,
        f"Zoom started stream {notice.stream_id} of meeting {notice.meeting_number or '?'}; "
        "a stream worker connects",
        now,
    )


def stopped(stream: MeetingStream, notice: RtmsNotice, now: datetime) -> MeetingStreamStatus:
    status = stream.status
    streams = [
        s.model_copy(update={"ended_at": s.ended_at or now, "stop_reason": notice.stop_reason})
        if s.stream_id == notice.stream_id
        else s
        for s in status.streams
    ]
    status = status.model_copy(update={"streams": streams})
    ended = notice.stop_reason == STOP_BC_MEETING_ENDED
    reason = Reason.MEETING_ENDED if ended else Reason.STREAM_STOPPED
    message = f"Zoom stopped stream {notice.stream_id} (stop reason {notice.stop_reason})"
    if stream.spec.meeting is None:
        # A catch-all waits for the app's next stream.
        return _phase(stream, status, StreamPhase.WAITING, reason, message, now)
    status = status.model_copy(update={"completion_time": status.completion_time or now})
    return _phase(stream, status, StreamPhase.SUCCEEDED, reason, message, now)


# The changes below take (stream, now) first, the rest by keyword (functools.partial).


def given(
    stream: MeetingStream, now: datetime, *, index: int, worker: str, generation: int
) -> MeetingStreamStatus:
    """A stream worker was given the stream (first, or taking it over)."""
    del now
    return _update_session(stream.status, index, worker=worker, generation=generation)


def connected(
    stream: MeetingStream, now: datetime, *, index: int, worker: str
) -> MeetingStreamStatus:
    """The worker holding the stream has both sockets up: Streaming (once; a stream Zoom
    already stopped stays where it is)."""
    status = stream.status
    session = next((s for s in status.streams if s.index == index), None)
    if session is None or session.ended_at is not None or status.phase != StreamPhase.STARTING:
        return status
    return _phase(
        stream,
        status,
        StreamPhase.STREAMING,
        Reason.STREAM_CONNECTED,
        f"stream worker {worker} receives stream {session.stream_id}",
        now,
    )


def failed(
    stream: MeetingStream, now: datetime, *, index: int, error: str, bad_signature: bool
) -> MeetingStreamStatus:
    """The worker could not receive the stream for good (Zoom refused the handshake, or the
    stream could not be reached again within Zoom's window). A bad signature means the app
    Secret's clientSecret is wrong: every stream would fail the same way."""
    status = stream.status
    session = next((s for s in status.streams if s.index == index), None)
    if session is None or status.phase in (StreamPhase.SUCCEEDED, StreamPhase.FAILED):
        return status
    reason = Reason.SIGNATURE_INVALID if bad_signature else Reason.STREAM_LOST
    message = f"stream {session.stream_id}: {error}"
    status = _update_session(status, index, ended_at=session.ended_at or now)
    if stream.spec.meeting is None and not bad_signature:
        return _phase(stream, status, StreamPhase.WAITING, reason, message, now)
    status = status.model_copy(update={"completion_time": status.completion_time or now})
    return _phase(stream, status, StreamPhase.FAILED, reason, message, now)


def artifacts(
    stream: MeetingStream, now: datetime, *, index: int, summary: ArtifactsStatus
) -> MeetingStreamStatus:
    """What of one stream reached the bucket; status.artifacts adds up the streams listed."""
    del now
    status = _update_session(stream.status, index, artifacts=summary)
    kept = [s.artifacts for s in status.streams if s.artifacts is not None]
    total = ArtifactsStatus(
        manifest_key=summary.manifest_key,
        objects=sum(a.objects for a in kept),
        bytes=sum(a.bytes for a in kept),
        audio_segments=sum(a.audio_segments for a in kept),
        event_files=sum(a.event_files for a in kept),
        last_upload_time=max(
            (a.last_upload_time for a in kept if a.last_upload_time), default=None
        ),
    )
    return status.model_copy(update={"artifacts": total})


def delivered(
    stream: MeetingStream, now: datetime, *, index: int, summary: ArtifactsStatus | None
) -> MeetingStreamStatus:
    """The stream is over and every file of it reached the bucket (its worker says so);
    `summary`: what the manifest holds now (the counts the notification carries)."""
    session = next((s for s in stream.status.streams if s.index == index), None)
    if session is None or session.delivered:
        return stream.status
    status = stream.status
    if summary is not None:
        status = artifacts(stream, now, index=index, summary=summary)
    return _update_session(status, index, delivered=True, ended_at=session.ended_at or now)


def _update_session(
    status: MeetingStreamStatus, index: int, **change: object
) -> MeetingStreamStatus:
    streams = [s.model_copy(update=change) if s.index == index else s for s in status.streams]
    return status.model_copy(update={"streams": streams})


def _finished(
    stream: MeetingStream, phase: StreamPhase, reason: Reason, message: str, now: datetime
) -> MeetingStreamStatus:
    """Finished now with this phase and reason, unless it already was."""
    if stream.status.phase in (StreamPhase.SUCCEEDED, StreamPhase.FAILED):
        return stream.status
    status = stream.status.model_copy(
        update={"completion_time": stream.status.completion_time or now}
    )
    return _phase(stream, status, phase, reason, message, now)


def stream_not_allowed(stream: MeetingStream, now: datetime) -> MeetingStreamStatus:
    """spec.stream names an endpoint the operator does not allow: nothing is received (a
    stream would be forwarded there)."""
    url = stream.spec.stream.url.split("?")[0] if stream.spec.stream else ""
    return _finished(
        stream,
        StreamPhase.FAILED,
        Reason.STREAM_ENDPOINT_NOT_ALLOWED,
        f"stream.url {url!r} is not under an endpoint the operator allows (its setting "
        "MEETINGBOT_WEBHOOK_ENDPOINTS, the chart's operator.webhookEndpoints; http:// there "
        "covers ws://, https:// wss://)",
        now,
    )


def needs_one_shard(stream: MeetingStream, now: datetime) -> MeetingStreamStatus:
    """The operator runs more than one shard: MeetingStreams are not served (their workers are
    one pool with one desk); nothing is received."""
    return _finished(
        stream,
        StreamPhase.FAILED,
        Reason.SHARDED_OPERATOR,
        "this operator runs more than one shard (the chart's leaderElection.shards), and "
        "MeetingStreams are served only by an operator with one shard",
        now,
    )


def canceled(stream: MeetingStream, now: datetime) -> MeetingStreamStatus:
    """spec.cancel: finished, and no more streams."""
    return _finished(
        stream,
        StreamPhase.SUCCEEDED,
        Reason.CANCELED,
        "canceled (spec.cancel): no more streams are taken",
        now,
    )


def _phase(
    stream: MeetingStream,
    status: MeetingStreamStatus,
    phase: StreamPhase,
    reason: Reason,
    message: str,
    now: datetime,
) -> MeetingStreamStatus:
    generation = stream.metadata.generation
    conditions = list(status.conditions)
    done = phase == StreamPhase.SUCCEEDED
    conditions = set_condition(
        conditions,
        "Ready",
        phase in (StreamPhase.WAITING, StreamPhase.STREAMING) or done,
        reason,
        message,
        generation=generation,
        now=now,
    )
    conditions = set_condition(
        conditions,
        "Streaming",
        phase == StreamPhase.STREAMING,
        reason,
        message,
        generation=generation,
        now=now,
    )
    conditions = set_condition(
        conditions, "Complete", done, reason, message, generation=generation, now=now
    )
    where = Progress.RECONCILING if phase == StreamPhase.STARTING else Progress.CURRENT
    conditions = progress(conditions, where, reason, message, generation=generation, now=now)
    return status.model_copy(
        update={
            "phase": phase,
            "reason": reason.value,
            "message": message,
            "conditions": conditions,
            "observed_generation": generation,
        }
    )
