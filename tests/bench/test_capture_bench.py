"""The recording bot's costs (`make bench`): two bots on the real node in one simulated
meeting where three people take turns speaking for BENCH_CAPTURE_SECONDS (300 by default),
one recording and delivering, one not: the PSS and CPU of each pod, bytes per minute of audio,
and the time from a segment's end to its object in the manifest. Written to
bench-results/capture.json and printed; never asserted."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from typing import Any

from devenv.cluster import cluster
from devenv.zoomsim import SimAdmin
from tests.bench.test_bot_latency import RESULTS, pod_memory_mb, pod_uid
from tests.support.artifacts import ScratchBucket
from tests.support.operator_fixtures import Bots
from tests.support.specs import bot_spec

SECONDS = int(os.environ.get("BENCH_CAPTURE_SECONDS", "300"))
TURN, PAUSE = 4.0, 1.0
CPU_FILES = ("/sys/fs/cgroup/cpuacct/cpuacct.usage", "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage")


def cpu_seconds(namespace: str, pod: str) -> float:
    """CPU time the pod's container has used (its cgroup's counter), in seconds."""
    for path in CPU_FILES:
        result = cluster.kubectl("-n", namespace, "exec", pod, "--", "cat", path, check=False)
        if result.returncode == 0:
            return int(result.stdout.strip()) / 1e9
    usage = cluster.kubectl("-n", namespace, "exec", pod, "--", "cat", "/sys/fs/cgroup/cpu.stat")
    fields = dict(line.split() for line in usage.stdout.splitlines())
    return int(fields["usage_usec"]) / 1e6


async def test_a_recording_bot_beside_one_that_does_not_record(
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    image: str,
    bucket: ScratchBucket,
) -> None:
    number = sim.create_meeting(zoom["id"], audio_path="wasm")["number"]
    people = [
        sim.add_participant(number, name, is_host=name == "Ana") for name in ("Ana", "Ben", "Cho")
    ]
    template = {"image": image}
    await bots.apply("plain", bot_spec(number, on_kwok=False, podTemplate=template))
    await bots.apply(
        "recorder",
        bot_spec(
            number,
            on_kwok=False,
            podTemplate=template,
            capture={"segmentSeconds": 10},
            artifacts=bucket.spec(),
        ),
    )
    await bots.wait_phase("plain", "InMeeting", timeout=120)
    await bots.wait_status(
        "recorder",
        lambda s: any(
            c["type"] == "Recording" and c["status"] == "True" for c in s.get("conditions", [])
        ),
        timeout=120,
    )
    turns = int(SECONDS // (TURN + PAUSE))
    speech = [
        {
            "participant": people[i % 3]["userId"],
            "from": i * (TURN + PAUSE),
            "to": i * (TURN + PAUSE) + TURN,
            "text": f"turn {i}",
        }
        for i in range(turns)
    ]
    sim.script_media(number, start_in_seconds=1, speech=speech)
    pods = {"plain": "plain-1", "recorder": "recorder-1"}
    uids = {name: pod_uid(namespace, pod) for name, pod in pods.items()}
    cpu_start = {name: cpu_seconds(namespace, pod) for name, pod in pods.items()}
    started = time.monotonic()
    pss: dict[str, list[float]] = {name: [] for name in pods}
    first_seen: dict[str, float] = {}
    manifest_key = ""
    while time.monotonic() - started < SECONDS:
        for name, uid in uids.items():
            pss[name].append(pod_memory_mb(uid)[1])
        if not manifest_key:
            manifest_key = ((await bots.status("recorder")).get("artifacts") or {}).get(
                "manifestKey", ""
            )
        if manifest_key:
            manifest = await bucket.manifest(manifest_key)
            now_ms = time.time() * 1000
            for entry in manifest.entries if manifest else []:
                first_seen.setdefault(entry.key, now_ms - entry.end_ms)
        await asyncio.sleep(1.0)
    elapsed = time.monotonic() - started
    cpu = {
        name: (cpu_seconds(namespace, pod) - cpu_start[name]) / elapsed
        for name, pod in pods.items()
    }
    sim.end_meeting(number)
    status = await bots.wait_phase("recorder", "Succeeded", timeout=120)
    await bots.wait_phase("plain", "Succeeded", timeout=120)
    manifest = await bucket.manifest(status["artifacts"]["manifestKey"])
    assert manifest is not None
    audio = [e for e in manifest.entries if e.kind == "audio"]
    audio_minutes = sum(e.end_ms - e.start_ms for e in audio) / 60_000
    latencies = sorted(v / 1000 for k, v in first_seen.items() if "/audio-" in k)
    values = {
        "seconds": round(elapsed),
        "speakers": 3,
        "pod_pss_mb": {
            name: {"median": round(statistics.median(v)), "max": round(max(v))}
            for name, v in pss.items()
        },
        "pod_cpu_cores_mean": {name: round(v, 3) for name, v in cpu.items()},
        "audio_bytes_per_minute": round(sum(e.size for e in audio) / audio_minutes),
        "events_bytes": sum(e.size for e in manifest.entries if e.kind == "events"),
        "segments": len(audio),
        "segment_end_to_manifest_s": {
            "median": round(statistics.median(latencies), 2),
            "max": round(max(latencies), 2),
        },
        "lost": status["artifacts"]["lost"],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "capture.json").write_text(json.dumps(values, indent=2) + "\n")
    extra = values["pod_pss_mb"]["recorder"]["median"] - values["pod_pss_mb"]["plain"]["median"]
    print(f"\nrecording bot vs plain bot, {values['seconds']} s, 3 speakers: {json.dumps(values)}")
    print(
        f"capture costs {extra} MB of PSS (median) and {cpu['recorder'] - cpu['plain']:.3f} cores"
    )
