"""The chart's NetworkPolicies enforced on the real node (kube-router's policy controller,
devenv/cluster/policy.py): a bot reaches DNS, the operator's report port and Zoom, and nothing
else: not the API server, not the kubelet, not another namespace's pods, not the cloud metadata
address, not the Internet on a port Zoom does not use. A pod beside it that the policy does not
select reaches every one of them, so each refusal is the policy's doing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.cluster import cluster, node, policy
from devenv.operator_process import install_crds
from tests.support.chart import (
    CHART,
    RELEASE,
    SYSTEM,
    assert_self_test_passes,
    helm,
    operator_pods_gone,
    sandbox_values,
    values_file,
)
from tests.support.operator_fixtures import Kube, wait_for
from tests.support.outside_net import Outside, outside_network

PROBE = (Path(__file__).parents[1] / "support" / "reach_probe.py").read_text()
BOT_LABELS = {"app.kubernetes.io/name": "meetingbot-bot"}


@pytest.fixture
def enforced(kubeconfig: Path) -> Iterator[None]:
    binaries = cluster.build(extras=True)
    with policy.enforcing(
        binaries.kube_router, kubeconfig, cluster.node_root(), cluster.NODE_PORT_RANGE
    ):
        yield


@pytest.fixture
def outside() -> Iterator[Outside]:
    with outside_network() as network:
        yield network


@pytest.fixture
async def namespaces(kube: Kube) -> AsyncIterator[tuple[str, str]]:
    """The watched namespace (bots live there) and another team's."""
    suffix = uuid.uuid4().hex[:6]
    made = (f"np-bots-{suffix}", f"np-other-{suffix}")
    for name in made:
        await kube.core.create_namespace({"metadata": {"name": name}})
    yield made
    for name in made:
        await kube.core.delete_namespace(name)


def _pod(name: str, image: str, labels: dict[str, str], command: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "nodeName": node.NODE_NAME,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {"name": "main", "image": image, "imagePullPolicy": "Never", "command": command}
            ],
        },
    }


async def _running_ip(kube: Kube, namespace: str, name: str) -> str:
    async def ip() -> str | None:
        pod = await kube.core.read_namespaced_pod(name, namespace)
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        return str(pod.status.pod_ip) if ready and pod.status.pod_ip else None

    return str(await wait_for(ip, timeout=90, what=f"pod {namespace}/{name} running"))


def _probe(namespace: str, pod: str, targets: dict[str, dict[str, Any]]) -> dict[str, str]:
    result = cluster.kubectl(
        "-n", namespace, "exec", "-i", pod, "--", "python3", "-", json.dumps(targets),
        stdin=PROBE, timeout=180,
    )  # fmt: skip
    answers: dict[str, str] = json.loads(result.stdout)
    return answers


def _api_port() -> int:
    server = yaml.safe_load(cluster.kubeconfig_path().read_text())["clusters"][0]["cluster"]
    return int(server["server"].rsplit(":", 1)[1])


async def test_a_bot_reaches_dns_its_operator_and_zoom_and_nothing_else(
    kube: Kube,
    tmp_path: Path,
    image: str,
    operator_image: str,
    sim_image: str,
    enforced: None,
    outside: Outside,
    namespaces: tuple[str, str],
) -> None:
    watched, other = namespaces
    install_crds()
    await operator_pods_gone(kube)
    host = node.node_ip()
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["networkPolicy"]
    values = {
        **sandbox_values(watched, image, operator_image, sim_image),
        "networkPolicy": {
            "enabled": True,
            # What a platform team sets for its cluster: the nodes' range among the cluster's
            # own (this node's address is a documentation range, outside the private ones),
            # and the resolver that is not a pod (CoreDNS runs on this node).
            "clusterCidrs": [*defaults["clusterCidrs"], f"{host}/32"],
            "dns": {"cidrs": [f"{host}/32"]},
        },
    }
    try:
        helm(
            "install", RELEASE, str(CHART), "--namespace", SYSTEM, "--create-namespace",
            "-f", values_file(tmp_path, values), "--wait", "--timeout", "120s",
        )  # fmt: skip

        # 1. A real bot, under the policy: it resolves the sandbox's name, loads Zoom's pages
        # and joins, reports to the operator, and Succeeds (`helm test`, from a pod).
        assert_self_test_passes()

        # 2. What else a bot could reach: a pod with the bots' labels, and one without them.
        sleep = ["sleep", "3600"]
        await kube.core.create_namespaced_pod(
            other, _pod("server", image, {}, ["python3", "-m", "http.server", "8080"])
        )
        await kube.core.create_namespaced_pod(watched, _pod("bot", image, BOT_LABELS, sleep))
        await kube.core.create_namespaced_pod(watched, _pod("unselected", image, {}, sleep))
        other_pod = await _running_ip(kube, other, "server")
        for name in ("bot", "unselected"):
            await _running_ip(kube, watched, name)

        svc = f"{SYSTEM}.svc.cluster.local"
        allowed: dict[str, dict[str, Any]] = {
            "dns": {"resolve": "kubernetes.default.svc.cluster.local"},
            "operator report port": {"host": f"{RELEASE}.{svc}", "port": 8081},
            "zoom sandbox": {"host": f"{RELEASE}-zoomsim.{svc}", "port": 80},
            "zoom on the internet": {"host": outside.internet, "port": 443},
        }
        refused: dict[str, dict[str, Any]] = {
            "api server (its Service)": {"host": "10.0.0.1", "port": 443},
            "api server (its address)": {"host": host, "port": _api_port()},
            "kubelet": {"host": host, "port": 10250},
            "another namespace's pod": {"host": other_pod, "port": 8080},
            "cloud metadata": {"host": outside.metadata, "port": 80},
            "the internet on another port": {"host": outside.internet, "port": 8080},
        }
        as_bot = _probe(watched, "bot", {**allowed, **refused})
        as_other = _probe(watched, "unselected", {**allowed, **refused})
        print(
            "\nbot:", json.dumps(as_bot, indent=1), "\nunselected:", json.dumps(as_other, indent=1)
        )

        assert {
            k: v for k, v in as_bot.items() if k in allowed and not v.startswith("reached")
        } == {}
        assert {k: v for k, v in as_bot.items() if k in refused and v.startswith("reached")} == {}
        # Every refused target is there to be reached by a pod the bots' policy does not select;
        # the operator's own policy lets only bots at its report port.
        unreached = {k for k, v in as_other.items() if not v.startswith("reached")}
        assert unreached == {"operator report port"}, as_other
    finally:
        helm("uninstall", RELEASE, "--namespace", SYSTEM, "--wait", check=False)
        await operator_pods_gone(kube)
