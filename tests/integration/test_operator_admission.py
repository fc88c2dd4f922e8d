"""Bad input is refused at apply time by the CRD schema and CEL rules, with messages a user
can act on; bad credentials show on the ZoomAccount and the bots that use it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.cluster import cluster
from devenv.operator_process import OperatorProcess, install_crds
from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.operator_fixtures import (
    SECRET_USE_LABEL,
    Bots,
    Kube,
    account_ready,
    patch_account,
    zoom_account,
)
from tests.support.specs import bot_spec, largest_pod_template

VALID: dict[str, Any] = bot_spec()


def apply(
    namespace: str, spec: dict[str, Any], name: str = "bad"
) -> subprocess.CompletedProcess[str]:
    manifest = {
        "apiVersion": "meetingbot.dev/v1alpha1",
        "kind": "MeetingBot",
        "metadata": {"name": name},
        "spec": spec,
    }
    return subprocess.run(
        [
            str(cluster.Binaries.in_cache().kubectl),
            "--kubeconfig",
            str(cluster.kubeconfig_path()),
            "-n",
            namespace,
            "apply",
            "-f",
            "-",
        ],
        input=yaml.safe_dump(manifest),
        text=True,
        capture_output=True,
        check=False,
    )


@pytest.fixture(scope="module")
def crds(kubeconfig: Any) -> None:
    install_crds()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"meeting": {"number": "12345678901", "joinUrl": "https://zoom.us/j/12345678901"}},
            "set exactly one of number or joinUrl",
        ),
        ({"meeting": {}}, "set exactly one of number or joinUrl"),
        ({"meeting": {"number": "12-34"}}, 'spec.meeting.number: Invalid value: "12-34"'),
        (
            {"meeting": {"joinUrl": "https://evil.example.com/j/12345678901"}},
            "spec.meeting.joinUrl: Invalid value",
        ),
        (
            {
                "meeting": {
                    "number": "12345678901",
                    "passcode": "a",
                    "passcodeSecretRef": {"name": "s", "key": "k"},
                }
            },
            "set at most one passcode source",
        ),
        ({"auth": "obf"}, "auth obf needs obf.grantRef (or obf.userTokenSecretRef)"),
        (
            {
                "auth": "obf",
                "obf": {
                    "grantRef": {"name": "g"},
                    "userTokenSecretRef": {"name": "s", "key": "k"},
                },
            },
            "obf needs exactly one of grantRef and userTokenSecretRef",
        ),
        ({"auth": "password"}, 'spec.auth: Unsupported value: "password"'),
        ({"auth": "none", "user": "a@b.c"}, "user applies only to auth zak or auto"),
        ({"joinAt": "tomorrow at noon"}, "spec.joinAt"),
        (
            {"leave": {"maxDurationSeconds": 0}},
            "maxDurationSeconds in body should be greater than or equal to 60",
        ),
        ({"leave": {"waitingRoomTimeoutSeconds": -5}}, "should be greater than or equal to 0"),
        ({"retry": {"limit": 50}}, "should be less than or equal to 10"),
        ({"ttlSecondsAfterFinished": -1}, "should be greater than or equal to 0"),
        ({"displayName": ""}, "spec.displayName"),
        ({"accountRef": None}, "spec.accountRef: Required value"),
        # Bounds: nothing that overflows a deadline or loops at pod creation gets in.
        (
            {"leave": {"maxDurationSeconds": 10**12}},
            "maxDurationSeconds in body should be less than or equal to 604800",
        ),
        ({"joinAt": "0001-01-01T00:00:00Z"}, "joinAt must be between"),
        ({"ttlSecondsAfterFinished": 10**12}, "should be less than or equal to 31536000"),
        ({"startTimeoutSeconds": 1}, "should be greater than or equal to 10"),
        ({"displayName": "Note\u0000taker"}, "spec.displayName"),
        ({"displayName": "evil\u202egnp.exe"}, "spec.displayName"),
        ({"podTemplate": {"image": "bot image:1"}}, "spec.podTemplate.image"),
        ({"podTemplate": {"resources": {"limits": {"memory": "lots"}}}}, "memory"),
        (
            {
                "podTemplate": {
                    "annotations": {
                        "container.apparmor.security.beta.kubernetes.io/bot": "unconfined"
                    }
                }
            },
            "annotations in the kubernetes.io and k8s.io domains",
        ),
        (
            {"podTemplate": {"env": [{"name": "MEETINGBOT_SDK_URL", "value": "https://x/a.js"}]}},
            "MEETINGBOT_*, HOME, LD_*, PYTHON* and NODE_OPTIONS",
        ),
        (
            {"podTemplate": {"env": [{"name": "LD_PRELOAD", "value": "/tmp/x.so"}]}},
            "MEETINGBOT_*, HOME, LD_*, PYTHON* and NODE_OPTIONS",
        ),
        (
            {"podTemplate": {"labels": {"meetingbot.dev/attempt": "7"}}},
            "labels under meetingbot.dev/ are the operator's",
        ),
    ],
)
def test_invalid_specs_are_refused_with_a_readable_message(
    crds: None, namespace: str, change: dict[str, Any], message: str
) -> None:
    spec = {**VALID, **change}
    spec = {k: v for k, v in spec.items() if v is not None}
    result = apply(namespace, spec)
    assert result.returncode != 0, f"accepted: {spec}"
    assert message in result.stderr, result.stderr


def test_a_name_too_long_for_the_bots_pods_is_refused(crds: None, namespace: str) -> None:
    result = apply(namespace, VALID, name="b" * 64)
    assert result.returncode != 0
    assert "metadata.name: Too long" in result.stderr, result.stderr
    assert apply(namespace, VALID, name="b" * 63).returncode == 0


async def test_a_valid_spec_is_accepted_with_defaults(
    crds: None, namespace: str, kube: Kube
) -> None:
    result = apply(
        namespace,
        {**VALID, "meeting": {"joinUrl": "https://us02web.zoom.us/j/12345678901?pwd=abc"}},
        name="good",
    )
    assert result.returncode == 0, result.stderr
    body = await kube.custom.get_namespaced_custom_object(
        "meetingbot.dev", "v1alpha1", namespace, "meetingbots", "good"
    )
    assert body["spec"]["auth"] == "zak"
    assert body["spec"]["leave"] == {
        "waitingRoomTimeoutSeconds": 900,
        "noOneJoinedTimeoutSeconds": 900,
        "everyoneLeftTimeoutSeconds": 60,
        "maxDurationSeconds": 14400,
    }
    assert body["spec"]["retry"] == {"limit": 2}


def test_meeting_and_identity_are_immutable(crds: None, namespace: str) -> None:
    assert apply(namespace, VALID, name="fixed").returncode == 0
    changed = apply(namespace, {**VALID, "meeting": {"number": "98765432109"}}, name="fixed")
    assert changed.returncode != 0
    assert "meeting is immutable; create a new MeetingBot" in changed.stderr
    renamed = apply(namespace, {**VALID, "displayName": "Other"}, name="fixed")
    assert "displayName is immutable" in renamed.stderr
    # Mutable fields can change.
    assert apply(namespace, {**VALID, "ttlSecondsAfterFinished": 60}, name="fixed").returncode == 0


async def test_missing_and_wrong_credentials_give_clear_conditions(
    kube: Kube,
    namespace: str,
    bots: Bots,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    operator: OperatorProcess,
) -> None:
    zoom = await zoom_account(kube, namespace, sim, zoomsim.url)
    await account_ready(kube, namespace)
    await kube.core.delete_namespaced_secret("main-api", namespace)
    await patch_account(kube, namespace, {"plan": "business"})

    async def ready_because(reason: str, timeout: float) -> dict[str, Any]:
        return await account_ready(
            kube, namespace, predicate=lambda r: r["reason"] == reason, timeout=timeout
        )

    ready = await ready_because("SecretNotFound", 30)
    assert ready["status"] == "False"
    assert ready["message"] == "Secret 'main-api' not found"

    await bots.apply(
        "waiting", {**VALID, "meeting": {"number": sim.create_meeting(zoom["id"])["number"]}}
    )
    bot = await bots.wait_reason("waiting", "SecretNotFound")
    assert bot["phase"] == "Pending"
    assert "ZoomAccount not ready" in bot["message"]

    # Re-created without the opt-in label: the operator will not use it (nor send it anywhere).
    # It watches only labelled Secrets, so this one is found by the 30 s recheck of accounts
    # that are not Ready.
    await kube.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "main-api"},
            "stringData": {
                "accountId": zoom["id"],
                "clientId": zoom["client_id"],
                "clientSecret": "wrong",
            },
        },
    )
    ready = await ready_because("SecretNotAllowed", 45)
    assert "meetingbot.dev/secret-for=zoom-credentials" in ready["message"]
    await kube.core.patch_namespaced_secret(
        "main-api", namespace, {"metadata": {"labels": {SECRET_USE_LABEL: "zoom-credentials"}}}
    )
    ready = await ready_because("ZoomCredentialsInvalid", 15)
    # Zoom's code in the operator's own words; nothing the endpoint wrote, no secret.
    assert "Zoom code 4702 (invalid client id or client secret)" in ready["message"]
    assert "wrong" not in ready["message"]

    await kube.core.patch_namespaced_secret(
        "main-api", namespace, {"stringData": {"clientSecret": zoom["client_secret"]}}
    )
    await account_ready(kube, namespace, predicate=lambda r: r["status"] == "True", timeout=45)
    await bots.wait_pods("waiting", timeout=45)


@pytest.mark.parametrize(
    "name",
    [
        "zoomaccount.yaml",
        "meetingbot.yaml",
        "meetingbot-scheduled.yaml",
        "gitops/standup-notetaker.yaml",
    ],
)
def test_the_examples_are_valid(crds: None, namespace: str, name: str) -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / name
    result = cluster.kubectl(
        "-n", namespace, "apply", "--dry-run=server", "-f", str(path), check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("zak", "refused"),
    [
        ({"ttlSeconds": 600, "minRemainingSeconds": 600}, True),  # a ZAK could never be shared
        ({"ttlSeconds": 600, "minRemainingSeconds": 600, "reuse": False}, False),
        ({"ttlSeconds": 7200}, False),  # the defaults: reuse, 600 s
    ],
)
def test_zak_reuse_settings_are_checked_at_apply_time(
    crds: None, namespace: str, zak: dict[str, Any], refused: bool
) -> None:
    account = {
        "apiVersion": "meetingbot.dev/v1alpha1",
        "kind": "ZoomAccount",
        "metadata": {"name": "reuse", "namespace": namespace},
        "spec": {
            "sdkCredentialsSecretRef": {"name": "sdk"},
            "apiCredentialsSecretRef": {"name": "api"},
            "users": ["bot@example.com"],
            "zak": zak,
        },
    }
    result = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(account), check=False)
    assert (result.returncode != 0) == refused, result.stderr
    if refused:
        assert "minRemainingSeconds must be less than ttlSeconds" in result.stderr


# Names that would each reach another object if pasted into an API path, and their encodings.
PATH_TRICKS = ["x/../other", "../../victims/secrets/zoom", "a%2Fb", "%2e%2e", "..", "A", "a b"]
# Every reference a tenant writes, as (kind, the field's path, how to set it in a valid spec).
BOT_REFS: dict[str, Callable[[str], dict[str, Any]]] = {
    "accountRef": lambda name: {"accountRef": {"name": name}},
    "meeting.passcodeSecretRef": lambda name: {
        "meeting": {"number": "12345678901", "passcodeSecretRef": {"name": name, "key": "pc"}}
    },
    "obf.grantRef": lambda name: {"auth": "obf", "obf": {"grantRef": {"name": name}}},
    "obf.userTokenSecretRef": lambda name: {
        "auth": "obf",
        "obf": {"userTokenSecretRef": {"name": name, "key": "token"}},
    },
}


@pytest.mark.parametrize("trick", PATH_TRICKS)
@pytest.mark.parametrize("field", sorted(BOT_REFS))
def test_every_meetingbot_reference_is_a_name(
    crds: None, namespace: str, field: str, trick: str
) -> None:
    result = apply(namespace, {**VALID, **BOT_REFS[field](trick)})
    assert result.returncode != 0, f"{field}={trick!r} accepted"
    assert f"spec.{field}.name" in result.stderr, result.stderr


@pytest.mark.parametrize("trick", PATH_TRICKS)
def test_every_account_and_grant_reference_is_a_name(
    crds: None, namespace: str, trick: str
) -> None:
    account = {
        "apiVersion": "meetingbot.dev/v1alpha1",
        "kind": "ZoomAccount",
        "metadata": {"name": "refs", "namespace": namespace},
        "spec": {
            "sdkCredentialsSecretRef": {"name": trick},
            "apiCredentialsSecretRef": {"name": trick},
            "users": ["bot@example.com"],
        },
    }
    grant = {
        "apiVersion": "meetingbot.dev/v1alpha1",
        "kind": "ZoomUserGrant",
        "metadata": {"name": "refs", "namespace": namespace},
        "spec": {"accountRef": {"name": trick}, "appCredentialsSecretRef": {"name": trick}},
    }
    for body, fields in (
        (account, ("sdkCredentialsSecretRef", "apiCredentialsSecretRef")),
        (grant, ("accountRef", "appCredentialsSecretRef")),
    ):
        result = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(body), check=False)
        assert result.returncode != 0, f"{body['kind']} with {trick!r} accepted"
        for field in fields:
            assert f"spec.{field}.name" in result.stderr, result.stderr


@pytest.mark.parametrize("passcode", ["12\n34", "ab\u0000cd", "x\u007fy", "tab\there"])
def test_a_passcode_with_control_characters_is_refused(
    crds: None, namespace: str, passcode: str
) -> None:
    result = apply(namespace, {**VALID, "meeting": {"number": "12345678901", "passcode": passcode}})
    assert result.returncode != 0, f"passcode {passcode!r} accepted"
    assert "spec.meeting.passcode" in result.stderr, result.stderr


def test_the_largest_legal_pod_template_stays_small(crds: None, namespace: str) -> None:
    """The CRD's caps bound what one MeetingBot can hold: at most 32 768 characters of
    annotations and of env each, label-sized node selectors, keys of at most 317 characters.
    One character more in any of them is refused; the largest legal bot is about 100 KB."""
    largest = largest_pod_template()
    accepted = apply(namespace, {**VALID, "podTemplate": largest}, name="largest")
    assert accepted.returncode == 0, accepted.stderr
    size = len(json.dumps({**VALID, "podTemplate": largest}))
    print(f"\nthe largest legal MeetingBot spec: {size / 1000:.0f} KB")
    first = next(iter(largest["annotations"]))
    over = {
        "annotations": {**largest["annotations"], first: "v" * 400},  # 32 904 in all
        "env": [*largest["env"][:-1], {"name": "V63", "value": "x" * 1024}],
        "nodeSelector": {"pool": "x" * 64},
        "labels": {"k" * 318: "v"},
    }
    for field, value in over.items():
        result = apply(namespace, {**VALID, "podTemplate": {**largest, field: value}}, name="over")
        assert result.returncode != 0, f"{field} over its cap was accepted"
        assert f"spec.podTemplate.{field}" in result.stderr, result.stderr
