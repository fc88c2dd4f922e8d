"""An OCI registry running in the local cluster: CNCF Distribution, built from the Go module
proxy (versions.env), in an image of its own binary alone, as a pod on the real node behind a
NodePort Service. The host pushes to it (`make release`) and the node's containerd pulls from
it (told through a hosts.toml, node.REGISTRY_HOSTS), both at <node address>:<node port>, over
plain HTTP: the release test's registry (tests/e2e/test_release.py), not the product."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from devenv.cluster import cluster, node

NAMESPACE = "meetingbot-registry"
NAME = "registry"
_CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
"""


def image(binary: Path, version: str) -> str:
    """The registry's image (its static binary and a config, nothing else), on the node."""
    tag = f"localhost/meetingbot-registry:{version}"
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp)
        shutil.copy2(binary, context / "registry")
        (context / "config.yml").write_text(_CONFIG)
        (context / "Containerfile").write_text(
            "FROM scratch\n"
            "COPY registry /registry\n"
            "COPY config.yml /etc/distribution/config.yml\n"
            "USER 10001:10001\n"
            'ENTRYPOINT ["/registry", "serve", "/etc/distribution/config.yml"]\n'
        )
        subprocess.run(
            ["podman", "build", "--isolation=chroot", "-t", tag, str(context)],
            check=True,
            capture_output=True,
            timeout=300,
        )
    cluster.load_image(tag)
    return tag


def _manifests(tag: str) -> list[dict[str, object]]:
    labels = {"app.kubernetes.io/name": NAME}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "nodeName": node.NODE_NAME,
                "securityContext": {"runAsNonRoot": True, "fsGroup": 10001},
                "containers": [
                    {
                        "name": NAME,
                        "image": tag,
                        "imagePullPolicy": "Never",
                        "ports": [{"name": "http", "containerPort": 5000}],
                        "readinessProbe": {"httpGet": {"path": "/v2/", "port": "http"}},
                        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/registry"}],
                    }
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {
                "type": "NodePort",
                "selector": labels,
                "ports": [{"name": "http", "port": 5000, "targetPort": "http"}],
            },
        },
    ]


def start(binary: Path, version: str) -> str:
    """Run the registry in the cluster; its address (host:port) for the host and the node."""
    tag = image(binary, version)
    cluster.kubectl(  # one an interrupted run left
        "wait", "--for=delete", f"namespace/{NAMESPACE}", "--timeout=120s",
        check=False, timeout=150,
    )  # fmt: skip
    manifests = "\n---\n".join(json.dumps(m) for m in _manifests(tag))
    cluster.kubectl("apply", "-f", "-", stdin=manifests)
    cluster.kubectl(
        "-n", NAMESPACE, "wait", "--for=condition=Ready", f"pod/{NAME}", "--timeout=90s",
        timeout=120,
    )  # fmt: skip
    port = cluster.kubectl(
        "-n", NAMESPACE, "get", "service", NAME, "-o", "jsonpath={.spec.ports[0].nodePort}"
    ).stdout.strip()
    address = f"{node.node_ip()}:{port}"
    # The node's containerd: this registry speaks plain HTTP (read at every pull).
    hosts = node.REGISTRY_HOSTS / address
    hosts.mkdir(parents=True, exist_ok=True)
    (hosts / "hosts.toml").write_text(
        f'server = "http://{address}"\n\n'
        f'[host."http://{address}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )
    deadline = time.monotonic() + 30
    while subprocess.run(
        ["curl", "-sf", f"http://{address}/v2/"], capture_output=True, check=False
    ).returncode:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the registry does not answer at {address}")
        time.sleep(0.5)
    return address


def stop(address: str) -> None:
    # Waited for: a next start cannot create its pod in a namespace still terminating.
    cluster.kubectl(
        "delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=120s",
        check=False, timeout=150,
    )  # fmt: skip
    hosts = node.REGISTRY_HOSTS / address / "hosts.toml"
    hosts.unlink(missing_ok=True)
    if hosts.parent.exists():
        hosts.parent.rmdir()
