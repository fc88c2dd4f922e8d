"""Manifest linters over what we ship: the rendered chart (default and non-default values)
and a bot pod as the operator's own code builds it.

- kubeconform, strict, against JSON schemas generated from our own API server's OpenAPI (so
  the schemas are exactly those of the Kubernetes we test on, and no schema is downloaded);
- kube-score, with the exceptions below, each with its reason.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.cluster import cluster
from meetingbot_api import MeetingBotSpec
from meetingbot_operator.meetingbot.children import bot_pod, join_secret
from meetingbot_operator.meetingbot.observed import Meta
from meetingbot_operator.settings import Settings
from tests.support.chart import NON_DEFAULT, render
from tests.support.specs import bot_spec, join_config

# kube-score checks we do not follow, and why. Everything else must pass (no CRITICAL).
KUBE_SCORE_EXCEPTIONS = {
    # Images are pinned (the chart's appVersion, or a digest); Always would make every restart
    # depend on the registry, and the local cluster has none.
    "container-image-pull-policy": "images are pinned by tag or digest",
    # kopf serves one health endpoint; a second, different probe would say nothing more.
    "pod-probes-identical": "the operator has one health endpoint (kopf's)",
    # The bots' NetworkPolicy selects pods the operator creates later, not rendered ones.
    "networkpolicy-targets-pod": "bot pods are created by the operator at run time",
    # Neither container writes to its own filesystem (read-only roots); the bot's scratch
    # space is emptyDirs with size limits.
    "container-ephemeral-storage-request-and-limit": "read-only roots; emptyDirs are capped",
}
# CPU limits throttle the operator's bursts and the bot's browser; requests are set.
KUBE_SCORE_FLAGS = ["--ignore-container-cpu-limit"]
# Kinds whose CRDs the local cluster does not have (Prometheus Operator's).
NOT_INSTALLED = ["ServiceMonitor"]


def openapi_schemas(directory: Path) -> Path:
    """One JSON schema per kind, from the API server's OpenAPI v2, named as kubeconform's
    template below expects; every object closed (additionalProperties: false) as for
    kubeconform's strict schemas; int-or-string and quantities accept both forms."""
    spec = json.loads(cluster.kubectl("get", "--raw", "/openapi/v2", timeout=120).stdout)
    definitions: dict[str, Any] = spec["definitions"]
    for schema in definitions.values():
        _close(schema)
    both = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = both
    definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {
        "oneOf": [{"type": "string"}, {"type": "number"}]
    }
    directory.mkdir(exist_ok=True)
    for schema in list(definitions.values()):
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            group = gvk["group"] or gvk["version"]  # kubeconform's .Group for "v1" is "v1"
            path = directory / f"{gvk['kind'].lower()}_{group}_{gvk['version']}.json"
            path.write_text(json.dumps({**schema, "definitions": definitions}))
    return directory


def _close(schema: dict[str, Any]) -> None:
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    for child in schema.get("properties", {}).values():
        _close(child)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _close(schema[key])


@pytest.fixture(scope="module")
def schemas(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return openapi_schemas(tmp_path_factory.mktemp("schemas"))


def a_bot_pod() -> list[dict[str, Any]]:
    """The join Secret and the Pod the operator makes for a bot, from its own builders."""
    spec = MeetingBotSpec.model_validate(bot_spec(on_kwok=False))
    meta = Meta(name="notetaker", namespace="bots", uid="0000-uid", generation=1)
    config = join_config("bots", meta.name, meta.uid)
    settings = Settings(bot_image="registry.example.com/meetingbot-bot:0.1.0")
    return [join_secret(meta, 1, config), bot_pod(meta, 1, spec, settings)]


def manifests(tmp_path: Path, values: dict[str, Any]) -> str:
    documents = render(tmp_path, values) + a_bot_pod()
    return yaml.safe_dump_all(documents)


@pytest.mark.parametrize(
    "values",
    [{}, NON_DEFAULT, {"networkPolicy": {"enabled": True}, "watchNamespaces": ["bots"]}],
    ids=["default", "non-default", "network-policies"],
)
def test_kubeconform_strict_against_our_api_servers_schemas(
    schemas: Path, tmp_path: Path, values: dict[str, Any]
) -> None:
    location = str(schemas / "{{ .ResourceKind }}_{{ .Group }}_{{ .ResourceAPIVersion }}.json")
    result = subprocess.run(
        [
            str(cluster.Binaries.in_cache().kubeconform),
            "-strict",
            "-summary",
            "-schema-location",
            location,
            "-skip",
            ",".join(NOT_INSTALLED),
            "-",
        ],
        input=manifests(tmp_path, values),
        capture_output=True,
        text=True,
        check=False,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0" in result.stdout


def test_kubeconform_catches_an_unknown_field(schemas: Path, tmp_path: Path) -> None:
    """The schemas are closed: a misspelt field fails (so the test above can fail)."""
    pod = a_bot_pod()[1]
    pod["spec"]["containers"][0]["imagePullPolcy"] = "Never"
    location = str(schemas / "{{ .ResourceKind }}_{{ .Group }}_{{ .ResourceAPIVersion }}.json")
    result = subprocess.run(
        [
            str(cluster.Binaries.in_cache().kubeconform),
            "-strict",
            "-schema-location",
            location,
            "-",
        ],
        input=yaml.safe_dump(pod),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "imagePullPolcy" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("values", "also_ignored"),
    [
        # NetworkPolicies are off by default (they need a CNI that enforces them): the
        # default render has none; the second render turns them on and is scored on them.
        ({}, ["pod-networkpolicy"]),
        ({"networkPolicy": {"enabled": True}, "watchNamespaces": ["bots"]}, []),
    ],
    ids=["default", "network-policies"],
)
def test_kube_score(tmp_path: Path, values: dict[str, Any], also_ignored: list[str]) -> None:
    tests = [*KUBE_SCORE_EXCEPTIONS, *also_ignored]
    ignored = [flag for test in tests for flag in ("--ignore-test", test)]
    result = subprocess.run(
        [
            str(cluster.Binaries.in_cache().kube_score),
            "score",
            "--output-format",
            "ci",
            *KUBE_SCORE_FLAGS,
            *ignored,
            "-",
        ],
        input=manifests(tmp_path, values),
        capture_output=True,
        text=True,
        check=False,
    )
    critical = [line for line in result.stdout.splitlines() if line.startswith("[CRITICAL]")]
    print("\n".join(line for line in result.stdout.splitlines() if "[OK]" not in line))
    assert not critical, "\n".join(critical)
    assert result.stdout.count("[OK]") > 10, result.stdout + result.stderr  # it did score
