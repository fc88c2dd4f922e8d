"""The operator cannot be turned against its users, and never calls a failure a success.

One test (or more) per finding of the adversarial pass, through the real API server, the
operator as a process and the Zoom simulator: evictions, a recreated MeetingBot, forged pods,
Secrets and hosts reached through the operator, pod specs the API server refuses, silent or
stuck bots, the report endpoint's answers."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from devenv.zoomsim.server import free_port
from meetingbot_contract import BotReport, BotResult
from tests.support.operator_fixtures import (
    GROUP,
    SECRET_USE_LABEL,
    VERSION,
    Bots,
    Kube,
    account_ready,
    wait_for,
    zoom_account,
)
from tests.support.scripted_bot import Scripted
from tests.support.specs import bot_spec


def zaks(sim: SimAdmin, zoom: dict[str, Any]) -> int:
    """ZAKs the simulator has minted for this account."""
    return sim.calls().get(f"{zoom['id']}:zak", 0)


# --- 1. outcomes from facts ----------------------------------------------------------------------


async def test_an_evicted_bot_is_retried_not_succeeded(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    """`kubectl drain`, the autoscaler and preemption evict: the bot leaves on SIGTERM as it
    must, but the recording is not over, so the MeetingBot gets a new attempt."""
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("evicted", bot_spec(number))
    first = scripted("evicted")
    running = asyncio.create_task(first.run())
    await bots.wait_phase("evicted", "InMeeting")
    core = kube.core
    await core.create_namespaced_pod_eviction(
        "evicted-1",
        namespace,
        {"metadata": {"name": "evicted-1", "namespace": namespace}},
    )
    assert await running == "Canceled"  # the bot itself saw only a SIGTERM
    await bots.wait_event("evicted", "PodDisrupted")
    second = scripted("evicted")
    again = asyncio.create_task(second.run(attempt=2))
    status = await bots.wait_phase("evicted", "InMeeting", "Succeeded")
    assert (status["phase"], status["attempts"]) == ("InMeeting", 2), status
    sim.end_meeting(number)
    await again
    final = await bots.wait_phase("evicted", "Succeeded")
    assert (final["reason"], final["attempts"]) == ("MeetingEnded", 2)
    # The join Secret (a live ZAK) does not outlive the bot.
    await wait_for(_none(lambda: bots.secrets("evicted-join")), 30, what="Secret deleted")


# --- 2. ownership by UID -------------------------------------------------------------------------


async def test_a_recreated_meetingbot_does_not_inherit_the_old_pod(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    core = kube.core
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("reborn", bot_spec(number))
    old = scripted("reborn")
    running = asyncio.create_task(old.run())
    await bots.wait_phase("reborn", "InMeeting")
    sim.end_meeting(number)
    await running
    await bots.wait_phase("reborn", "Succeeded")
    # The old pod lingers after its MeetingBot is deleted (as it does while the garbage
    # collector is behind): a finalizer holds it, with its result and its old owner.
    await core.patch_namespaced_pod(
        "reborn-1", namespace, {"metadata": {"finalizers": ["test.meetingbot.dev/hold"]}}
    )
    await bots.delete("reborn")
    await wait_for(_none(lambda: bots.exists("reborn")), 30, what="deleted")
    second_number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("reborn", bot_spec(second_number))
    status = await bots.wait_reason("reborn", "NameConflict")
    assert status["phase"] == "Pending"
    assert "not this MeetingBot's" in status["message"]
    pod = await core.read_namespaced_pod("reborn-1", namespace)
    assert pod.metadata.deletion_timestamp is not None  # untouched, still on its way out
    # Once the old pod is gone, the new bot starts and joins its own meeting.
    await core.patch_namespaced_pod("reborn-1", namespace, {"metadata": {"finalizers": None}})
    new = scripted("reborn")
    joining = asyncio.create_task(new.run())
    status = await bots.wait_phase("reborn", "InMeeting", timeout=90)
    assert status["attempts"] == 1
    sim.end_meeting(second_number)
    await joining
    assert (await bots.wait_phase("reborn", "Succeeded"))["reason"] == ("MeetingEnded")


def _none(check: Any) -> Any:
    """A predicate for wait_for: true once what `check` gives (awaited) is empty or false."""

    async def predicate() -> bool:
        return not await check()

    return predicate


# --- 3. forged outcomes --------------------------------------------------------------------------


async def test_a_pod_with_our_labels_cannot_write_a_bots_outcome(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("target", bot_spec(number))
    bot = scripted("target")
    running = asyncio.create_task(bot.run())
    status = await bots.wait_phase("target", "InMeeting")
    uid = (await bots.get("target"))["metadata"]["uid"]
    core = kube.core
    result = BotResult(attempt=1, reason="WrongPasscode", message="forged")
    for name, owners in (
        ("forged", []),
        # Even naming the MeetingBot as its controller does not help a pod of another name.
        (
            "target-forged",
            [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "MeetingBot", "name": "target",
              "uid": uid, "controller": True}],
        ),
    ):  # fmt: skip
        await core.create_namespaced_pod(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "labels": {"meetingbot.dev/bot": "target", "meetingbot.dev/attempt": "1"},
                    "ownerReferences": owners,
                },
                "spec": {"containers": [{"name": "bot", "image": "busybox"}]},
            },
        )
        await core.patch_namespaced_pod_status(
            name,
            namespace,
            {
                "status": {
                    "phase": "Failed",
                    "containerStatuses": [
                        {
                            "name": "bot",
                            "ready": False,
                            "restartCount": 0,
                            "image": "busybox",
                            "imageID": "",
                            "state": {
                                "terminated": {
                                    "exitCode": 3,
                                    "reason": "Error",
                                    "message": result.model_dump_json(by_alias=True),
                                }
                            },
                        }
                    ],
                }
            },
        )
    await asyncio.sleep(3)
    status = await bots.status("target")
    assert (status["phase"], status.get("reason")) == ("InMeeting", None), status
    sim.end_meeting(number)
    await running
    final = await bots.wait_phase("target", "Succeeded", "Failed")
    assert (final["phase"], final["reason"]) == ("Succeeded", "MeetingEnded")


# --- 4. no confused deputy -----------------------------------------------------------------------


async def test_a_secret_without_the_opt_in_label_is_never_read_into_a_bot(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
) -> None:
    core = kube.core
    await core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": "db-creds"}, "stringData": {"password": "hunter2-db"}},
    )
    number = sim.create_meeting(zoom["id"])["number"]
    before = zaks(sim, zoom)
    await bots.apply(
        "deputy",
        bot_spec(number, meeting={"number": number, "passcodeSecretRef": {"name": "db-creds", "key": "password"}}),
    )  # fmt: skip
    status = await bots.wait_phase("deputy", "Failed", "Starting")
    assert (status["phase"], status["reason"]) == ("Failed", "SecretNotAllowed"), status
    assert "meetingbot.dev/secret-for=meeting-passcode" in status["message"]
    assert await bots.pods("deputy") == []
    assert not await bots.secrets("deputy-join")
    assert zaks(sim, zoom) == before


async def test_a_bots_environment_names_only_secrets_opted_in_for_it(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
) -> None:
    """podTemplate.env[].valueFrom.secretKeyRef would have the kubelet hand any Secret of the
    namespace to the bot's container: refused (no pod, no ZAK) unless the Secret carries
    meetingbot.dev/secret-for=bot-env; with it, the pod names the key and never holds it in
    its spec."""
    await kube.core.create_namespaced_secret(
        namespace, {"metadata": {"name": "db-creds"}, "stringData": {"password": "hunter2-db"}}
    )
    await kube.core.create_namespaced_secret(namespace, {
        "metadata": {"name": "llm", "labels": {SECRET_USE_LABEL: "bot-env"}},
        "stringData": {"key": "sk-test"},
    })  # fmt: skip
    number = sim.create_meeting(zoom["id"])["number"]
    before = zaks(sim, zoom)

    def env(secret: str, key: str) -> dict[str, Any]:
        variable = {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        return bot_spec(number, podTemplate={"env": [variable]})

    await bots.apply("deputy", env("db-creds", "password"))
    status = await bots.wait_phase("deputy", "Failed", "Starting")
    assert (status["phase"], status["reason"]) == ("Failed", "SecretNotAllowed"), status
    assert "meetingbot.dev/secret-for=bot-env" in status["message"]
    assert await bots.pods("deputy") == [] and zaks(sim, zoom) == before

    await bots.apply("allowed", env("llm", "key"))
    [pod] = await bots.wait_pods("allowed", timeout=30)
    variable = next(e for e in pod.spec.containers[0].env if e.name == "API_KEY")
    assert (variable.value, variable.value_from.secret_key_ref.name) == (None, "llm")


class _Listener:
    """A plain HTTP listener on loopback that counts what reaches it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                listener.requests.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"access_token":"leak","expires_in":3599}')

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    server = _Listener()
    yield server
    server.close()


async def test_credentials_are_never_sent_to_an_endpoint_the_operator_does_not_allow(
    kube: Kube,
    namespace: str,
    sim: SimAdmin,
    operator: OperatorProcess,
    listener: _Listener,
) -> None:
    await zoom_account(kube, namespace, sim, listener.url, name="stolen")
    ready = await account_ready(
        kube, namespace, "stolen", lambda r: r["reason"] == "ZoomEndpointNotAllowed"
    )
    assert ready["status"] == "False"
    assert "no credentials were sent" in ready["message"]
    await asyncio.sleep(2)
    assert listener.requests == []


async def test_an_unrelated_secret_with_the_join_secrets_name_is_never_touched(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
) -> None:
    core = kube.core
    await core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": "victim-join"}, "stringData": {"k": "v"}},
    )
    number = sim.create_meeting(zoom["id"])["number"]
    before = zaks(sim, zoom)
    await bots.apply("victim", bot_spec(number))
    status = await bots.wait_reason("victim", "NameConflict")
    assert status["phase"] == "Pending"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["reason"] == "NameConflict"
    await asyncio.sleep(4)  # retries come with backoff, and mint nothing more
    secret = await core.read_namespaced_secret("victim-join", namespace)
    assert secret.data == {"k": "dg=="}
    assert not secret.metadata.owner_references
    assert zaks(sim, zoom) - before <= 1  # at most the one that found the name taken
    assert await bots.pods("victim") == []
    await core.delete_namespaced_secret("victim-join", namespace)
    await bots.wait_pods("victim")


async def test_only_images_the_account_allows_receive_its_zaks(
    bots: Bots, zoom: dict[str, Any], sim: SimAdmin
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    before = zaks(sim, zoom)
    await bots.apply(
        "imposter", bot_spec(number, podTemplate={"image": "registry.example.com/steal:1"})
    )
    status = await bots.wait_phase("imposter", "Failed", "Starting")
    assert (status["phase"], status["reason"]) == ("Failed", "ImageNotAllowed"), status
    assert "botImages" in status["message"]
    assert await bots.pods("imposter") == []
    assert zaks(sim, zoom) == before


# --- 5. pod refusals: a reason, once, and no ZAK ---------------------------------------------


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ({"priorityClassName": "no-such-class"}, "no PriorityClass"),
        ({"labels": {"team": "not a valid value!"}}, "Invalid value"),
        ({"nodeSelector": {"bad key!": "x"}}, "Invalid value"),
    ],
)
async def test_a_pod_the_api_server_refuses_fails_the_bot_without_a_zak(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    template: dict[str, Any],
    words: str,
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    before = zaks(sim, zoom)
    await bots.apply("refused", bot_spec(number, podTemplate=template))
    status = await bots.wait_phase("refused", "Failed", timeout=30)
    assert status["reason"] == "PodSpecInvalid", status
    assert words in status["message"]
    assert status["attempts"] == 0
    await asyncio.sleep(2)
    assert zaks(sim, zoom) == before
    assert await bots.pods("refused") == []
    await bots.wait_event("refused", "PodSpecInvalid", 15)


async def test_a_quota_waits_with_backoff_and_a_condition_then_starts(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
) -> None:
    core = kube.core
    await core.create_namespaced_resource_quota(
        namespace,
        {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}},
    )
    number = sim.create_meeting(zoom["id"])["number"]
    before = zaks(sim, zoom)
    await bots.apply("quota", bot_spec(number))
    status = await bots.wait_reason("quota", "PodQuotaExceeded")
    assert status["phase"] == "Pending" and "trying again in" in status["message"]
    assert {c["type"]: c["reason"] for c in status["conditions"]}["Ready"] == "PodQuotaExceeded"
    await asyncio.sleep(3)
    assert zaks(sim, zoom) == before
    failures = (await bots.status("quota"))["startFailures"]
    assert 1 <= failures <= 4  # backoff, not a storm
    await core.delete_namespaced_resource_quota("no-pods", namespace)
    await bots.wait_pods("quota")
    assert zaks(sim, zoom) == before + 1


# --- 6. liveness, credentials, PodSecurity, the report endpoint ----------------------------------


async def test_a_bot_that_stops_reporting_is_stopped_and_retried(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("frozen", bot_spec(number))
    bot = scripted("frozen")
    bot.heartbeat = False  # in the meeting, then silent (a hung browser)
    running = asyncio.create_task(bot.run())
    await bots.wait_phase("frozen", "InMeeting")
    # The test operator expects a report every 2 s and gives up after 4 missed ones.
    await bots.wait_status("frozen", lambda s: s.get("attempts") == 2, 40, "a second attempt")
    await running
    assert "BotUnresponsive" in await bots.event_reasons("frozen")


async def test_an_unschedulable_pod_says_why_and_times_out(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply(
        "nowhere",
        bot_spec(
            number,
            retry={"limit": 0},
            startTimeoutSeconds=12,
            podTemplate={"nodeSelector": {"no-such-label": "x"}},
        ),
    )
    starting = await bots.wait_status(
        "nowhere", lambda s: "Unschedulable" in (s.get("message") or ""), 20, "Unschedulable"
    )
    assert starting["phase"] == "Starting"
    assert "Unschedulable" in await bots.event_reasons("nowhere")
    final = await bots.wait_phase("nowhere", "Failed", timeout=40)
    assert final["reason"] == "StartTimeout"
    assert "Unschedulable" in final["message"]


async def test_a_deleted_credentials_secret_is_noticed_at_once(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    operator: OperatorProcess,
) -> None:
    """The test operator rechecks Ready accounts only every 600 s: the Secret watch does it."""
    await kube.core.delete_namespaced_secret("main-api", namespace)
    ready = await account_ready(kube, namespace, predicate=lambda r: r["status"] == "False")
    assert ready["reason"] == "SecretNotFound"
    before = zaks(sim, zoom)
    await bots.apply("after", bot_spec(sim.create_meeting(zoom["id"])["number"]))
    await asyncio.sleep(3)
    assert (await bots.status("after"))["phase"] == "Pending"
    assert zaks(sim, zoom) == before


async def test_bots_run_under_pod_security_restricted(
    kube: Kube, namespace: str, bots: Bots, zoom: dict[str, Any], sim: SimAdmin
) -> None:
    core = kube.core
    await core.patch_namespace(
        namespace,
        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
    )
    # The API server really enforces it: a pod that is not restricted is refused...
    with pytest.raises(ApiException) as refused:
        await core.create_namespaced_pod(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "loose"},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        )
    assert refused.value.status == 403 and "PodSecurity" in str(refused.value.body)
    # ... and the bot's pod is admitted.
    await bots.apply("strict", bot_spec(sim.create_meeting(zoom["id"])["number"]))
    await bots.wait_pods("strict", timeout=30)
    # The status patch follows the pod's creation; it says the attempt started.
    await bots.wait_phase("strict", "Starting", timeout=10)


async def test_the_report_endpoint_answers_strangers_the_same(
    bots: Bots, zoom: dict[str, Any], sim: SimAdmin, operator: OperatorProcess
) -> None:
    await bots.apply("known", bot_spec(sim.create_meeting(zoom["id"])["number"]))
    await bots.wait_phase("known", "Starting")
    body = BotReport(attempt=1, state="InMeeting", joined_at=datetime.now(UTC))
    answers = []
    async with httpx.AsyncClient(timeout=5) as http:
        for name in ("known", "unknown"):
            response = await http.post(
                f"{operator.report_url}/v1/namespaces/{bots.namespace}/meetingbots/{name}/report",
                content=body.model_dump_json(by_alias=True),
                headers={"Authorization": "Bearer not-the-token"},
            )
            answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1] == (401, {"result": "unauthorized"})
