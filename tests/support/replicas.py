"""Two operator processes under leader election, as the chart's two pods run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from devenv.cluster import cluster
from devenv.operator_process import OperatorProcess
from devenv.zoomsim import ZoomSim, fake_sdk_url
from tests.support.operator_fixtures import Kube


def replica_pair(
    kubeconfig: Path,
    logs: Path,
    zoomsim: ZoomSim,
    namespaces: str,
    lease_namespace: str,
    **extra: str,
) -> tuple[OperatorProcess, OperatorProcess]:
    """Replicas "a" and "b" (not started) on one Lease in `lease_namespace`, with quick lease
    timings, sharing a report key as the chart's replicas share its Secret."""

    def replica(name: str) -> OperatorProcess:
        process = OperatorProcess(
            kubeconfig,
            logs / f"{name}.log",
            None,  # no environment of its own: `extra` are settings
            namespaces=namespaces,
            pod_namespace=lease_namespace,
            pod_name=name,
            leader_election="true",
            lease_duration_seconds="6",
            lease_renew_deadline_seconds="4",
            lease_retry_seconds="1",
            retry_base_seconds="1",
            report_interval_seconds="2",
            allowed_endpoints=zoomsim.url,
            bot_sdk_url=fake_sdk_url(zoomsim.pod_url),
            storage_endpoints=cluster.object_store().endpoint,
            rtms_servers=zoomsim.rtms_url,
            **extra,
        )
        process.settings["pod_ip"] = process.report_host
        return process

    a, b = replica("a"), replica("b")
    b.report_key = a.report_key
    return a, b


async def holder_of(kube: Kube, namespace: str, name: str) -> str | None:
    """Who holds the Lease `name` (None: nobody, or no Lease yet)."""
    api: Any = client.CoordinationV1Api(kube.api)
    try:
        found = await api.read_namespaced_lease(name, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return found.spec.holder_identity  # type: ignore[no-any-return]


async def leads(kube: Kube, namespace: str, name: str) -> bool:
    """Whether replica `name` holds the operator's Lease in `namespace`."""
    return await holder_of(kube, namespace, "meetingbot-operator") == name
