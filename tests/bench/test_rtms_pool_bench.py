"""RTMS through the whole path (`make bench PYTEST_ARGS="-k rtms_pool"`), written to
bench-results/results.json and printed; never asserted.

MeetingStreams, each for a meeting with one scripted speaker; Zoom (the simulator) starts
every stream and posts `meeting.rtms_started` to an operator, which gives them to stream
workers: `python -m meetingbot_bot.rtms` as processes of this machine (each one's pod is a kwok
pod, so its token is a real pod-bound token), which receive them and delivers their WAV segments
and events through the operator's presigned uploads to the object store. Zoom's messages carry
100 ms (`media.sendRateMs`), segments are 30 s.

Measured over BENCH_RTMS_POOL_SECONDS (default 30) of streaming: the workers' RSS per stream
and CPU per stream (all workers together), the operator's CPU; from Zoom's start (its webhook) to the first audio
byte Zoom sent the worker, per stream; then, once the meetings end, how long until every
stream's files are delivered. Two runs:

- BENCH_RTMS_POOL_STREAMS (300) streams with the session's simulator and operator, and beside
  them a browser bot (a MeetingBot on the real node) recording the first of those meetings:
  its PSS and CPU over the same window. (That simulator runs inside the test process: at 1000
  streams it saturated that process, which measured the harness, not the worker.)
- BENCH_RTMS_POOL_LARGE (1000; 0 skips it) streams with a simulator in a process of its own,
  an operator of its own and five workers of 200 streams (the chart's default capacity), and
  again a browser bot recording the first meeting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from devenv.cluster import cluster
from devenv.cluster.node import node_ip
from devenv.cluster.objectstore import remove_bucket
from devenv.operator_process import OperatorProcess, install_crds
from devenv.zoomsim import SimAdmin, fake_sdk_url
from devenv.zoomsim.server import free_port
from meetingbot_api import GROUP, VERSION
from meetingbot_contract.rtms import WORKER_AUDIENCE
from tests.bench.test_bot_latency import pod_memory_mb, pod_uid
from tests.bench.test_burst import histogram
from tests.bench.test_capture_bench import cpu_seconds as pod_cpu_seconds
from tests.bench.test_results_bench import _quantiles, _save
from tests.bench.test_rtms_bench import cpu_seconds, rss_mb
from tests.support.artifacts import ScratchBucket, bucket_for
from tests.support.meeting_script import capture_spec
from tests.support.operator_fixtures import Bots, Kube, account_ready, wait_for, zoom_account
from tests.support.specs import ON_KWOK
from tests.support.stream_workers import IDENTITY, NAMESPACE, SERVICE_ACCOUNT, ensure_namespace
from tests.support.streams import app_secret

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
    path = tmp / f"{name}.token"
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
    numbers = await _streams_for(kube, namespace, sim, zoom, bucket, COUNT)
    await wait_for(lambda: _all_in(kube, namespace, "Waiting", COUNT), 300, 2, what="Waiting")

    beside = await _bot_beside(bots, image, numbers[0], bucket)

    worker_name = f"bench-worker-{uuid.uuid4().hex[:6]}"
    token_file = await worker_identity(kube, worker_name, tmp_path)
    worker = _worker(worker_name, operator.report_url, token_file, tmp_path, COUNT)
    try:
        figures = await _measure(kube, namespace, sim, zoom, numbers, [worker], operator, beside)
    finally:
        _stop(worker)
        await kube.core.delete_namespaced_pod(worker_name, NAMESPACE, grace_period_seconds=0)
    _save("rtmsPool", figures)


async def _bot_beside(
    bots: Bots, image: str, number: str, bucket: ScratchBucket
) -> tuple[str, str, str]:
    """A browser bot (a MeetingBot on the real node) recording the meeting, once it records:
    its pod's namespace, name and uid."""
    await bots.apply("beside", capture_spec(image, number, bucket))
    await bots.wait_status(
        "beside",
        lambda s: any(
            c["type"] == "Recording" and c["status"] == "True" for c in s.get("conditions", [])
        ),
        timeout=180,
    )
    [pod] = await bots.pods("beside")
    return bots.namespace, pod.metadata.name, pod_uid(bots.namespace, pod.metadata.name)


async def _streams_for(
    kube: Kube,
    namespace: str,
    sim: SimAdmin,
    app: dict[str, Any],
    bucket: ScratchBucket,
    count: int,
) -> list[str]:
    """`count` meetings, each with one speaker talking, and a MeetingStream for each."""
    await app_secret(kube, namespace, "rtms-app", app)
    print(f"[bench] rtms pool: {count} meetings and MeetingStreams", flush=True)
    numbers = []
    for i in range(count):
        number = sim.create_meeting(app["id"], audio_path="wasm")["number"]
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
    return numbers


async def _each(call: Callable[[str], Any], numbers: list[str]) -> list[Any]:
    """A simulator call for every meeting, 32 at a time (one after the other, the busy
    simulator's answers spread 1000 starts over minutes: no longer a burst)."""
    turns = asyncio.Semaphore(32)

    async def one(number: str) -> Any:
        async with turns:
            return await asyncio.to_thread(call, number)

    return list(await asyncio.gather(*(one(number) for number in numbers)))


async def _diagnose(kube: Kube, namespace: str, sim: SimAdmin) -> None:
    """What a run that did not get every stream Streaming left: the phases, and what Zoom
    (the simulator) saw of its streams and of its webhooks' answers."""
    phases = Counter(str(s.get("phase")) for s in await statuses(kube, namespace))
    seen = sim.rtms_streams()
    zoom = Counter(
        f"{s['state']}:{s['stopReason']}:{'ready' if s['ready'] else 'not-ready'}" for s in seen
    )
    answers = Counter(str(d.get("status") or d.get("error")) for s in seen for d in s["deliveries"])
    print(f"[bench] rtms pool: phases {dict(phases)}; zoom {dict(zoom)}; webhook answers "
          f"{dict(answers)}", flush=True)  # fmt: skip


async def _all_in(kube: Kube, namespace: str, phase: str, count: int) -> bool:
    phases = [str(s.get("phase")) for s in await statuses(kube, namespace)]
    return phases.count(phase) == count


def _worker(
    name: str, operator_url: str, token_file: Path, tmp: Path, capacity: int
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "meetingbot_bot.rtms"],
        cwd=ROOT,
        env={
            **os.environ,
            "MEETINGBOT_WORKER_NAME": name,
            "MEETINGBOT_OPERATOR_URL": operator_url,
            "MEETINGBOT_WORKER_TOKEN_FILE": str(token_file),
            "MEETINGBOT_SPOOL": str(tmp / name / "spool"),
            "MEETINGBOT_WORKER_CAPACITY": str(capacity),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _measure(
    kube: Kube,
    namespace: str,
    sim: SimAdmin,
    app: dict[str, Any],
    numbers: list[str],
    workers: list[subprocess.Popen[bytes]],
    operator: OperatorProcess,
    beside: tuple[str, str, str] | None = None,
    simulator_pid: int | None = None,
) -> dict[str, Any]:
    """Start every stream; measure over SECONDS once all stream; end the meetings and wait
    until every stream's files are delivered. Workers' figures are their sums."""
    assert operator.process is not None
    operator_pid = operator.process.pid
    count = len(numbers)
    await asyncio.sleep(3)
    idle_rss = sum(rss_mb(w.pid) for w in workers)
    print(f"[bench] rtms pool: starting {count} streams", flush=True)
    started = time.monotonic()
    # Over the starts, each process's share of the two cores: who the burst's time goes to.
    watched = {"operator": operator_pid}
    if simulator_pid is not None:
        watched["simulator"] = simulator_pid
    burst_cpu = {who: cpu_seconds(pid) for who, pid in watched.items()}
    streams = await _each(lambda number: sim.start_rtms(number, app["id"]), numbers)
    starts_took = time.monotonic() - started
    try:
        await wait_for(
            lambda: _all_in(kube, namespace, "Streaming", count), 300, 5, what="Streaming"
        )
    except TimeoutError:
        await _diagnose(kube, namespace, sim)
        raise
    all_streaming = time.monotonic() - started
    burst_cpu_pct = {
        who: round(100 * (cpu_seconds(pid) - burst_cpu[who]) / all_streaming, 1)
        for who, pid in watched.items()
    }
    await asyncio.sleep(5)
    worker_cpu = sum(cpu_seconds(w.pid) for w in workers)
    operator_cpu = cpu_seconds(operator_pid)
    bot_cpu = pod_cpu_seconds(beside[0], beside[1]) if beside else 0.0
    window = time.monotonic()
    await asyncio.sleep(SECONDS)
    wall = time.monotonic() - window
    worker_cpu = sum(cpu_seconds(w.pid) for w in workers) - worker_cpu
    operator_cpu = cpu_seconds(operator_pid) - operator_cpu
    busy_rss = sum(rss_mb(w.pid) for w in workers)
    figures: dict[str, Any] = {}
    if beside:
        bot_cpu = pod_cpu_seconds(beside[0], beside[1]) - bot_cpu
        _, bot_pss, _ = pod_memory_mb(beside[2])
        figures["browserBotBeside"] = {
            "pssMb": round(bot_pss, 1),
            "cpuPctOfCore": round(100 * bot_cpu / wall, 1),
        }
    ours = {stream["id"] for stream in streams}
    seen_by_zoom = [s for s in sim.rtms_streams() if s["id"] in ours]  # one call: it is busy
    first = [
        seen["firstAudioAt"] - seen["startedAt"]
        for seen in seen_by_zoom
        if seen["firstAudioAt"] is not None
    ]
    # How Zoom's webhooks were answered (200 within its 3 s, or what went wrong), each try.
    answers = Counter(
        str(d.get("status") or d.get("error")) for s in seen_by_zoom for d in s["deliveries"]
    )
    took = [d["seconds"] for s in seen_by_zoom for d in s["deliveries"] if d.get("status")]
    # Beside what Zoom saw, the operator's share of it: its handler's time (a gap between the
    # two is time spent before the handler ran, or in the sender itself).
    answered = histogram(
        "meetingbot_zoom_webhook_answer_seconds", operator, labels={"webhook": "RTMS"}
    )
    print("[bench] rtms pool: ending the meetings", flush=True)
    ended = time.monotonic()
    await _each(sim.end_meeting, numbers)

    async def all_delivered() -> bool:
        found = await statuses(kube, namespace)
        done = [bool(s.get("streams") and s["streams"][0].get("delivered")) for s in found]
        return sum(done) == count

    await wait_for(all_delivered, 600, 5, what="every stream's files delivered")
    delivered_after = time.monotonic() - ended
    objects = sum(
        (s.get("artifacts") or {}).get("objects", 0) for s in await statuses(kube, namespace)
    )
    return {
        "streams": count,
        "workers": len(workers),
        "sendRateMs": 100,
        "secondsMeasured": round(wall, 1),
        "startsTookSeconds": round(starts_took, 1),
        "startToAllStreamingSeconds": round(all_streaming, 1),
        "webhookToFirstAudioSeconds": _quantiles(first),
        "webhookAnswers": dict(answers),
        "webhookAnsweredInSeconds": _quantiles(took) if took else None,
        "operatorWebhookAnswerSeconds": answered,
        "workerRssMb": {"idle": round(idle_rss, 1), "streaming": round(busy_rss, 1)},
        "workerRssPerStreamKb": round((busy_rss - idle_rss) * 1024 / count, 1),
        "workerCpuPerStreamPctOfCore": round(100 * worker_cpu / wall / count, 3),
        "workerCpuPctOfCore": round(100 * worker_cpu / wall, 1),
        "operatorCpuPctOfCore": round(100 * operator_cpu / wall, 1),
        "burstCpuPctOfCore": burst_cpu_pct,
        "endToAllDeliveredSeconds": round(delivered_after, 1),
        "objectsDelivered": objects,
        **figures,
    }


LARGE = int(os.environ.get("BENCH_RTMS_POOL_LARGE", "1000"))
WORKER_CAPACITY = 200  # the chart's streamWorkers.capacity


async def test_a_thousand_streams_through_the_whole_path(
    kube: Kube, kubeconfig: Path, image: str, tmp_path: Path
) -> None:
    """BENCH_RTMS_POOL_LARGE (1000) streams the same way, with the simulator in a process of
    its own (on loopback and on the node's address, where the bot's pod reaches it) and an operator of its own
    (its Zoom and RTMS servers are that simulator), in a namespace the session's operator does
    not watch. Beside them a browser bot records the first of those meetings."""
    if not LARGE:
        pytest.skip("BENCH_RTMS_POOL_LARGE is 0")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    install_crds()  # run alone, on a cluster no other test has prepared
    pod_host = node_ip()
    port = free_port()
    command = [sys.executable, "-m", "devenv.zoomsim", "--port", str(port)]
    command += ["--host", "127.0.0.1", "--host", pod_host]  # the operator's, the bot pod's
    simulator = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    sim_url = f"http://127.0.0.1:{port}"
    sim = SimAdmin(sim_url)
    suffix = uuid.uuid4().hex[:6]
    namespace = f"bench-rtms-{suffix}"
    operator = OperatorProcess(
        kubeconfig,
        tmp_path / "operator.log",
        namespaces="bench-rtms-*",
        rtms_servers=f"ws://127.0.0.1:{port}",
        allowed_endpoints=sim_url,
        bot_sdk_url=fake_sdk_url(f"http://{pod_host}:{port}"),
        storage_endpoints=cluster.object_store().endpoint,
        stream_workers=IDENTITY,
    )
    # As the chart would run them: workers of the chart's default capacity (200 streams),
    # as many as the streams need; each a process of its own, as each pod would be.
    names = [f"bench-worker-{suffix}-{i}" for i in range(-(-LARGE // WORKER_CAPACITY))]
    workers: list[subprocess.Popen[bytes]] = []
    try:
        await wait_for(lambda: _sim_up(sim), 30, 0.2, what="the simulator")
        operator.start()
        operator.wait_until_watching(f"bench-rtms-ready-{suffix}")
        await kube.core.create_namespace({"metadata": {"name": namespace}})
        bucket = await bucket_for(kube, namespace)
        # One Zoom account: the app's, and the one whose service user the bot joins as.
        app = await zoom_account(kube, namespace, sim, sim_url, extra_spec={"botImages": [image]})
        assert (await account_ready(kube, namespace))["status"] == "True"
        sim.update_account(app["id"], event_notification_url=f"{operator.oauth_url}/zoom/rtms")
        numbers = await _streams_for(kube, namespace, sim, app, bucket, LARGE)
        await wait_for(
            lambda: _all_in(kube, namespace, "Waiting", LARGE), 300, 2, what="all Waiting"
        )
        beside = await _bot_beside(Bots(kube, namespace), image, numbers[0], bucket)
        for name in names:
            token_file = await worker_identity(kube, name, tmp_path)
            workers.append(
                _worker(name, operator.report_url, token_file, tmp_path, WORKER_CAPACITY)
            )
        figures = await _measure(
            kube, namespace, sim, app, numbers, workers, operator, beside, simulator.pid
        )
        figures["simulator"] = "its own process"
        _save("rtmsPoolLarge", figures)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            _stop(worker)
        operator.stop()
        simulator.terminate()
        simulator.wait(10)
        sim.close()
        for name in names:
            with contextlib.suppress(ApiException):
                await kube.core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
        with contextlib.suppress(ApiException):
            await kube.core.delete_namespace(namespace)
        with contextlib.suppress(ApiException):
            await kube.core.delete_namespace(f"bench-rtms-ready-{suffix}")
        remove_bucket(cluster.cache_dir(), namespace)  # gigabytes of WAV


def _sim_up(sim: SimAdmin) -> bool:
    try:
        sim.set_faults()
    except Exception:
        return False
    return True


def _stop(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the worker delivers what it holds, for its drain time), then SIGKILL."""
    worker.terminate()
    try:
        worker.wait(40)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(10)
