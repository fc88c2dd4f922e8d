"""The capture's pure parts: SigV4 against AWS's published examples, the bot's consent rules
and event lines, the manifest's gaps, and the capture's status and conditions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from meetingbot_api import ArtifactsStatus, MeetingBotStatus, Phase
from meetingbot_bot.capture import Capture, Command
from meetingbot_bot.spool import Spool
from meetingbot_contract import (
    ArtifactKind,
    BotReport,
    BotState,
    CaptureConfig,
    CaptureReport,
    Manifest,
    ManifestEntry,
    OnDenied,
    RecordingState,
    sigv4,
)
from meetingbot_contract.artifacts import object_key
from meetingbot_operator.meetingbot.capture_status import capture_status
from meetingbot_operator.meetingbot.observed import Observed, PodObservation
from tests.support.specs import meeting_bot

# AWS's examples ("Authenticating Requests: Using Query Parameters" and "Examples of the
# Complete Version 4 Signing Process", GET Object), with their published signatures.
ACCESS = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
WHEN = datetime(2013, 5, 24, tzinfo=UTC)


def test_a_presigned_url_matches_aws_example() -> None:
    url = sigv4.presign(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        expires_seconds=86400,
        access_key=ACCESS,
        secret_key=SECRET,
        region="us-east-1",
        when=WHEN,
    )
    assert url.endswith(
        "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
    assert "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" in url


def test_a_signed_request_matches_aws_example() -> None:
    headers = sigv4.authorization(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        headers={"Range": "bytes=0-9"},
        access_key=ACCESS,
        secret_key=SECRET,
        region="us-east-1",
        when=WHEN,
    )
    assert headers["authorization"].endswith(
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    assert "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date" in headers["authorization"]


def test_object_keys_are_the_operators_alone() -> None:
    assert (
        object_key("rec/", "team-a", "standup", 2, ArtifactKind.AUDIO, 7)
        == "rec/team-a/standup/2/audio-000007.webm"
    )
    assert object_key("", "ns", "b", 1, ArtifactKind.EVENTS, 1) == "ns/b/1/events-000001.jsonl"


def _capture(tmp_path: Path, **config: Any) -> Capture:
    settings = CaptureConfig(uploads_url="http://operator/uploads", segment_seconds=10, **config)
    return Capture(settings, Spool(tmp_path))


HOST = {"userId": "h1", "displayName": "Hana", "isHost": True}
GUEST = {"userId": "g1", "displayName": "Gus", "isHost": False}


def _lines(capture: Capture, now: int) -> list[dict[str, Any]]:
    capture.flush(now)
    files = [f for f in capture.spool.pending() if f.kind == ArtifactKind.EVENTS]

    return [json.loads(x) for f in files for x in f.path.read_text().splitlines()]


def test_nothing_is_kept_before_the_host_allows_recording(tmp_path: Path) -> None:
    capture = _capture(tmp_path)
    assert capture.joined("bot", [HOST, GUEST], 1_000) == [Command.ASK_PERMISSION]
    assert capture.recording == RecordingState.WAITING
    capture.event("chat-on-message", {"message": "before", "sender": {"name": "Gus"}}, 1_500)
    assert capture.segment({"sequence": 1, "startMs": 1, "endMs": 2, "data": "AAAA"}) is False
    granted = capture.event("media-capture-permission-change", {"canRecord": True}, 2_000)
    assert granted == [Command.START_RECORDING]
    assert capture.segment({"sequence": 1, "startMs": 2_000, "endMs": 3_000, "data": "AAAA"})
    # Leaving: the recorder stops, and the segment it had in progress is still kept.
    assert capture.leaving(3_500) == [Command.STOP_RECORDING]
    assert capture.segment({"sequence": 2, "startMs": 3_000, "endMs": 3_600, "data": "AAAA"})
    lines = _lines(capture, 3_000)
    # Who was present is said when keeping starts; the chat before consent is not kept.
    assert [(x["type"], x.get("name")) for x in lines] == [
        ("join", "Hana"),
        ("join", "Gus"),
        ("recording", None),
        ("recording", None),
    ]


@pytest.mark.parametrize(
    ("people", "policy", "state", "command"),
    [
        ([HOST], OnDenied.LEAVE, RecordingState.DENIED, Command.LEAVE_DENIED),
        ([GUEST], OnDenied.LEAVE, RecordingState.HOST_ABSENT, Command.LEAVE_HOST_ABSENT),
        ([HOST], OnDenied.WAIT, RecordingState.DENIED, None),
        ([HOST], OnDenied.EVENTS_ONLY, RecordingState.DENIED, None),
    ],
)
def test_a_refusal_follows_the_spec(
    tmp_path: Path,
    people: list[dict[str, Any]],
    policy: OnDenied,
    state: RecordingState,
    command: Command | None,
) -> None:
    capture = _capture(tmp_path, on_denied=policy)
    capture.joined("bot", people, 0)
    commands = capture.event("media-capture-permission-change", {"canRecord": False}, 10_000)
    assert capture.recording == state
    assert commands == ([command] if command else [])
    capture.event("chat-on-message", {"message": "hi", "sender": {"name": "Gus"}}, 11_000)
    kept = [x["type"] for x in _lines(capture, 12_000)]
    assert ("chat" in kept) == (policy == OnDenied.EVENTS_ONLY)
    assert "recording" in kept  # the refusal itself is always said


def test_with_wait_a_host_arriving_is_asked_again(tmp_path: Path) -> None:
    capture = _capture(tmp_path, on_denied=OnDenied.WAIT)
    capture.joined("bot", [GUEST], 0)
    capture.event("media-capture-permission-change", {"canRecord": False}, 10_000)
    assert capture.recording == RecordingState.HOST_ABSENT
    assert capture.event("user-added", [HOST], 20_000) == [Command.ASK_PERMISSION]
    assert capture.report(0, 0, 0).recording == RecordingState.WAITING


def test_the_speaker_timeline_captions_and_chat(tmp_path: Path) -> None:
    capture = _capture(tmp_path, ask_permission=False, announcement="Notetaker is recording")
    assert capture.joined("bot", [HOST, GUEST], 0) == [Command.ANNOUNCE, Command.START_RECORDING]
    capture.event("active-speaker", [{"userId": "h1", "displayName": "Hana"}], 1_000)
    capture.event(
        "active-speaker", [{"userId": "h1"}, {"userId": "g1", "displayName": "Gus"}], 2_000
    )
    capture.event("caption-message", {"userId": "h1", "displayName": "Hana", "text": "he"}, 2_500)
    capture.event(
        "caption-message",
        {"userId": "h1", "displayName": "Hana", "text": "hello", "done": True},
        3_000,
    )
    capture.event("active-speaker", [{"userId": "g1", "displayName": "Gus"}], 3_000)
    capture.event("user-removed", [GUEST], 5_000)
    lines = _lines(capture, 6_000)
    speech = [(x["name"], x["startMs"], x["endMs"]) for x in lines if x["type"] == "speech"]
    assert speech == [("Hana", 1_000, 3_000), ("Gus", 2_000, 5_000)]
    assert [x["text"] for x in lines if x["type"] == "caption"] == ["hello"]  # finals only
    assert capture.captions is True


def test_captions_that_never_come_are_said_to_be_off(tmp_path: Path) -> None:
    capture = _capture(tmp_path, ask_permission=False)
    capture.joined("bot", [HOST], 0)
    capture.event("active-speaker", [{"userId": "h1"}], 1_000)
    capture.tick(30_000)
    assert capture.captions is None
    capture.tick(62_000)
    assert capture.captions is False
    assert capture.report(0, 0, 0).captions is False


def _entry(attempt: int, sequence: int, start: int, end: int) -> ManifestEntry:
    return ManifestEntry(
        key=f"k/{attempt}/{sequence}",
        attempt=attempt,
        kind=ArtifactKind.AUDIO,
        sequence=sequence,
        size=1,
        sha256="0" * 64,
        start_ms=start,
        end_ms=end,
    )


def test_the_manifest_names_the_gaps_between_attempts_and_segments() -> None:
    manifest = Manifest(namespace="ns", name="b", uid="u")
    for entry in (
        _entry(1, 1, 0, 10_000),
        _entry(1, 2, 10_010, 20_000),  # a recorder handing over: continuous
        _entry(2, 1, 45_000, 55_000),  # the retry
        _entry(2, 1, 45_000, 55_000),  # confirmed twice: listed once
    ):
        manifest = manifest.with_entry(entry)
    assert len(manifest.entries) == 3
    assert manifest.gaps == [
        {"startMs": 20_000, "endMs": 45_000, "afterKey": "k/1/2", "betweenAttempts": True}
    ]


def _status(
    report: CaptureReport | None,
    phase: Phase,
    old: ArtifactsStatus | None = None,
    pod: PodObservation | None = None,
) -> MeetingBotStatus:
    bot = meeting_bot(
        capture={}, artifacts={"bucket": "recordings", "credentialsSecretRef": {"name": "s"}}
    )
    status = MeetingBotStatus(phase=phase, artifacts=old)
    observed = Observed(
        now=datetime.now(UTC),
        account=None,
        report=BotReport(attempt=1, state=BotState.IN_MEETING, capture=report) if report else None,
        artifacts=ArtifactsStatus(objects=4, bytes=4000, audio_segments=3, event_files=1),
        pod=pod,
    )
    capture_status(bot, observed, status, 1, datetime.now(UTC))
    return status


def _conditions(status: MeetingBotStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_the_status_says_what_is_recorded_and_delivered() -> None:
    recording = CaptureReport(recording=RecordingState.RECORDING, pending=1, captions=False)
    status = _status(recording, Phase.IN_MEETING)
    assert _conditions(status)["Recording"] == ("True", "Recording")
    assert _conditions(status)["Captions"] == ("False", "CaptionsDisabled")
    assert _conditions(status)["ArtifactsDelivered"] == ("False", "Pending")
    assert status.artifacts is not None and status.artifacts.objects == 4

    denied = _status(CaptureReport(recording=RecordingState.DENIED), Phase.IN_MEETING)
    assert _conditions(denied)["Recording"] == ("False", "RecordingDenied")

    done = _status(CaptureReport(recording=RecordingState.OFF, pending=0), Phase.SUCCEEDED)
    assert _conditions(done)["ArtifactsDelivered"] == ("True", "Delivered")
    assert _conditions(done)["Recording"] == ("False", "NotInMeeting")


def test_files_a_finished_bot_still_held_are_reported_lost() -> None:
    status = _status(CaptureReport(recording=RecordingState.OFF, pending=2), Phase.FAILED)
    assert status.artifacts is not None and status.artifacts.lost == 2
    assert _conditions(status)["ArtifactsDelivered"] == ("False", "ArtifactsLost")
    # After a restart (no report in memory), what was written stays.
    again = _status(None, Phase.FAILED, old=status.artifacts)
    assert again.artifacts is not None and again.artifacts.lost == 2


def test_a_bot_that_left_but_still_delivers_has_lost_nothing_yet() -> None:
    running = PodObservation(name="b-1", attempt=1, phase="Running")
    draining = _status(
        CaptureReport(recording=RecordingState.OFF, pending=2), Phase.SUCCEEDED, pod=running
    )
    assert draining.artifacts is not None
    assert (draining.artifacts.pending, draining.artifacts.lost) == (2, 0)
    assert _conditions(draining)["ArtifactsDelivered"] == ("False", "Delivering")
