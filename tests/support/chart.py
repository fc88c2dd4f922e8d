"""The Helm chart in tests: rendering and installing it with the cached helm."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import yaml

from devenv.cluster import cluster

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "meetingbot-operator"
RELEASE, SYSTEM = "meetingbot-operator", "meetingbot-system"
NON_DEFAULT = {
    "watchNamespaces": ["team-a", "team-b"],
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


def values_file(tmp_path: Path, values: dict[str, Any]) -> str:
    path = tmp_path / f"values-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def render(tmp_path: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    """`helm template` with these values: the documents it renders."""
    rendered = helm(
        "template", RELEASE, str(CHART), "--namespace", SYSTEM, "-f", values_file(tmp_path, values)
    ).stdout
    return [d for d in yaml.safe_load_all(rendered) if d]
