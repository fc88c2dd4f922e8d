"""Children builders, the CRDs' freshness, redaction, report tokens, settings."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import json
import logging
import ssl
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from meetingbot_api import MeetingBotSpec, meeting_number
from meetingbot_contract import BotIdentity, JoinConfig, MeetingInfo, ReportTarget, logs
from meetingbot_operator import crdgen, outbound
from meetingbot_operator.conditions import condition_reason
from meetingbot_operator.identities.claims import ZOOM_ACCOUNT_ANNOTATION, ZOOM_USER_ANNOTATION
from meetingbot_operator.keys import ReportTokens
from meetingbot_operator.kube.client import TLS_READ_BUFFER, resource_of, tls_read_buffers
from meetingbot_operator.meetingbot.children import bot_pod, join_secret
from meetingbot_operator.meetingbot.observed import Meta
from meetingbot_operator.meetingbot.workqueue import WorkQueue
from meetingbot_operator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
META = Meta(name="bot", namespace="ns", uid="uid-1", generation=1)
SPEC = MeetingBotSpec.model_validate(
    {
        "accountRef": {"name": "main"},
        "meeting": {"number": "12345678901"},
        "displayName": "Bot",
        "podTemplate": {
            "image": "custom:1",
            "resources": {"limits": {"memory": "2Gi"}},
            "tolerations": [{"key": "bots", "operator": "Exists"}],
            "env": [{"name": "X", "value": "1"}],
        },
    }
)


def config() -> JoinConfig:
    return JoinConfig(
        bot=BotIdentity(namespace="ns", name="bot", uid="uid-1", attempt=2),
        meeting=MeetingInfo(number="12345678901", passcode=SecretStr("pw")),
        display_name="Bot",
        auth="zak",
        sdk_key="key",
        signature=SecretStr("sig.nat.ure"),
        zak=SecretStr("zak-token-value"),
        report=ReportTarget(url="http://op/report", token=SecretStr("report-token")),
    )


def test_crds_and_the_reference_are_generated_from_the_models() -> None:
    """crds/ (canonical, with its kustomization), the chart's copy and docs/reference.md are
    what the generator makes of today's models."""
    stale = [
        str(path.relative_to(crdgen.ROOT))
        for path, text in crdgen.outputs().items()
        if not path.exists() or path.read_text() != text
    ]
    assert stale == [], f"stale: {stale}; run make crds"
    assert sorted(p.name for p in crdgen.CHART_CRD_DIR.iterdir()) == sorted(crdgen.definitions())


def test_every_crd_field_has_a_description() -> None:
    """What `kubectl explain` prints: nothing is left without words (but metadata, which the
    API server describes itself and refuses to have described)."""
    missing: list[str] = []

    def walk(node: dict[str, object], path: str) -> None:
        properties = node.get("properties")
        for key, child in (properties if isinstance(properties, dict) else {}).items():
            here = f"{path}.{key}"
            if here.count(".") == 1 and key == "metadata":
                continue
            if not child.get("description"):
                missing.append(here)
            walk(child, here)
            if isinstance(child.get("items"), dict):
                walk(child["items"], f"{here}[]")

    for document in crdgen.definitions().values():
        schema = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        walk(schema, document["spec"]["names"]["kind"])
    assert missing == []


def test_crd_schemas_are_structural() -> None:
    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
            assert node.get("additionalProperties") is not False, path
            if "properties" in node or "items" in node:
                assert node.get("type") in ("object", "array"), path
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    for document in crdgen.definitions().values():
        walk(document["spec"]["versions"][0]["schema"], "schema")


def test_the_pod_is_locked_down() -> None:
    pod = bot_pod(META, 2, SPEC, Settings())
    assert pod["metadata"]["name"] == "bot-2"
    assert pod["metadata"]["labels"]["meetingbot.dev/attempt"] == "2"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    assert container["image"] == "custom:1"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"]["memory"] == "2Gi"
    assert container["resources"]["requests"]["cpu"] == Settings().bot_cpu_request
    assert {"name": "X", "value": "1"} in container["env"]
    assert spec["tolerations"] == [{"key": "bots", "operator": "Exists"}]
    join = next(v for v in spec["volumes"] if v["name"] == "join")
    assert join["secret"]["secretName"] == "bot-join"


def test_a_zak_pod_says_which_user_it_holds_and_only_the_operator_says_it() -> None:
    """The claims ledger counts live pods by these annotations (identities/claims.py): a
    podTemplate cannot set them, and a pod with no service user (OBF) carries none."""
    forged = {ZOOM_USER_ANNOTATION: "someone@else", ZOOM_ACCOUNT_ANNOTATION: "x", "team": "a"}
    template = SPEC.pod_template.model_copy(update={"annotations": forged})
    spec = SPEC.model_copy(update={"pod_template": template})
    zak = bot_pod(META, 1, spec, Settings(), "svc@example.com")["metadata"]["annotations"]
    assert zak == {
        ZOOM_USER_ANNOTATION: "svc@example.com", ZOOM_ACCOUNT_ANNOTATION: "main", "team": "a"
    }  # fmt: skip
    assert bot_pod(META, 1, spec, Settings())["metadata"]["annotations"] == {"team": "a"}


def test_the_secret_holds_the_versioned_document() -> None:
    secret = join_secret(META, 2, config())
    document = json.loads(secret["stringData"]["join.json"])
    assert document["apiVersion"] == "meetingbot.dev/v1"
    assert document["zak"] == "zak-token-value"
    assert document["bot"]["attempt"] == 2
    assert secret["metadata"]["annotations"]["meetingbot.dev/attempt"] == "2"
    assert JoinConfig.model_validate(document).zak is not None
    assert "zak-token-value" not in repr(config())


def test_meeting_number_from_a_join_link() -> None:
    spec = MeetingBotSpec.model_validate(
        {
            "accountRef": {"name": "a"},
            "meeting": {"joinUrl": "https://us02web.zoom.us/j/81234567890?pwd=x"},
            "displayName": "B",
        }
    )
    assert meeting_number(spec.meeting) == "81234567890"


def test_redaction(caplog: pytest.LogCaptureFixture) -> None:
    logs.redact("registered-secret-value")
    record = logging.makeLogRecord(
        {
            "msg": "got %s and Bearer abcdefghijkl and zak=qwertyuiop",
            "args": ("registered-secret-value",),
            "extra_field": {"token": "registered-secret-value"},
        }
    )
    logs.RedactingFilter().filter(record)
    assert record.getMessage() == "got *** and Bearer *** and zak=***"
    assert vars(record)["extra_field"] == {"token": "***"}


def test_redaction_of_many_registered_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values that share their first characters, that contain one another, sit inside other
    text or at its ends are all masked; the oldest are forgotten past the bound, the rest
    still masked."""
    monkeypatch.setattr(logs, "_REGISTERED", type(logs._REGISTERED)())
    monkeypatch.setattr(logs, "_BY_PREFIX", {})
    monkeypatch.setattr(logs, "_MAX_REGISTERED", 1000)
    tokens = [f"tok-{i:06d}-{'x' * 20}" for i in range(1200)]
    logs.redact(*tokens, "short", "samestart-one", "samestart-two", "samestart-one-longer")
    assert "short" not in logs._REGISTERED  # under 8 characters: too common to mask
    assert logs.scrub(f"{tokens[-1]}:{tokens[-500]}") == "***:***"
    assert logs.scrub("a samestart-two b samestart-one-longer c") == "a *** b *** c"
    assert logs.scrub("samestart-onesamestart-two") == "******"
    assert logs.scrub(f"old {tokens[0]}") == f"old {tokens[0]}"  # forgotten
    assert not any(tokens[0] in bucket for bucket in logs._BY_PREFIX.values())
    assert logs.scrub("nothing here") == "nothing here"


def test_report_tokens_bind_bot_and_attempt() -> None:
    tokens = ReportTokens(SecretStr("key"))
    token = tokens.token("ns", "bot", "uid", 1).get_secret_value()
    second = tokens.token("ns", "bot", "uid", 2).get_secret_value()
    assert tokens.attempt_of(token, "ns", "bot", "uid", 1) == 1
    assert tokens.attempt_of(token, "ns", "bot", "uid", 3) == 1  # an earlier attempt's token
    assert tokens.attempt_of(second, "ns", "bot", "uid", 1) is None  # not yet issued
    assert tokens.attempt_of(token, "ns", "other", "uid", 1) is None
    assert tokens.attempt_of(token, "ns", "bot", "another-uid", 1) is None
    assert ReportTokens(SecretStr("other-key")).attempt_of(token, "ns", "bot", "uid", 1) is None


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEETINGBOT_NAMESPACES", "team-a, team-b")
    monkeypatch.setenv("MEETINGBOT_BOT_IMAGE", "registry.example.com/bot:2")
    settings = Settings()
    assert settings.namespaces == ["team-a", "team-b"]
    assert settings.bot_image == "registry.example.com/bot:2"


def test_every_string_list_and_map_of_the_crds_is_bounded() -> None:
    """CEL cost and etcd both want bounds: every string has a maxLength (or an enum, or is a
    date-time), every list a maxItems, every map a maxProperties."""
    unbounded: list[str] = []

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        exempt = node.get("format") == "date-time" or path in (".apiVersion", ".kind")
        if kind == "string" and not ({"maxLength", "enum"} & node.keys()) and not exempt:
            unbounded.append(path)
        if kind == "array" and "maxItems" not in node:
            unbounded.append(path)
        if isinstance(node.get("additionalProperties"), dict) and "maxProperties" not in node:
            unbounded.append(path)
        for key, child in (node.get("properties") or {}).items():
            walk(child, f"{path}.{key}")
        walk(node.get("items"), f"{path}[]")
        walk(node.get("additionalProperties"), f"{path}{{}}")

    for document in crdgen.definitions().values():
        walk(document["spec"]["versions"][0]["schema"]["openAPIV3Schema"], "")
    assert unbounded == []


def test_condition_reasons_are_always_acceptable() -> None:
    assert condition_reason("MeetingEnded") == "MeetingEnded"
    assert condition_reason("left: 3 people, 1 bot") == "left3people1bot"
    assert condition_reason("42") == "Unknown"


async def test_events_are_rate_limited_and_can_be_turned_off() -> None:
    from meetingbot_operator.kube.events import EventRecorder

    posted: list[float] = []

    class FakeKube:  # stands in for the API server's create_event only
        async def create_event(self, event: dict[str, Any]) -> None:
            posted.append(asyncio.get_running_loop().time())

    body = {
        "apiVersion": "meetingbot.dev/v1alpha1",
        "kind": "MeetingBot",
        "metadata": {"name": "b", "namespace": "ns", "uid": "u"},
    }
    off = EventRecorder(FakeKube(), per_second=0)  # type: ignore[arg-type]
    off.post(body, "Normal", "Starting", "x")
    assert off.queue.empty()
    await off.close()
    limited = EventRecorder(FakeKube(), per_second=20)  # type: ignore[arg-type]
    for i in range(30):
        limited.post(body, "Normal", "Starting", str(i))
    await asyncio.sleep(0.3)
    assert 20 <= len(posted) < 30  # the burst (20) goes at once, the rest at 20/s
    await asyncio.wait_for(limited.queue.join(), 5)
    assert len(posted) == 30
    await limited.close()


async def test_the_sweep_passes_only_bots_idle_for_a_sweep_interval() -> None:
    """At scale the sweep must not become a reconcile storm: a bot that had a pass within
    the interval is left alone; one that had none (or never) gets one."""
    passes: list[tuple[str, str]] = []

    async def work(key: tuple[str, str]) -> None:
        passes.append(key)

    queue = WorkQueue(work, concurrency=10)
    busy, idle, unseen = ("ns", "busy"), ("ns", "idle"), ("ns", "unseen")
    queue.trigger(idle)
    await asyncio.sleep(0.2)
    queue.trigger(busy)
    await asyncio.sleep(0.05)
    passes.clear()
    assert queue.sweep([busy, idle, unseen], idle_for=0.15) == 2
    await asyncio.sleep(0.05)
    assert sorted(passes) == [idle, unseen]
    assert queue.sweep([busy, idle, unseen], idle_for=0.0) == 3  # interval 0: every bot
    await queue.stop()


async def test_at_most_the_configured_passes_run_at_once_and_none_is_lost() -> None:
    """A burst of 50 bots with room for 5 passes: never more than 5 at once, each bot gets its
    pass, and a trigger that arrives while a bot waits for its turn is part of that pass."""
    running, most, passes = 0, 0, Counter[tuple[str, str]]()
    release = asyncio.Event()

    async def work(key: tuple[str, str]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        passes[key] += 1
        running -= 1

    queue = WorkQueue(work, concurrency=5)
    keys = [("ns", f"b{i}") for i in range(50)]
    for key in keys:
        queue.trigger(key)
    await asyncio.sleep(0.05)
    assert running == 5
    queue.trigger(keys[-1])  # still waiting for a turn: coalesced into its first pass
    release.set()
    for _ in range(100):
        if sum(passes.values()) >= 50:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert most == 5
    assert passes == Counter(dict.fromkeys(keys, 1))
    await queue.stop()


async def test_bots_yet_to_start_take_their_turn_before_the_others() -> None:
    """With every place taken, the waiting bots that have not started go first, in the order
    they came; then the others, in theirs. None is lost."""
    order: list[str] = []
    release = asyncio.Event()

    async def work(key: tuple[str, str]) -> None:
        await release.wait()
        order.append(key[1])

    fresh = {"new1", "new2", "new3"}
    queue = WorkQueue(work, concurrency=1, first=lambda key: key[1] in fresh)
    for name in ("busy", "old1", "new1", "old2", "new2", "new3"):
        queue.trigger(("ns", name))
        await asyncio.sleep(0)
    release.set()
    for _ in range(100):
        if len(order) == 6:
            break
        await asyncio.sleep(0.01)
    assert order == ["busy", "new1", "new2", "new3", "old1", "old2"]
    await queue.stop()


async def test_the_others_go_first_once_they_have_waited_their_patience() -> None:
    """A burst of starts does not hold status passes back for longer than the patience: those
    that have waited that long go ahead of the starts, each line in its order."""
    order: list[str] = []
    release = asyncio.Event()

    async def work(key: tuple[str, str]) -> None:
        await release.wait()
        order.append(key[1])

    queue = WorkQueue(
        work, concurrency=1, first=lambda key: key[1].startswith("new"), patience=0.05
    )
    for name in ("new0", "old1", "old2", "new1", "new2", "new3"):
        queue.trigger(("ns", name))
        await asyncio.sleep(0)
    await asyncio.sleep(0.1)  # the others have now waited longer than their patience
    release.set()
    for _ in range(100):
        if len(order) == 6:
            break
        await asyncio.sleep(0.01)
    assert order == ["new0", "old1", "old2", "new1", "new2", "new3"]
    await queue.stop()


async def test_a_forgotten_bot_waiting_for_its_turn_gets_no_pass_and_a_new_one_gets_one() -> None:
    """A bot deleted while it waits leaves the line; the workers, once the lines are empty,
    are gone, and a bot triggered after that gets a worker (none waits with nobody serving)."""
    passes: list[str] = []
    release = asyncio.Event()

    async def work(key: tuple[str, str]) -> None:
        await release.wait()
        passes.append(key[1])

    queue = WorkQueue(work, concurrency=1)
    for name in ("busy", "gone", "kept"):
        queue.trigger(("ns", name))
        await asyncio.sleep(0)
    queue.forget(("ns", "gone"))
    release.set()
    for _ in range(100):
        if len(passes) == 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert passes == ["busy", "kept"]
    queue.trigger(("ns", "gone"))  # re-created: a pass of its own
    for _ in range(100):
        if len(passes) == 3:
            break
        await asyncio.sleep(0.01)
    assert passes == ["busy", "kept", "gone"]
    await queue.stop()


async def test_a_trigger_during_a_pass_runs_one_pass_more_after_it() -> None:
    passes: list[str] = []
    release = asyncio.Event()

    async def work(key: tuple[str, str]) -> None:
        passes.append(key[1])
        await release.wait()

    queue = WorkQueue(work, concurrency=4)
    queue.trigger(("ns", "b"))
    await asyncio.sleep(0.01)
    for _ in range(3):  # coalesced into one more pass
        queue.trigger(("ns", "b"))
    release.set()
    await asyncio.sleep(0.05)
    assert passes == ["b", "b"]
    await queue.stop()


async def test_a_pass_followed_runs_again_at_once_ahead_of_the_lines() -> None:
    """A start's pass hands its result on: the bot's next pass comes straight after, before
    the bots waiting in either line, and a trigger during the first is part of it."""
    order: list[str] = []
    release = asyncio.Event()
    queue: WorkQueue

    async def work(key: tuple[str, str]) -> None:
        await release.wait()
        order.append(key[1])
        if key[1] == "new0" and order.count("new0") == 1:
            queue.trigger(key)  # its own pod event, say: coalesced into the follow-up
            queue.follow(key)

    queue = WorkQueue(work, concurrency=1, first=lambda key: key[1].startswith("new"))
    for name in ("new0", "new1", "old1"):
        queue.trigger(("ns", name))
        await asyncio.sleep(0)
    release.set()
    for _ in range(100):
        if len(order) == 4:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert order == ["new0", "new0", "new1", "old1"]
    await queue.stop()


def test_a_thousand_waiting_bots_cost_line_entries_not_tasks() -> None:
    """What the lines are for: at 10 000 bots a task per waiting pass held 22 MB."""

    async def scenario() -> int:
        release = asyncio.Event()

        async def work(key: tuple[str, str]) -> None:
            await release.wait()

        queue = WorkQueue(work, concurrency=10)
        for i in range(1000):
            queue.trigger(("ns", f"b{i}"))
        await asyncio.sleep(0.01)
        tasks = len([t for t in asyncio.all_tasks() if t.get_name() == "reconcile worker"])
        release.set()
        await queue.stop()
        return tasks

    assert asyncio.run(scenario()) == 10


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/api/v1/namespaces/team/pods", "pods"),
        ("/api/v1/namespaces/team/pods/b1-1", "pods"),
        (
            "/apis/meetingbot.dev/v1alpha1/namespaces/team/meetingbots/b1/status",
            "meetingbots/status",
        ),
        ("/apis/coordination.k8s.io/v1/namespaces/team/leases/leader", "leases"),
        ("/api/v1/namespaces/team", "namespaces"),
        ("/apis/authentication.k8s.io/v1/selfsubjectreviews", "selfsubjectreviews"),
        ("/version", "(root)"),
    ],
)
def test_the_request_metric_names_the_resource_never_the_object(path: str, resource: str) -> None:
    """Object and namespace names would give the metric a series per bot."""
    assert resource_of(path) == resource


def bot_pod_seen() -> dict[str, Any]:
    """Attempt 1's pod of bot "ns/bot" (uid "u"), as a watch brings it, Pending."""
    return {
        "metadata": {
            "namespace": "ns",
            "name": "bot-1",
            "labels": {"meetingbot.dev/bot": "bot", "meetingbot.dev/attempt": "1"},
            "ownerReferences": [{"uid": "u", "controller": True}],
        },
        "status": {"phase": "Pending"},
    }


def test_a_status_lag_runs_from_the_first_change_no_status_write_has_carried() -> None:
    from meetingbot_operator.meetingbot.cache import BotCache

    cache = BotCache()
    key = ("ns", "bot")
    cache.observe_bot("ADDED", {"metadata": {"namespace": "ns", "name": "bot", "uid": "u"}})
    record = cache.get(key)
    assert record is not None and record.waiting_since is None
    pod = bot_pod_seen()
    cache.observe_pod("ADDED", pod)
    first = record.waiting_since
    assert first is not None
    cache.observe_pod("MODIFIED", {**pod, "status": {"phase": "Running"}})
    assert record.waiting_since == first  # the oldest change uncarried counts
    record.waiting_since = None  # carried by a status write
    assert cache.observe_pod("MODIFIED", {**pod, "status": {"phase": "Running"}}) is None
    assert record.waiting_since is None  # nothing the decisions read changed: no lag begins


def test_a_pod_the_operator_created_starts_a_status_lag_before_its_watch_event() -> None:
    """The start's own pod counts as a change from the moment it is created: the followed
    pass that writes its status measures the lag, as a pod event's pass would."""
    from meetingbot_operator.meetingbot.cache import BotCache
    from meetingbot_operator.meetingbot.observed import Meta

    cache = BotCache()
    cache.observe_bot("ADDED", {"metadata": {"namespace": "ns", "name": "bot", "uid": "u"}})
    record = cache.get(("ns", "bot"))
    assert record is not None and record.waiting_since is None
    cache.created_pod(("ns", "bot"), Meta(name="bot", namespace="ns", uid="u", generation=1), 1)
    assert record.waiting_since is not None
    assert record.pods[1][1].name == "bot-1"


def test_a_bot_is_known_from_its_first_body_not_from_an_earlier_pod_event() -> None:
    """Reports are accepted from when the MeetingBot is seen: its liveness counts from then,
    and a later event of the same bot does not move it."""
    from meetingbot_operator.meetingbot.cache import BotCache

    cache = BotCache()
    pod = bot_pod_seen()
    cache.observe_pod("ADDED", pod)
    record = cache.get(("ns", "bot"))
    assert record is not None and record.known_since is None
    body = {"metadata": {"namespace": "ns", "name": "bot", "uid": "u", "resourceVersion": "1"}}
    cache.observe_bot("ADDED", body)
    first = record.known_since
    assert first is not None
    cache.observe_bot("MODIFIED", {"metadata": {**body["metadata"], "resourceVersion": "2"}})
    assert record.known_since == first
    cache.observe_bot("MODIFIED", {"metadata": {**body["metadata"], "uid": "v"}})
    renewed = cache.get(("ns", "bot"))
    assert renewed is not None and renewed is not record and renewed.known_since is not None


def test_bots_expected_at_a_start_are_waited_for_while_the_lists_still_bring_objects() -> None:
    """A new leader listing a loaded shard for longer than the patience still answers "not
    yet" to a bot it will see; once nothing has been listed for that long, the bot is gone."""
    from meetingbot_operator.meetingbot.expected import ExpectedBots

    now = [0.0]
    expected = ExpectedBots(clock=lambda: now[0])
    expected.expect({("ns", "a"), ("ns", "b")}, patience=40)
    for _ in range(5):  # 60 s of listing, an object every 12 s
        now[0] += 12
        expected.listing()
        assert expected.waiting()
    expected.seen(("ns", "a"))
    now[0] += 39
    assert expected.waiting()  # "b" may yet come
    now[0] += 2
    assert not expected.waiting()  # 41 s with nothing listed: deleted before it was seen
    expected.listing()
    assert not expected.waiting()  # given up on, not waited for again

    expected.expect({("ns", "c")}, patience=40)
    expected.seen(("ns", "c"))
    assert not expected.waiting()  # all seen: reports from unknown bots are unknown at once

    # A shard taken in place while "d" is awaited: every unknown bot is awaited until its
    # bots are named, then those too.
    expected.expect({("ns", "d")}, patience=40)
    expected.seen(("ns", "d"))
    expected.hold()
    now[0] += 100
    assert expected.waiting()  # held: no names yet, whatever the time
    expected.expect({("other", "e")}, patience=40)
    assert expected.waiting()
    expected.seen(("other", "e"))
    assert not expected.waiting()


async def test_tls_connections_read_into_small_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncio allocates each TLS connection's read buffer from SSLProtocol.max_size (256 KiB,
    resident): after tls_read_buffers() a new connection's is TLS_READ_BUFFER. Fails on a
    Python whose asyncio no longer reads that attribute, where the operator would quietly
    hold 256 KiB a connection again."""
    protocol = asyncio.sslproto.SSLProtocol
    monkeypatch.setattr(protocol, "max_size", protocol.max_size)  # restored after the test
    tls_read_buffers()
    loop = asyncio.get_running_loop()
    made = protocol(loop, asyncio.Protocol(), ssl.create_default_context(), loop.create_future())
    # What the transport reads each time into (BufferedProtocol.get_buffer).
    assert len(made.get_buffer(-1)) == TLS_READ_BUFFER < 256 * 1024


def test_outbound_clients_share_one_tls_context() -> None:
    """httpx loads the CA bundle for each client it makes (0.84 MB and 18 ms a client; the
    operator makes one for each ZoomAccount and each bucket): the operator's share one."""
    made = [outbound.client(), outbound.client(timeout=3, follow_redirects=False)]
    contexts = {id(getattr(c._transport, "_pool")._ssl_context) for c in made}  # noqa: B009
    assert contexts == {id(outbound.tls_context())}
