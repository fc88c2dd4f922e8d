"""The live stream, end to end: a real bot in real Chromium, in a simulated meeting whose
participants speak on a script (each a tone), streams the mixed audio as PCM16 and the events
to a real WebSocket receiver while it records; the receiver drops the connection mid-meeting
and the bot reconnects, the recording untouched."""

from __future__ import annotations

import asyncio
from typing import Any

from devenv.zoomsim import SimAdmin
from meetingbot_contract.stream import PROTOCOL, SAMPLE_RATE
from tests.support.artifacts import ScratchBucket
from tests.support.audio import pcm_timeline, rms, tone_share
from tests.support.meeting_script import (
    MARGIN_MS,
    SPEECH,
    capture_spec,
    meeting_with_speakers,
    play_the_script,
)
from tests.support.operator_fixtures import Bots, Kube, wait_for
from tests.support.stream_receiver import StreamReceiver, stream_spec
from tests.support.webhook_receiver import signing_secret


async def test_a_bot_streams_the_meeting_live_and_reconnects(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    image: str,
    bucket: ScratchBucket,
    stream_receiver: StreamReceiver,
) -> None:
    await signing_secret(kube, namespace)
    path = f"/live/{namespace}"
    number, people = await meeting_with_speakers(sim, zoom, "wasm")
    spec = capture_spec(image, number, bucket)
    spec["stream"] = stream_spec(stream_receiver, path)
    await bots.apply("live", spec)

    def streaming() -> bool:
        return any(c.audio for c in stream_receiver.connections(path))

    await wait_for(streaming, 120, what="audio on the stream")
    (first,) = stream_receiver.connections(path)
    # The operator's token for this attempt, checked with the signing secret.
    assert first.claims is not None
    assert (first.claims["sub"], first.claims["attempt"]) == (f"{namespace}/live", 1)
    assert first.hello is not None and first.hello["protocol"] == PROTOCOL
    assert first.hello["audio"] == {
        "encoding": "pcm_s16le",
        "sampleRate": SAMPLE_RATE,
        "channels": 1,
    }

    # The receiver restarts: the bot connects again and goes on; the meeting's script runs.
    assert stream_receiver.drop_all() == 1
    await wait_for(lambda: len(stream_receiver.connections(path)) == 2, 30, what="a reconnection")
    start = play_the_script(sim, number, people)
    await asyncio.sleep(13)
    sim.end_meeting(number)
    await bots.wait_phase("live", "Succeeded", timeout=90)
    second = stream_receiver.connections(path)[1]
    await wait_for(lambda: second.end is not None, 30, what="the stream's end")
    assert second.end == {"type": "end", "reason": "MeetingEnded"}

    # The audio: each scripted voice where the script puts it, silence between.
    live = pcm_timeline(second.audio, SAMPLE_RATE)
    tones = {who: float(people[who]["toneHz"]) for who in people}

    def heard(a: float, b: float) -> dict[str, float]:
        window = live.window(start + int(a * 1000) + MARGIN_MS, start + int(b * 1000) - MARGIN_MS)
        shares = {who: tone_share(window, hz, SAMPLE_RATE) for who, hz in tones.items()}
        return shares | {"rms": rms(window)}

    alone = heard(1.0, 3.0)
    assert alone["alice"] > 0.5 and alone["bob"] < 0.05, alone
    bob = heard(4.0, 7.0)
    assert bob["bob"] > 0.5 and bob["alice"] < 0.05, bob
    assert heard(7.0, 9.0)["rms"] < 0.01
    # Frames arrive in order, none twice.
    times = [t for t, _ in second.audio]
    assert times == sorted(times) and len(set(times)) == len(times)

    # The events, in the order they happened, as they happened.
    def names(kind: str) -> list[str]:
        return [e["name"] for e in second.events if e["type"] == kind]

    assert [e["t"] for e in second.events] == sorted(e["t"] for e in second.events)
    speaking = [e for e in second.events if e["type"] == "speaking"]
    assert names("speaking") == ["Alice", "Bob", "Alice"]
    for event, (_, want, _, _) in zip(speaking, SPEECH, strict=True):
        assert abs((event["t"] - start) / 1000 - want) < 0.5, event
    assert names("speech") == ["Alice", "Bob", "Alice"]
    assert names("caption") == ["Alice", "Bob", "Alice"]
    assert names("chat") == ["Bob"]

    # The recording did not notice: delivered whole.
    status = await bots.wait_status(
        "live",
        lambda s: any(
            c["type"] == "ArtifactsDelivered" and c["status"] == "True" for c in s["conditions"]
        ),
        timeout=60,
    )
    assert status["artifacts"]["lost"] == 0 and status["artifacts"]["audioSegments"] >= 4
