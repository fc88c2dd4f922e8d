"""The GitOps examples: Argo CD's health check for MeetingBot, run in a real Lua runtime
(lupa) against sample objects, and the manifests parse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import LuaRuntime

GITOPS = Path(__file__).resolve().parents[2] / "examples" / "gitops"


def health(obj: dict[str, Any]) -> dict[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)
    script = (GITOPS / "meetingbot-health.lua").read_text()
    check = lua.eval(f"function(obj)\n{script}\nend")
    result = check(lua.table_from(_lua(lua, obj)))
    return {"status": result["status"], "message": result["message"]}


def _lua(lua: LuaRuntime, value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (lua.table_from(_lua(lua, v)) if isinstance(v, dict) else v)
            for k, v in value.items()
        }
    return value


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "Progressing"),
        ({"phase": "Pending", "reason": "ZoomRateLimited"}, "Progressing"),
        ({"phase": "Scheduled"}, "Progressing"),
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


def test_the_config_map_carries_the_same_script() -> None:
    (config_map,) = yaml.safe_load_all((GITOPS / "argocd-cm.yaml").read_text())
    assert (
        config_map["data"]["resource.customizations.health.meetingbot.dev_MeetingBot"]
        == (GITOPS / "meetingbot-health.lua").read_text()
    )


def test_manifests_parse() -> None:
    for path in GITOPS.glob("*.yaml"):
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert documents and all("kind" in d for d in documents), path
