"""Bot-wide pod settings (the chart's bot.*) and what a MeetingBot's podTemplate may refine:
scheduling and pull secrets merged, the runtime class the platform's alone, environment from
the pod's fields or an opted-in Secret."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from meetingbot_api import MeetingBotSpec, PodTemplate
from meetingbot_operator.meetingbot.children import bot_pod, env_secrets
from meetingbot_operator.meetingbot.observed import Meta
from meetingbot_operator.settings import Settings

META = Meta(name="bot", namespace="ns", uid="uid-1", generation=1)
PLATFORM = {
    "MEETINGBOT_BOT_NODE_SELECTOR": json.dumps({"pool": "bots", "zone": "a"}),
    "MEETINGBOT_BOT_TOLERATIONS": json.dumps([{"key": "bots", "operator": "Exists"}]),
    "MEETINGBOT_BOT_PRIORITY_CLASS_NAME": "bots-default",
    "MEETINGBOT_BOT_RUNTIME_CLASS_NAME": "gvisor",
    "MEETINGBOT_BOT_IMAGE_PULL_SECRETS": "regcred,mirror",
}


def spec(**template: object) -> MeetingBotSpec:
    return MeetingBotSpec.model_validate({
        "accountRef": {"name": "main"}, "meeting": {"number": "12345678901"},
        "displayName": "Notetaker", "podTemplate": template,
    })  # fmt: skip


def test_the_platforms_defaults_reach_every_bot_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PLATFORM.items():
        monkeypatch.setenv(name, value)
    pod = bot_pod(META, 1, spec(), Settings())["spec"]
    assert pod["nodeSelector"] == {"pool": "bots", "zone": "a"}
    assert pod["tolerations"] == [{"key": "bots", "operator": "Exists"}]
    assert pod["priorityClassName"] == "bots-default"
    assert pod["runtimeClassName"] == "gvisor"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]


def test_a_pod_template_refines_them_within_the_platforms(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PLATFORM.items():
        monkeypatch.setenv(name, value)
    refined = spec(
        nodeSelector={"zone": "b", "gpu": "none"},  # zone: the platform's wins
        tolerations=[{"key": "spot", "operator": "Exists"}],
        priorityClassName="bots-high",
        imagePullSecrets=[{"name": "team-registry"}, {"name": "regcred"}],
    )
    pod = bot_pod(META, 1, refined, Settings())["spec"]
    assert pod["nodeSelector"] == {"pool": "bots", "zone": "a", "gpu": "none"}
    assert pod["tolerations"] == [
        {"key": "bots", "operator": "Exists"}, {"key": "spot", "operator": "Exists"}
    ]  # fmt: skip
    assert pod["priorityClassName"] == "bots-high"
    assert pod["runtimeClassName"] == "gvisor"
    assert pod["imagePullSecrets"] == [
        {"name": "regcred"}, {"name": "mirror"}, {"name": "team-registry"}
    ]  # fmt: skip
    assert "runtimeClassName" not in PodTemplate.model_json_schema(by_alias=True)["properties"]


def test_environment_from_a_field_or_a_secret_the_executor_checks() -> None:
    env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm", "key": "key"}}},
        {"name": "PLAIN", "value": "1"},
    ]
    s = spec(env=env)
    container = bot_pod(META, 1, s, Settings())["spec"]["containers"][0]
    assert {
        "name": "POD_IP",
        "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
    } in container["env"]
    assert {
        "name": "API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "llm", "key": "key"}},
    } in container["env"]
    assert env_secrets(s) == [("llm", "key")]
    with pytest.raises(ValidationError):  # not a field of the pod a bot may read
        spec(env=[{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}}])
