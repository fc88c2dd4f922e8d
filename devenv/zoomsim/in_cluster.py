"""The simulator, running on the host, given a Service name inside the local cluster.

A selector-less Service `zoomsim` whose one endpoint is the simulator on the node's address:
pods (the operator's own, and bots) reach it at `http://zoomsim.<namespace>.svc`, through
kube-proxy and CoreDNS as they would reach any Service. An in-cluster http:// endpoint is one
the operator's `allowedEndpoints` accepts (docs/security.md).
"""

from __future__ import annotations

import json

from devenv.cluster import cluster
from devenv.cluster.node import host_endpoints
from devenv.zoomsim.server import ZoomSim

NAMESPACE = "zoom-sandbox"


def expose(sim: ZoomSim, namespace: str = NAMESPACE) -> str:
    """Create (or update) the Service; return the simulator's in-cluster base URL."""
    ports: list[dict[str, object]] = [{"name": "http", "port": 80, "targetPort": sim.port}]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "zoomsim", "namespace": namespace},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": sim.port}]},
    }
    items = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        service,
        host_endpoints("zoomsim", namespace, sim.pod_host, ports),
    ]
    cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )
    return f"http://zoomsim.{namespace}.svc"
