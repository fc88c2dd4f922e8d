"""The one MeetingBot spec builder of the tests."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from meetingbot_api import MeetingBot
from meetingbot_contract import BotIdentity, JoinConfig, MeetingInfo, ReportTarget

DEFAULT_NUMBER = "12345678901"
# kwok's fake nodes carry this taint (devenv/cluster): pods of scripted bots go there, where
# kwok marks them Running without running anything.
ON_KWOK: dict[str, Any] = {
    "nodeSelector": {"type": "kwok"},
    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
}


def bot_spec(
    number: str = DEFAULT_NUMBER, *, on_kwok: bool = True, **fields: Any
) -> dict[str, Any]:
    """A valid spec for the ZoomAccount "main": the meeting `number`, overridden by `fields`.

    The pod goes to a kwok node (a scripted bot plays the bot) unless `on_kwok` is false: then
    to the real node, where the container runs (the image must be imported: the `image`
    fixture)."""
    spec = {
        "accountRef": {"name": "main"},
        "meeting": {"number": number},
        "displayName": "Notetaker",
        **fields,
    }
    if on_kwok:
        template = dict(spec.get("podTemplate") or {})
        template.setdefault("nodeSelector", ON_KWOK["nodeSelector"])
        template["tolerations"] = [*template.get("tolerations", []), *ON_KWOK["tolerations"]]
        spec["podTemplate"] = template
    return spec


def meeting_bot(status: dict[str, Any] | None = None, **fields: Any) -> MeetingBot:
    """A parsed MeetingBot for the decisions' unit tests: `bot_spec()` and a status."""
    spec = bot_spec(on_kwok=False, **fields)
    return MeetingBot.model_validate({"spec": spec, "status": status or {}})


def join_config(
    namespace: str = "bots", name: str = "notetaker", uid: str = "0000-uid"
) -> JoinConfig:
    """A join Secret's document, as the operator writes it (values made up)."""
    return JoinConfig(
        bot=BotIdentity(namespace=namespace, name=name, uid=uid, attempt=1),
        meeting=MeetingInfo(number=DEFAULT_NUMBER),
        display_name="Notetaker",
        auth="zak",
        sdk_key="k",
        signature=SecretStr("s"),
        zak=SecretStr("z"),
        report=ReportTarget(url="http://operator/report", token=SecretStr("t")),
    )


def largest_pod_template() -> dict[str, Any]:
    """A podTemplate at every cap of the CRD (the adversarial pass's tenant, within them)."""
    key = "a" * 253 + "/" + "b" * 54  # 308 characters: 8 more make each key distinct
    annotations = {f"{key}{i:08d}": "v" * (32768 // 64 - 317) for i in range(64)}
    env = [{"name": f"V{i}", "value": "v" * (32768 // 64 - 4)} for i in range(64)]
    return {
        "annotations": annotations,
        "env": env,
        "labels": {f"{key}{i:08d}": "l" * 63 for i in range(32)},
        "nodeSelector": {f"{key}{i:08d}": "n" * 63 for i in range(32)},
        "tolerations": [
            {"key": f"{key}{i:08d}", "operator": "Equal", "value": "t" * 63, "effect": "NoSchedule"}
            for i in range(32)
        ],
    }
