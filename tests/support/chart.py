"""The Helm chart in tests: rendering and installing it with the cached helm."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio.client.exceptions import ApiException

from devenv.cluster import cluster
from tests.support.operator_fixtures import Kube

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "meetingbot-operator"
# A release and namespace of the tests' own: `make demo` leaves its release
# (meetingbot-operator in meetingbot-system) running, and `make test` follows it on the same
# cluster. The release name contains the chart's, so it is also the objects' full name.
RELEASE, SYSTEM = "meetingbot-operator-test", "meetingbot-test"
KEY_SECRET = f"{RELEASE}-report-key"
NON_DEFAULT = {
    "watchNamespaces": ["team-a", "team-b"],
    "meetingBotQuota": 300,
    # What platform teams set first: an image by digest, an OpenShift-style security context
    # (no fixed UID), topology spread, labels that repeat a selector key.
    "image": {"digest": "sha256:" + "a" * 64},
    "podSecurityContext": {"runAsUser": None, "runAsGroup": None},
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "meetingbot-operator"}},
        }
    ],
    "podLabels": {"app.kubernetes.io/name": "not-the-selector", "team": "bots"},
    # As a subchart (a parent's global values), behind a proxy with a corporate CA.
    "global": {"imageRegistry": "registry.example.com"},
    "extraEnv": [
        {"name": "HTTPS_PROXY", "value": "http://proxy.example.com:3128"},
        {"name": "NO_PROXY", "valueFrom": {"configMapKeyRef": {"name": "proxy", "key": "no"}}},
        {"name": "SSL_CERT_FILE", "value": "/etc/corp-ca/ca.pem"},
    ],
    "extraVolumes": [{"name": "corp-ca", "configMap": {"name": "corp-ca"}}],
    "extraVolumeMounts": [{"name": "corp-ca", "mountPath": "/etc/corp-ca", "readOnly": True}],
    "serviceAccount": {"name": "custom-sa", "annotations": {"example.com/role": "bots"}},
    "operator": {
        "logLevel": "DEBUG",
        "startLeadSeconds": 30,
        "reportKey": {"existingSecret": "my-key"},
    },
    "bot": {
        "image": "registry.example.com/bot:1",
        "resources": {
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "2Gi"},
        },
    },
    "metrics": {"serviceMonitor": {"enabled": True}},
    "networkPolicy": {"enabled": True},
    "sandbox": {"enabled": True},
    "nodeSelector": {"pool": "system"},
    "priorityClassName": "system-cluster-critical",
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binaries = cluster.Binaries.in_cache()
    result = subprocess.run(
        [str(binaries.helm), "--kubeconfig", str(cluster.kubeconfig_path()), *args],
        text=True,
        capture_output=True,
        timeout=180,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


# What every install needs (the chart refuses to render without it): a bot image of one's own.
BOT_IMAGE = "registry.example.com/platform/meetingbot-bot:1.0"


def values_file(tmp_path: Path, values: dict[str, Any]) -> str:
    """The values as a file, with a bot image unless they name one."""
    bot = {"image": BOT_IMAGE, **(values.get("bot") or {})}
    path = tmp_path / f"values-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump({**values, "bot": bot}))
    return str(path)


def render(tmp_path: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    """`helm template` with these values: the documents it renders."""
    rendered = helm(
        "template", RELEASE, str(CHART), "--namespace", SYSTEM, "-f", values_file(tmp_path, values)
    ).stdout
    return [d for d in yaml.safe_load_all(rendered) if d]


def sandbox_values(
    watched: str, bot_image: str, operator_image: str, sim_image: str
) -> dict[str, Any]:
    """An install with the Zoom sandbox beside the operator, from the images on the node."""
    repository, tag = operator_image.rsplit(":", 1)
    sim_repository, sim_tag = sim_image.rsplit(":", 1)
    return {
        "watchNamespaces": [watched],
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "bot": {"image": bot_image},
        "sandbox": {
            "enabled": True,
            "image": {"repository": sim_repository, "tag": sim_tag, "pullPolicy": "Never"},
        },
    }


def assert_self_test_passes() -> None:
    """`helm test`: a pod in the cluster drives the sandbox's admin API (an account, a
    meeting), makes the account's Secrets, a ZoomAccount and a MeetingBot; a real bot joins;
    the meeting ends; the bot Succeeded (meetingbot_operator.selftest)."""
    result = helm("test", RELEASE, "--namespace", SYSTEM, "--timeout", "6m", "--logs",
                  check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED: the MeetingBot Succeeded (MeetingEnded)" in result.stdout


class Release:
    """A running install: the watched namespace, the simulator's in-cluster URL, its values."""

    def __init__(self, namespace: str, sandbox: str, tmp_path: Path) -> None:
        self.namespace = namespace
        self.sandbox = sandbox
        self.tmp_path = tmp_path
        self.values: dict[str, Any] = {}
        self.since = ""

    def upgrade(self, **changes: Any) -> None:
        values = {**self.values, "operator": {**self.values["operator"], **changes}}
        helm(
            "upgrade", RELEASE, str(CHART), "--namespace", SYSTEM,
            "-f", values_file(self.tmp_path, values), "--wait", "--timeout", "120s",
        )  # fmt: skip

    def logs(self) -> str:
        """The operator pods' logs, with `kubectl logs` (the real kubelet serves them)."""
        result = cluster.kubectl(
            "-n", SYSTEM, "logs", "-l", "app.kubernetes.io/name=meetingbot-operator",
            "--tail", "-1", "--prefix", check=False,
        )  # fmt: skip
        print(f"\n--- kubectl logs of the {RELEASE} pods (last 40 lines)\n")
        print("\n".join(result.stdout.splitlines()[-40:]), result.stderr)
        return result.stdout


async def operator_pods(kube: Kube) -> list[Any]:
    listed = await kube.core.list_namespaced_pod(
        SYSTEM, label_selector="app.kubernetes.io/name=meetingbot-operator"
    )
    return [p for p in listed.items if p.metadata.deletion_timestamp is None]


async def operator_pods_gone(kube: Kube, timeout: float = 90) -> None:
    """Wait until no operator pod of the tests' release exists, terminating ones included.

    `helm uninstall --wait` returns once the Deployment is gone; its pods are deleted by the
    garbage collector afterwards and may run out their grace period after the release's Roles
    are gone. A pod still terminating while the next install starts would be refused (403) on
    the Lease and count against that install's audited permissions."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        listed = await kube.core.list_namespaced_pod(
            SYSTEM, label_selector=f"app.kubernetes.io/instance={RELEASE}"
        )
        if not listed.items:
            return
        if asyncio.get_running_loop().time() > deadline:
            names = [p.metadata.name for p in listed.items]
            raise AssertionError(
                f"operator pods still there {timeout:.0f} s after uninstall: {names}"
            )
        await asyncio.sleep(0.5)


async def leader_pod(kube: Kube) -> Any:
    """The operator pod that holds the Lease (None while nobody does)."""
    try:
        lease = await kube.coordination.read_namespaced_lease(RELEASE, SYSTEM)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    holder = lease.spec.holder_identity
    return next((p for p in await operator_pods(kube) if p.metadata.name == holder), None)


@contextlib.contextmanager
def port_forward(target: str, namespace: str, port: int) -> Iterator[None]:
    """`kubectl port-forward` to localhost:`port` while the block runs, as the README says to
    reach the OAuth pages without an Ingress."""
    binaries = cluster.Binaries.in_cache()
    process = subprocess.Popen(
        [
            str(binaries.kubectl), "--kubeconfig", str(cluster.kubeconfig_path()),
            "-n", namespace, "port-forward", target, f"{port}:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "Forwarding from 127.0.0.1:8082 -> 8082"
        if "Forwarding from" not in line:
            raise RuntimeError(f"kubectl port-forward did not start: {line.strip()}")
        yield
    finally:
        process.terminate()
        process.wait(10)
