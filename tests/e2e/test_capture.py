"""A recording bot on the real node, in real Chromium, in a simulated meeting whose speakers
are tones on a script: for each of the SDK's audio paths, the recording holds the right
speaker's tone in each scripted window and silence between; the speaker timeline, captions
and chat match the script; every object verifies against its checksum."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from devenv.cluster import cluster
from devenv.zoomsim import SimAdmin
from meetingbot_contract import Manifest
from tests.support.artifacts import ScratchBucket
from tests.support.audio import assemble, rms, tone_share
from tests.support.meeting_script import (
    MARGIN_MS,
    SPEECH,
    capture_spec,
    meeting_with_speakers,
    play_the_script,
)
from tests.support.operator_fixtures import Bots
from tests.support.plugin import run_plugin


@pytest.mark.parametrize("path", ["wasm", "wasm-element", "webrtc"])
async def test_each_audio_path_records_who_spoke_when(
    path: str,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    image: str,
    bucket: ScratchBucket,
    tmp_path: Path,
) -> None:
    number, people = await meeting_with_speakers(sim, zoom, path)
    await bots.apply("rec", capture_spec(image, number, bucket))
    await bots.wait_status("rec", lambda s: _condition(s, "Recording") == "True", timeout=120)
    start = play_the_script(sim, number, people)
    await asyncio.sleep(14)  # the script, and a segment after it
    ended_ms = int(time.time() * 1000)
    sim.end_meeting(number)
    await bots.wait_phase("rec", "Succeeded", timeout=90)
    # Succeeded when the bot left; delivered once its last files are in (before it exits).
    status = await all_delivered(bots, "rec")
    delivered = status["artifacts"]
    assert delivered["audioSegments"] >= 4 and delivered["eventFiles"] >= 1, delivered
    assert delivered["lost"] == 0 and delivered["pending"] == 0

    manifest = await bucket.manifest(delivered["manifestKey"])
    assert manifest is not None
    # The status follows the manifest (written at most once per report interval per bot).
    await bots.wait_status(
        "rec", lambda s: s["artifacts"]["objects"] == len(manifest.entries), timeout=30
    )
    objects = await bucket.objects(manifest)  # each checked against its SHA-256
    audio = [e for e in manifest.entries if e.kind == "audio"]
    # The segment in progress when the meeting ended is kept too.
    assert max(e.end_ms for e in audio) >= ended_ms - 1500, (ended_ms, audio[-1])
    recording = assemble([(e.start_ms, objects[e.key]) for e in audio])
    tones = {who: float(people[who]["toneHz"]) for who in people}

    def heard(a: float, b: float) -> dict[str, float]:
        window = recording.window(
            start + int(a * 1000) + MARGIN_MS, start + int(b * 1000) - MARGIN_MS
        )
        return {who: tone_share(window, hz) for who, hz in tones.items()} | {"rms": rms(window)}

    alone = heard(1.0, 3.0)
    assert alone["alice"] > 0.5 and alone["bob"] < 0.05, (path, alone)
    both = heard(3.0, 4.0)
    assert both["alice"] > 0.2 and both["bob"] > 0.2, (path, both)
    bob = heard(4.0, 7.0)
    assert bob["bob"] > 0.5 and bob["alice"] < 0.05, (path, bob)
    silence = heard(7.0, 9.0)
    assert silence["rms"] < 0.01, (path, silence)
    again = heard(9.0, 11.0)
    assert again["alice"] > 0.5, (path, again)

    events = await bucket.events(manifest)
    speech = [
        (e["name"], (e["startMs"] - start) / 1000, (e["endMs"] - start) / 1000)
        for e in events
        if e["type"] == "speech"
    ]
    assert [s[0] for s in speech] == ["Alice", "Bob", "Alice"], speech
    for (name, a, b), (_, want_a, want_b, _) in zip(speech, SPEECH, strict=True):
        assert abs(a - want_a) < 0.5 and abs(b - want_b) < 0.5, (name, a, b)
    captions = [(e["name"], e["text"]) for e in events if e["type"] == "caption"]
    assert captions == [("Alice", SPEECH[0][3]), ("Bob", SPEECH[1][3]), ("Alice", SPEECH[2][3])]
    chat = [(e["name"], e["text"]) for e in events if e["type"] == "chat"]
    assert chat == [("Bob", "see the doc")]
    assert {e["name"] for e in events if e["type"] == "join"} >= {"Alice", "Bob"}
    # The announcement reached the meeting's chat.
    assert [m["message"] for m in sim.meeting(number)["chat"]] == ["Notetaker is recording"]
    if path == "wasm":
        _the_plugin_reads_what_was_delivered(namespace, manifest, objects, tmp_path)


def _the_plugin_reads_what_was_delivered(
    namespace: str, manifest: Manifest, objects: dict[str, bytes], tmp_path: Path
) -> None:
    """`kubectl meetingbot artifacts` lists the manifest and fetches every object (with the
    user's own keys, from the Secret the bot names); `logs` shows the bot's own log."""
    listed = run_plugin("-n", namespace, "artifacts", "rec", "--fetch", str(tmp_path / "got"))
    assert listed.returncode == 0, listed.stderr
    assert f"{len(manifest.entries)} objects in s3://" in listed.stdout
    fetched = {p.name: p.read_bytes() for p in (tmp_path / "got").rglob("*") if p.is_file()}
    assert fetched == {key.rsplit("/", 1)[-1]: body for key, body in objects.items()}
    logs = run_plugin("-n", namespace, "logs", "rec")
    assert logs.returncode == 0, logs.stderr
    assert "capture delivered" in logs.stdout


async def all_delivered(bots: Bots, name: str) -> dict[str, Any]:
    """The status once the bot's container exited and everything it held is delivered."""
    return await bots.wait_status(
        name, lambda s: _condition(s, "ArtifactsDelivered") == "True", timeout=60
    )


def _condition(status: dict[str, Any], kind: str) -> str | None:
    for condition in status.get("conditions") or []:
        if condition["type"] == kind:
            return str(condition["status"])
    return None


async def test_a_refused_recording_records_nothing_and_says_why(
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    image: str,
    bucket: ScratchBucket,
) -> None:
    meeting = sim.create_meeting(zoom["id"], recording_permission="deny")
    number = meeting["number"]
    sim.add_participant(number, "Host", is_host=True)
    await bots.apply("refused", capture_spec(image, number, bucket, onDenied="Leave"))
    status = await bots.wait_phase("refused", "Failed", "Succeeded", timeout=120)
    assert status["reason"] == "RecordingDenied", status
    assert _condition(status, "Recording") == "False"
    manifest_key = (status.get("artifacts") or {}).get("manifestKey")
    manifest = await bucket.manifest(manifest_key) if manifest_key else None
    audio = [e for e in manifest.entries if e.kind == "audio"] if manifest else []
    assert audio == []


async def _play(sim: SimAdmin, number: str, who: dict[str, Any], seconds: float) -> int:
    """One speaker talking for `seconds` from one second on; the script's start (host ms)."""
    script = sim.script_media(
        number,
        start_in_seconds=1,
        speech=[{"participant": who["userId"], "from": 0, "to": seconds, "text": ""}],
    )
    return int(script["startsAtMs"])


def _bot_pid(pod: str) -> int:
    """The bot's Python process (its container runs on this host: the real node)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes()
            ours = f"HOSTNAME={pod}\0".encode() in environ
            if ours and b"meetingbot_bot" in command and command[0].endswith(b"python3"):
                return int(entry.name)
    raise LookupError(f"no bot process for {pod}")


async def test_a_bot_killed_mid_meeting_loses_at_most_its_last_segments(
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    image: str,
    bucket: ScratchBucket,
) -> None:
    number, people = await meeting_with_speakers(sim, zoom, "wasm")
    await bots.apply("killed", capture_spec(image, number, bucket))
    await bots.wait_status("killed", lambda s: _condition(s, "Recording") == "True", timeout=120)
    await _play(sim, number, people["alice"], 120)
    await bots.wait_status(
        "killed", lambda s: (s.get("artifacts") or {}).get("audioSegments", 0) >= 3, timeout=60
    )
    killed_at = int(time.time() * 1000)
    os.kill(_bot_pid("killed-1"), signal.SIGKILL)
    # The attempt fails (BotCrashed) and a new one joins the meeting and records on.
    await bots.wait_status(
        "killed",
        lambda s: s.get("attempts") == 2 and _condition(s, "Recording") == "True",
        timeout=120,
    )
    await asyncio.sleep(8)
    sim.end_meeting(number)
    await bots.wait_phase("killed", "Succeeded", timeout=90)
    status = await all_delivered(bots, "killed")
    manifest = await bucket.manifest(status["artifacts"]["manifestKey"])
    assert manifest is not None
    await bucket.objects(manifest)
    first = [e for e in manifest.entries if e.kind == "audio" and e.attempt == 1]
    second = [e for e in manifest.entries if e.kind == "audio" and e.attempt == 2]
    assert first and second, manifest.entries
    # What the kill lost: from the end of the last delivered segment to the kill.
    lost_ms = killed_at - max(e.end_ms for e in first)
    assert 0 <= lost_ms <= 30_000, lost_ms
    # The manifest goes on across attempts, and says where the gap between them is.
    between = [g for g in manifest.gaps if g["betweenAttempts"]]
    assert len(between) == 1 and between[0]["startMs"] == max(e.end_ms for e in first)
    assert [g for g in manifest.gaps if not g["betweenAttempts"]] == []
    print(f"\nkilled mid-meeting: the last {lost_ms / 1000:.1f} s before the kill were lost")


def _store_pid() -> int:
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(entry / "exe").endswith(f"versitygw-{_version()}"):
                return int(entry.name)
    raise LookupError("the object store is not running")


def _version() -> str:
    return cluster.versions()["VERSITYGW_VERSION"]


async def test_the_store_unreachable_for_a_minute_loses_nothing(
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    image: str,
    bucket: ScratchBucket,
) -> None:
    number, people = await meeting_with_speakers(sim, zoom, "webrtc")
    await bots.apply("patient", capture_spec(image, number, bucket))
    await bots.wait_status("patient", lambda s: _condition(s, "Recording") == "True", timeout=120)
    await _play(sim, number, people["bob"], 300)
    store = _store_pid()
    os.kill(store, signal.SIGSTOP)  # it neither answers nor refuses: every call times out
    try:
        await asyncio.sleep(60)
        during = await bots.status("patient")
        assert during["artifacts"]["pending"] >= 10, during["artifacts"]
    finally:
        os.kill(store, signal.SIGCONT)
    await bots.wait_status(
        "patient", lambda s: (s.get("artifacts") or {}).get("pending") == 0, timeout=120
    )
    sim.end_meeting(number)
    await bots.wait_phase("patient", "Succeeded", timeout=90)
    status = await all_delivered(bots, "patient")
    assert status["artifacts"]["lost"] == 0
    manifest = await bucket.manifest(status["artifacts"]["manifestKey"])
    assert manifest is not None
    await bucket.objects(manifest)
    audio = [e for e in manifest.entries if e.kind == "audio"]
    # Continuous: no gap inside the attempt, although a minute of it waited in the spool.
    assert manifest.gaps == [], manifest.gaps
    assert (audio[-1].end_ms - audio[0].start_ms) / 1000 > 60
