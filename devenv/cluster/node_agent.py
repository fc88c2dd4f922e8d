"""A test-only node agent: a Node whose pods really run, as podman containers.

Why not a kubelet: see the README ("The bot node"). This agent does the part of a kubelet the
tests need, honouring the pod spec as the bot image relies on it:
- registers a Node (tainted, so only pods that tolerate it land here) and keeps it Ready with
  a Lease and status heartbeats;
- runs each pod bound to it with podman on the host network: image, command, args, env (values,
  secretKeyRef, configMapKeyRef), Secret and emptyDir volumes at their mount paths, the user
  and group, a read-only root, dropped capabilities, the termination message file;
- writes the pod status back: Running, then terminated with exit code and termination message
  (FallbackToLogsOnError), phase Succeeded or Failed (restartPolicy Never);
- on deletion stops the container with SIGTERM and the pod's grace period, then removes the
  pod object, as a kubelet does.

Run: python -m devenv.cluster.node_agent --node bots-node  (uses $KUBECONFIG)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("node-agent")
BOT_NODE = "bots-node"
TAINT_KEY = "meetingbot.dev/podman-node"
LABEL = "meetingbot.dev/podman-node"
AGENT_LABEL = "meetingbot.dev/node-agent"  # on every container the agent starts
# What podman needs on this kind of machine (DESIGN.md §6).
PODMAN_RUN = [
    "--runtime",
    "runc",
    "--network=host",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Agent:
    def __init__(self, api: client.ApiClient, node: str, workdir: Path) -> None:
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.node = node
        self.workdir = workdir
        self.running: dict[str, threading.Thread] = {}  # pod uid -> its runner
        self.stopping: set[str] = set()
        self.lock = threading.Lock()
        self.ip = "127.0.0.1"

    # --- the node -----------------------------------------------------------------------------

    def register(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node,
                "labels": {
                    LABEL: "true",
                    "kubernetes.io/hostname": self.node,
                    "kubernetes.io/os": "linux",
                },
            },
            "spec": {"taints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}]},
        }
        with contextlib.suppress(ApiException):
            self.core.create_node(body)
        self.heartbeat()

    def heartbeat(self) -> None:
        status = {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "AgentReady",
                        "message": "podman node agent",
                        "lastHeartbeatTime": now(),
                        "lastTransitionTime": now(),
                    }
                ],
                "addresses": [{"type": "InternalIP", "address": self.ip}],
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "20"},
                "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "20"},
                "nodeInfo": {
                    "kubeletVersion": "podman-agent",
                    "containerRuntimeVersion": "podman",
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "bootID": "",
                    "kernelVersion": "",
                    "kubeProxyVersion": "",
                    "machineID": "",
                    "osImage": "",
                    "systemUUID": "",
                },
            }
        }
        self.core.patch_node_status(self.node, status)
        lease = {
            "metadata": {"name": self.node, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": self.node,
                "leaseDurationSeconds": 40,
                "renewTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
        }
        try:
            self.coordination.patch_namespaced_lease(self.node, "kube-node-lease", lease)
        except ApiException as error:
            if error.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", lease)

    def heartbeats(self) -> None:
        while True:
            time.sleep(10)
            try:
                self.heartbeat()
            except Exception:
                log.exception("heartbeat failed")

    # --- pods ---------------------------------------------------------------------------------

    def serve(self) -> None:
        while True:
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=f"spec.nodeName={self.node}",
                    timeout_seconds=300,
                ):
                    self.handle(event["type"], event["object"])
            except Exception:
                log.exception("watch failed; starting again")
                time.sleep(1)

    def handle(self, event_type: str, pod: client.V1Pod) -> None:
        uid = pod.metadata.uid
        if event_type == "DELETED":
            return
        if pod.metadata.deletion_timestamp is not None:
            with self.lock:
                if uid in self.stopping:
                    return
                self.stopping.add(uid)
            threading.Thread(target=self.stop, args=(pod,), daemon=True).start()
            return
        with self.lock:
            if uid in self.running or pod.status.phase in ("Succeeded", "Failed"):
                return
            runner = threading.Thread(target=self.run, args=(pod,), daemon=True)
            self.running[uid] = runner
        runner.start()

    @staticmethod
    def container_name(pod: client.V1Pod) -> str:
        return f"k8s_{pod.metadata.namespace}_{pod.metadata.name}_{pod.metadata.uid[:8]}"

    def run(self, pod: client.V1Pod) -> None:
        ns, name = pod.metadata.namespace, pod.metadata.name
        container = pod.spec.containers[0]
        scratch = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        try:
            command = self.podman_command(pod, container, scratch)
        except Exception as error:  # a missing Secret, as the kubelet's CreateContainerConfigError
            log.warning("cannot start %s/%s: %s", ns, name, error)
            self.write_status(
                pod,
                "Pending",
                waiting={"reason": "CreateContainerConfigError", "message": str(error)},
            )
            return
        log.info("starting %s/%s", ns, name)
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        started = now()
        self.write_status(pod, "Running", running={"startedAt": started})
        output, _ = process.communicate()
        (scratch / "container.log").write_text(output)
        code = process.returncode
        message = (
            (scratch / "termination-log").read_text().strip()
            if (scratch / "termination-log").exists()
            else ""
        )
        if (
            not message
            and code != 0
            and container.termination_message_policy == "FallbackToLogsOnError"
        ):
            message = "\n".join(output.strip().splitlines()[-20:])[-4096:]
        terminated = {
            "exitCode": code,
            "reason": "Completed"
            if code == 0
            else ("OOMKilled" if code == 137 and "oom" in output.lower() else "Error"),
            "startedAt": started,
            "finishedAt": now(),
        }
        if message:
            terminated["message"] = message[-4096:]
        log.info("%s/%s exited with %s", ns, name, code)
        with contextlib.suppress(ApiException):
            self.write_status(pod, "Succeeded" if code == 0 else "Failed", terminated=terminated)
        shutil.rmtree(scratch, ignore_errors=True)

    def podman_command(
        self, pod: client.V1Pod, container: client.V1Container, scratch: Path
    ) -> list[str]:
        ns = pod.metadata.namespace
        security = pod.spec.security_context or client.V1PodSecurityContext()
        own = container.security_context or client.V1SecurityContext()
        user = own.run_as_user or security.run_as_user
        group = own.run_as_group or security.run_as_group
        command = [
            "podman",
            "run",
            "--rm",
            "--name",
            self.container_name(pod),
            # Marks what this agent started, so cleaning up never touches other containers.
            "--label",
            f"{AGENT_LABEL}={self.node}",
            *PODMAN_RUN,
            "--pull=never",
        ]
        if user is not None:
            command += ["--user", f"{user}:{group or user}"]
        if own.read_only_root_filesystem:
            command.append("--read-only")
        for capability in (
            own.capabilities.drop if own.capabilities and own.capabilities.drop else []
        ):
            command += ["--cap-drop", capability]
        if own.allow_privilege_escalation is False:
            command += ["--security-opt", "no-new-privileges"]
        volumes = {v.name: v for v in pod.spec.volumes or []}
        for mount in container.volume_mounts or []:
            volume = volumes[mount.name]
            if volume.secret is not None:
                source = scratch / "volumes" / mount.name
                source.mkdir(parents=True)
                data = self.core.read_namespaced_secret(volume.secret.secret_name, ns).data or {}
                for key, value in data.items():
                    (source / key).write_bytes(base64.b64decode(value))
                    os.chmod(source / key, 0o444)
                command += ["-v", f"{source}:{mount.mount_path}:ro"]
            elif volume.empty_dir is not None:
                size = (
                    (volume.empty_dir.size_limit or "256Mi").replace("Mi", "m").replace("Gi", "g")
                )
                command += ["--tmpfs", f"{mount.mount_path}:rw,size={size},mode=1777"]
        termination = scratch / "termination-log"
        termination.touch()
        os.chmod(termination, 0o666)
        command += [
            "-v",
            f"{termination}:{container.termination_message_path or '/dev/termination-log'}",
        ]
        for env in container.env or []:
            value = env.value or ""
            if env.value_from and env.value_from.secret_key_ref:
                secret_ref = env.value_from.secret_key_ref
                secret_data = self.core.read_namespaced_secret(secret_ref.name, ns).data or {}
                value = base64.b64decode(secret_data[secret_ref.key]).decode()
            elif env.value_from and env.value_from.config_map_key_ref:
                map_ref = env.value_from.config_map_key_ref
                value = self.core.read_namespaced_config_map(map_ref.name, ns).data[map_ref.key]
            command += ["-e", f"{env.name}={value}"]
        if container.command:
            command += ["--entrypoint", container.command[0]]
        command.append(container.image)
        command += list(container.command[1:] if container.command else []) + list(
            container.args or []
        )
        return command

    def stop(self, pod: client.V1Pod) -> None:
        grace = (
            pod.metadata.deletion_grace_period_seconds
            or pod.spec.termination_grace_period_seconds
            or 30
        )
        log.info("stopping %s/%s (grace %ss)", pod.metadata.namespace, pod.metadata.name, grace)
        subprocess.run(
            ["podman", "stop", "-t", str(grace), self.container_name(pod)],
            capture_output=True,
            check=False,
        )
        runner = self.running.get(pod.metadata.uid)
        if runner is not None:
            runner.join(timeout=grace + 10)
        with contextlib.suppress(ApiException):
            self.core.delete_namespaced_pod(
                pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
            )

    def write_status(self, pod: client.V1Pod, phase: str, **state: dict[str, Any]) -> None:
        ready = phase == "Running"
        status = {
            "status": {
                "phase": phase,
                "hostIP": self.ip,
                "podIP": self.ip,
                "startTime": now(),
                "conditions": [
                    {"type": "Ready", "status": str(ready), "lastTransitionTime": now()}
                ],
                "containerStatuses": [
                    {
                        "name": pod.spec.containers[0].name,
                        "image": pod.spec.containers[0].image,
                        "imageID": "",
                        "ready": ready,
                        "restartCount": 0,
                        "started": ready,
                        "state": state,
                    }
                ],
            }
        }
        self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, status)


def remove_containers(node: str) -> None:
    """Remove the containers this node's agent started, and nothing else."""
    listed = subprocess.run(
        ["podman", "ps", "-aq", "--filter", f"label={AGENT_LABEL}={node}"],
        capture_output=True,
        text=True,
        check=False,
    )
    ids = listed.stdout.split()
    if ids:
        subprocess.run(["podman", "rm", "-f", *ids], capture_output=True, check=False)


def pod_template_for(image: str) -> dict[str, Any]:
    """The podTemplate that steers a bot pod to this node: test and demo configuration only
    (the operator knows nothing of this node). The simulator's fake SDK is the operator's
    setting (fake_sdk_url)."""
    return {
        "image": image,
        "nodeSelector": {LABEL: "true"},
        "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
    }


def fake_sdk_url(sim_url: str) -> str:
    return f"{sim_url}/sim/sdk/zoom-meeting-embedded.js"


def main() -> None:
    parser = argparse.ArgumentParser(description="test-only node agent running pods with podman")
    parser.add_argument("--node", default=BOT_NODE)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "meetingbot-node-agent"
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s node-agent %(levelname)s %(message)s"
    )
    config.load_kube_config()
    args.workdir.mkdir(parents=True, exist_ok=True)
    agent = Agent(client.ApiClient(), args.node, args.workdir)
    agent.register()
    threading.Thread(target=agent.heartbeats, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    log.info("node %s ready", args.node)
    agent.serve()


if __name__ == "__main__":
    main()
