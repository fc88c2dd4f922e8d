"""RTMS through the whole path (`make bench PYTEST_ARGS="-k rtms_pool"`), written to
bench-results/results.json and printed; never asserted.

BENCH_RTMS_POOL_STREAMS (default 300) MeetingStreams, each for a meeting with one scripted
speaker; Zoom (the simulator) starts every stream and posts `meeting.rtms_started` to the
session's operator, which gives them to one stream worker: `python -m meetingbot_bot.rtms` as
a process of this machine (its pod is a kwok pod, so its token is a real pod-bound token),
which receives them and delivers their WAV segments and events through the operator's
presigned uploads to the object store. Zoom's messages carry 100 ms (`media.sendRateMs`).
Why 300 and not 1000: here the simulator runs inside the test process (the session's, whose
RTMS URL the operator allows), beside the test's own polling; measured at 1000 it saturated
that process (one core, 4 GB of audio buffered for streams not yet connected) and let streams
time out, which measures the harness, not the worker. 1000 streams against a worker are
measured in test_rtms_bench.py, with the simulator in a process of its own.

Measured over BENCH_RTMS_POOL_SECONDS (default 30) of streaming: the worker's RSS per stream
and CPU per stream, the operator's CPU; from Zoom's start (its webhook) to the first audio
byte Zoom sent the worker, per stream; then, once the meetings end, how long until every
stream's files are delivered. Beside it, a browser bot (a MeetingBot on the real node)
records the first of those meetings: its PSS and CPU over the same window.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin
from meetingbot_api import GROUP, VERSION
from meetingbot_contract.rtms import WORKER_AUDIENCE
from tests.bench.test_bot_latency import pod_memory_mb, pod_uid
from tests.bench.test_capture_bench import cpu_seconds as pod_cpu_seconds
from tests.bench.test_results_bench import _quantiles, _save
from tests.bench.test_rtms_bench import cpu_seconds, rss_mb
from tests.support.artifacts import ScratchBucket
from tests.support.meeting_script import capture_spec
from tests.support.operator_fixtures import SECRET_USE_LABEL, Bots, Kube, wait_for
from tests.support.specs import ON_KWOK
from tests.support.stream_workers import NAMESPACE, SERVICE_ACCOUNT, ensure_namespace

pytestmark = pytest.mark.bench
COUNT = int(os.environ.get("BENCH_RTMS_POOL_STREAMS", "300"))
SECONDS = float(os.environ.get("BENCH_RTMS_POOL_SECONDS", "30"))
ROOT = Path(__file__).resolve().parents[2]


async def worker_identity(kube: Kube, name: str, tmp: Path) -> Path:
    """A kwok pod for the worker's service account, and a token bound to it (as the kubelet
    would project into a real pod): the file the worker reads it from."""
    await ensure_namespace(kube)
    pod = await kube.core.create_namespaced_pod(
        NAMESPACE,
        {
            "metadata": {"name": name},
            "spec": {
                "serviceAccountName": SERVICE_ACCOUNT,
                "automountServiceAccountToken": False,
                "containers": [{"name": "worker", "image": "example.invalid/worker:bench"}],
                **ON_KWOK,
            },
        },
    )
    token = await kube.core.create_namespaced_service_account_token(
        SERVICE_ACCOUNT,
        NAMESPACE,
        {
            "spec": {
                "audiences": [WORKER_AUDIENCE],
                "expirationSeconds": 3600,
                "boundObjectRef": {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "name": name,
                    "uid": pod.metadata.uid,
                },
            }
        },
    )
    path = tmp / "token"
    path.write_text(token.status.token)
    return path


async def statuses(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    found = await kube.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, "meetingstreams"
    )
    return [dict(item.get("status") or {}) for item in found["items"]]


async def test_streams_through_the_operator_and_a_worker(
    kube: Kube,
    namespace: str,
    operator: OperatorProcess,
    sim: SimAdmin,
    zoom: dict[str, Any],
    bots: Bots,
    image: str,
    bucket: ScratchBucket,
    tmp_path: Path,
) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sim.update_account(zoom["id"], event_notification_url=f"{operator.oauth_url}/zoom/rtms")
    await kube.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "rtms-app", "labels": {SECRET_USE_LABEL: "zoom-credentials"}},
            "stringData": {
                "clientId": zoom["user_client_id"],
                "clientSecret": zoom["user_client_secret"],
                "webhookSecretToken": zoom["webhook_secret_token"],
            },
        },
    )
    print(f"[bench] rtms pool: {COUNT} meetings and MeetingStreams", flush=True)
    numbers = []
    for i in range(COUNT):
        number = sim.create_meeting(zoom["id"], audio_path="wasm")["number"]
        who = sim.add_participant(number, f"P{i}", is_host=True)
        speech = [{"participant": who["userId"], "from": 0, "to": 86400, "text": ""}]
        sim.script_media(number, start_in_seconds=0, speech=speech)
        numbers.append(number)
        await kube.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "meetingstreams",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "MeetingStream",
                "metadata": {"name": f"s{i}"},
                "spec": {
                    "appCredentialsSecretRef": {"name": "rtms-app"},
                    "meeting": {"number": number},
                    "media": {"sendRateMs": 100},
                    "segmentSeconds": 30,
                    "artifacts": bucket.spec(),
                },
            },
        )

    async def all_in(phase: str) -> bool:
        phases = [str(s.get("phase")) for s in await statuses(kube, namespace)]
        return phases.count(phase) == COUNT

    await wait_for(lambda: all_in("Waiting"), 300, 2, what="every MeetingStream Waiting")

    # The browser bot beside them, in the first meeting.
    await bots.apply("beside", capture_spec(image, numbers[0], bucket))
    await bots.wait_status(
        "beside",
        lambda s: any(
            c["type"] == "Recording" and c["status"] == "True" for c in s.get("conditions", [])
        ),
        timeout=180,
    )
    [bot_pod] = await bots.pods("beside")
    bot_uid = pod_uid(namespace, bot_pod.metadata.name)

    worker_name = f"bench-worker-{uuid.uuid4().hex[:6]}"
    token_file = await worker_identity(kube, worker_name, tmp_path)
    worker = subprocess.Popen(
        [sys.executable, "-m", "meetingbot_bot.rtms"],
        cwd=ROOT,
        env={
            **os.environ,
            "MEETINGBOT_WORKER_NAME": worker_name,
            "MEETINGBOT_OPERATOR_URL": operator.report_url,
            "MEETINGBOT_WORKER_TOKEN_FILE": str(token_file),
            "MEETINGBOT_SPOOL": str(tmp_path / "spool"),
            "MEETINGBOT_WORKER_CAPACITY": str(COUNT),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert operator.process is not None
    operator_pid = operator.process.pid
    try:
        await asyncio.sleep(3)
        idle_rss = rss_mb(worker.pid)
        print(f"[bench] rtms pool: starting {COUNT} streams", flush=True)
        started = time.monotonic()
        streams = [sim.start_rtms(number, zoom["id"]) for number in numbers]
        await wait_for(lambda: all_in("Streaming"), 300, 2, what="every stream Streaming")
        all_streaming = time.monotonic() - started
        await asyncio.sleep(5)
        worker_cpu, operator_cpu = cpu_seconds(worker.pid), cpu_seconds(operator_pid)
        bot_cpu = pod_cpu_seconds(namespace, bot_pod.metadata.name)
        window = time.monotonic()
        await asyncio.sleep(SECONDS)
        wall = time.monotonic() - window
        worker_cpu = cpu_seconds(worker.pid) - worker_cpu
        operator_cpu = cpu_seconds(operator_pid) - operator_cpu
        bot_cpu = pod_cpu_seconds(namespace, bot_pod.metadata.name) - bot_cpu
        busy_rss = rss_mb(worker.pid)
        _, bot_pss, _ = pod_memory_mb(bot_uid)
        first = []
        for stream in streams:
            seen = sim.rtms_stream(stream["id"])
            if seen["firstAudioAt"] is not None:
                first.append(seen["firstAudioAt"] - seen["startedAt"])
        print("[bench] rtms pool: ending the meetings", flush=True)
        ended = time.monotonic()
        for number in numbers:
            sim.end_meeting(number)

        async def all_delivered() -> bool:
            found = await statuses(kube, namespace)
            done = [bool(s.get("streams") and s["streams"][0].get("delivered")) for s in found]
            return sum(done) == COUNT

        await wait_for(all_delivered, 600, 2, what="every stream's files delivered")
        delivered_after = time.monotonic() - ended
    finally:
        worker.terminate()
        worker.wait(30)
        await kube.core.delete_namespaced_pod(worker_name, NAMESPACE, grace_period_seconds=0)
    objects = sum(
        (s.get("artifacts") or {}).get("objects", 0) for s in await statuses(kube, namespace)
    )
    _save(
        "rtmsPool",
        {
            "streams": COUNT,
            "sendRateMs": 100,
            "secondsMeasured": round(wall, 1),
            "startToAllStreamingSeconds": round(all_streaming, 1),
            "webhookToFirstAudioSeconds": _quantiles(first),
            "workerRssMb": {"idle": round(idle_rss, 1), "streaming": round(busy_rss, 1)},
            "workerRssPerStreamKb": round((busy_rss - idle_rss) * 1024 / COUNT, 1),
            "workerCpuPerStreamPctOfCore": round(100 * worker_cpu / wall / COUNT, 3),
            "workerCpuPctOfCore": round(100 * worker_cpu / wall, 1),
            "operatorCpuPctOfCore": round(100 * operator_cpu / wall, 1),
            "endToAllDeliveredSeconds": round(delivered_after, 1),
            "objectsDelivered": objects,
            "browserBotBeside": {
                "pssMb": round(bot_pss, 1),
                "cpuPctOfCore": round(100 * bot_cpu / wall, 1),
            },
        },
    )
