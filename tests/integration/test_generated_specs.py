"""Generated MeetingBots against the real API server and the operator (hypothesis): each is
either refused at apply time with a message saying what is wrong, or the operator gives it a
status with a phase and conditions; the operator never logs a traceback."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devenv.cluster import cluster
from devenv.operator_process import OperatorProcess
from tests.support.specs import ON_KWOK

COUNTER = itertools.count()
# Words the API server uses when it refuses a field (OpenAPI schema or CEL rule).
REFUSALS = ("Invalid value", "Required value", "Unsupported value", "Too long", "must ")

texts = st.text(min_size=0, max_size=80)
numbers = st.one_of(st.from_regex(r"[0-9]{5,14}", fullmatch=True), texts, st.integers(-10, 10**13))
seconds = st.one_of(st.integers(-10, 10**9), st.none())
specs = st.fixed_dictionaries(
    {
        "accountRef": st.fixed_dictionaries({"name": st.sampled_from(["main", "", "Bad Name"])}),
        "meeting": st.fixed_dictionaries(
            {"number": numbers}, optional={"passcode": texts, "joinUrl": texts}
        ),
        "displayName": st.one_of(texts, st.sampled_from(["Notetaker", "bot\u202e", "x" * 65])),
    },
    optional={
        "auth": st.sampled_from(["zak", "none", "obf", "auto", "ZAK", ""]),
        "user": texts,
        "joinAt": st.one_of(
            st.datetimes(timezones=st.just(UTC)).map(
                lambda d: d.isoformat().replace("+00:00", "Z")
            ),
            texts,
        ),
        "leave": st.fixed_dictionaries(
            {},
            optional={
                "waitingRoomTimeoutSeconds": seconds,
                "maxDurationSeconds": seconds,
                "everyoneLeftTimeoutSeconds": seconds,
            },
        ),
        "retry": st.fixed_dictionaries({"limit": st.integers(-3, 20)}),
        "ttlSecondsAfterFinished": seconds,
        "startTimeoutSeconds": seconds,
        "podTemplate": st.fixed_dictionaries(
            {},
            optional={
                "image": st.one_of(texts, st.just("registry.example.com/bot:1")),
                "resources": st.fixed_dictionaries(
                    {
                        "limits": st.fixed_dictionaries(
                            {"memory": st.sampled_from(["1Gi", "lots", "-1"])}
                        )
                    }
                ),
                "labels": st.dictionaries(texts, texts, max_size=3),
            },
        ),
    },
)


def strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    return value


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=specs)
def test_a_generated_bot_is_refused_with_a_message_or_gets_a_status(
    namespace: str, operator: OperatorProcess, spec: dict[str, Any]
) -> None:
    spec = strip_none(spec)
    template = spec.setdefault("podTemplate", {})
    template.setdefault("nodeSelector", ON_KWOK["nodeSelector"])  # never a real container
    template["tolerations"] = ON_KWOK["tolerations"]
    name = f"gen-{next(COUNTER)}"
    body = {
        "apiVersion": "meetingbot.dev/v1alpha1",
        "kind": "MeetingBot",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    applied = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(body), check=False)
    if applied.returncode != 0:
        assert any(word in applied.stderr for word in REFUSALS), applied.stderr
        return
    deadline = time.monotonic() + 30
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        got = cluster.kubectl("-n", namespace, "get", "mb", name, "-o", "json", check=False)
        status = json.loads(got.stdout).get("status") or {} if got.returncode == 0 else {}
        if status.get("phase") and status.get("conditions"):
            break
        time.sleep(0.3)
    assert status.get("phase") and status.get("conditions"), (spec, status)
    cluster.kubectl("-n", namespace, "delete", "mb", name, "--wait=false", check=False)
    assert "Traceback" not in operator.log_path.read_text()
