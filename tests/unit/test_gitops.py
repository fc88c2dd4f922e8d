"""The GitOps examples: Argo CD's health checks, run in a real Lua runtime (lupa) against
sample objects; the Flux example's CEL health expressions, evaluated (cel-python); the
manifests parse. (kstatus itself reads the operator's objects in test_gitops_status.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy.adapter import json_to_cel
from lupa import LuaRuntime

GITOPS = Path(__file__).resolve().parents[2] / "examples" / "gitops"


def health(obj: dict[str, Any], script_name: str = "meetingbot-health.lua") -> dict[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)
    script = (GITOPS / script_name).read_text()
    check = lua.eval(f"function(obj)\n{script}\nend")
    result = check(lua.table_from(_lua(lua, obj)))
    return {"status": result["status"], "message": result["message"]}


def _lua(lua: LuaRuntime, value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (lua.table_from(_lua(lua, v)) if isinstance(v, dict | list) else v)
            for k, v in value.items()
        }
    if isinstance(value, list):  # a Lua sequence (1-based), as Argo CD hands lists over
        return [lua.table_from(_lua(lua, v)) if isinstance(v, dict | list) else v for v in value]
    return value


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "Progressing"),
        ({"phase": "Pending", "reason": "ZoomRateLimited"}, "Progressing"),
        # Scheduled does not hold a sync wave until joinAt.
        ({"phase": "Scheduled", "reason": "Scheduled"}, "Healthy"),
        ({"phase": "WaitingRoom"}, "Progressing"),
        ({"phase": "InMeeting"}, "Healthy"),
        ({"phase": "Succeeded", "reason": "MeetingEnded"}, "Healthy"),
        (
            {"phase": "Failed", "reason": "WrongPasscode", "message": "attempt 1: Zoom error 3004"},
            "Degraded",
        ),
    ],
)
def test_argocd_health(status: dict[str, Any] | None, expected: str) -> None:
    obj: dict[str, Any] = {
        "apiVersion": "meetingbot.dev/v1alpha1",
        "kind": "MeetingBot",
        "metadata": {"name": "b"},
    }
    if status is not None:
        obj["status"] = status
    result = health(obj)
    assert result["status"] == expected
    if status and status.get("reason"):
        assert status["reason"] in result["message"]


def conditions(ready: str, reason: str, stalled: str = "False") -> dict[str, Any]:
    return {
        "observedGeneration": 1,
        "conditions": [
            {"type": "Ready", "status": ready, "reason": reason, "message": "words"},
            {"type": "Reconciling", "status": "False", "reason": reason, "message": "words"},
            {"type": "Stalled", "status": stalled, "reason": reason, "message": "words"},
        ],
    }


@pytest.mark.parametrize("kind", ["ZoomAccount", "ZoomUserGrant", "MeetingBotSchedule"])
@pytest.mark.parametrize(
    ("status", "generation", "expected"),
    [
        (None, 1, "Progressing"),
        (conditions("True", "Verified"), 1, "Healthy"),
        (conditions("False", "ZoomCredentialsInvalid", stalled="True"), 1, "Degraded"),
        (conditions("False", "GrantRevoked", stalled="True"), 1, "Degraded"),
        (conditions("False", "SecretNotFound"), 1, "Progressing"),
        (conditions("False", "AwaitingAuthorization"), 1, "Progressing"),
        # A spec the operator has not looked at yet: Progressing, whatever the old status.
        (conditions("True", "Verified"), 2, "Progressing"),
    ],
)
def test_argocd_health_of_accounts_and_grants(
    kind: str, status: dict[str, Any] | None, generation: int, expected: str
) -> None:
    obj: dict[str, Any] = {
        "apiVersion": "meetingbot.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "generation": generation},
    }
    if status is not None:
        obj["status"] = status
    result = health(obj, "conditions-health.lua")
    assert result["status"] == expected
    if status and generation == 1:
        assert status["conditions"][0]["reason"] in result["message"]


def test_the_config_map_carries_the_same_scripts() -> None:
    (config_map,) = yaml.safe_load_all((GITOPS / "argocd-cm.yaml").read_text())
    scripts = {
        "MeetingBot": "meetingbot-health.lua",
        "ZoomAccount": "conditions-health.lua",
        "ZoomUserGrant": "conditions-health.lua",
        "MeetingBotSchedule": "conditions-health.lua",
    }
    for kind, script in scripts.items():
        key = f"resource.customizations.health.meetingbot.dev_{kind}"
        assert config_map["data"][key] == (GITOPS / script).read_text(), kind


def flux_health(kind: str, status: dict[str, Any]) -> str:
    """What the Flux example's healthCheckExprs say of an object: current, failed or neither."""
    kustomization = next(
        d
        for d in yaml.safe_load_all((GITOPS / "flux-kustomization.yaml").read_text())
        if d["kind"] == "Kustomization"
    )
    (rule,) = [r for r in kustomization["spec"]["healthCheckExprs"] if r["kind"] == kind]
    env = celpy.Environment()
    activation = {"status": json_to_cel(status)}
    for verdict in ("failed", "current"):
        if env.program(env.compile(rule[verdict])).evaluate(activation):
            return verdict
    return "inProgress"


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        ("MeetingBot", {"phase": "Scheduled"}, "current"),
        ("MeetingBot", {"phase": "Joining"}, "inProgress"),
        ("MeetingBot", {"phase": "Succeeded"}, "current"),
        ("MeetingBot", {"phase": "Failed"}, "failed"),
        ("ZoomAccount", conditions("True", "Verified"), "current"),
        ("ZoomAccount", conditions("False", "ZoomCredentialsInvalid", "True"), "failed"),
        ("ZoomAccount", conditions("False", "SecretNotFound"), "inProgress"),
        ("ZoomUserGrant", conditions("False", "AwaitingAuthorization"), "inProgress"),
        ("ZoomUserGrant", conditions("False", "GrantRevoked", "True"), "failed"),
        ("MeetingBotSchedule", conditions("True", "Scheduled"), "current"),
        ("MeetingBotSchedule", conditions("False", "InvalidSchedule", "True"), "failed"),
        ("MeetingBotSchedule", conditions("False", "ZoomUnavailable"), "inProgress"),
    ],
)
def test_flux_health_expressions(kind: str, status: dict[str, Any], expected: str) -> None:
    assert flux_health(kind, status) == expected


def test_manifests_parse() -> None:
    for path in GITOPS.glob("*.yaml"):
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert documents and all("kind" in d for d in documents), path
