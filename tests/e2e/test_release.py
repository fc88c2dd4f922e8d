"""`make release` as a platform team would take it: pushed to a real OCI registry running in the
cluster (CNCF Distribution, devenv/cluster/registry.py), every image and the chart signed with
a key the user made, an SBOM attested on each image; then the chart installed from that
registry by digest, its images pulled by digest by the real node, and the install checked
end to end with `helm test`."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.cluster import cluster, registry
from devenv.operator_process import install_crds
from tests.support.chart import (
    RELEASE,
    ROOT,
    SYSTEM,
    assert_self_test_passes,
    helm,
    operator_pods,
    operator_pods_gone,
)
from tests.support.operator_fixtures import Kube

PASSWORD = "a password of the user's"


@pytest.fixture
def in_cluster_registry(kubeconfig: Path) -> Iterator[str]:
    binaries = cluster.build(extras=True)
    address = registry.start(binaries.registry, cluster.versions()["REGISTRY_VERSION"])
    try:
        yield address
    finally:
        registry.stop(address)


def _cosign(
    *args: str, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(cluster.Binaries.in_cache().cosign), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COSIGN_PASSWORD": PASSWORD},
        cwd=cwd,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"cosign {args[0]} failed:\n{result.stderr}")
    return result


def _key_pair(directory: Path) -> Path:
    """A cosign key pair (cosign.key, encrypted with the password, and cosign.pub) in it."""
    directory.mkdir()
    _cosign("generate-key-pair", cwd=directory)
    return directory


def _verify(what: str, key: Path, ref: str, *extra: str) -> subprocess.CompletedProcess[str]:
    # No transparency log here (nothing leaves the machine): the key alone is trusted.
    flags = ["--insecure-ignore-tlog", "--allow-http-registry", "--allow-insecure-registry"]
    return _cosign(what, "--key", str(key), *flags, *extra, ref, check=False)


async def test_a_release_pushed_signed_and_installed_by_digest(
    kube: Kube, tmp_path: Path, image: str, in_cluster_registry: str
) -> None:
    keys = _key_pair(tmp_path / "keys")  # the user's
    version = f"0.0.0-test.{uuid.uuid4().hex[:6]}"
    repository = f"{in_cluster_registry}/meetingbot"
    made = subprocess.run(
        ["make", "--no-print-directory", "release", f"REGISTRY={repository}",
         f"VERSION={version}", f"COSIGN_KEY={keys / 'cosign.key'}", "INSECURE_REGISTRY=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False,
        env={**os.environ, "COSIGN_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-4000:]
    released: dict[str, Any] = json.loads((ROOT / "dist" / version / "release.json").read_text())
    assert PASSWORD not in made.stdout + made.stderr

    # 1. Every image (its index and each platform's image) and the chart verify with the
    # user's public key, and with no other key.
    other = _key_pair(tmp_path / "other")
    refs = [f"{released['chart']['repository']}@{released['chart']['digest']}"]
    for name, pushed in released["images"].items():
        assert pushed["repository"] == f"{repository}/{name}"
        refs.append(f"{pushed['repository']}@{pushed['digest']}")
        refs += [f"{pushed['repository']}@{d}" for d in pushed["platforms"].values()]
    for ref in refs:
        verified = _verify("verify", keys / "cosign.pub", ref)
        assert verified.returncode == 0, f"{ref}: {verified.stderr}"
        forged = _verify("verify", other / "cosign.pub", ref)
        assert forged.returncode != 0, f"{ref} verified with a key that did not sign it"

    # Each image says what it is (OCI labels), so no dev build shares its image ID.
    for pushed in released["images"].values():
        inspected = subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false",
             f"docker://{pushed['repository']}@{pushed['platforms']['amd64']}"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        labels = json.loads(inspected.stdout)["Labels"]
        assert labels["org.opencontainers.image.version"] == version

    # 2. Each platform's image carries its SBOM as a signed attestation, and the SBOM lists
    # what the image holds: Debian's Python and the operator's own Python dependencies.
    for name, pushed in released["images"].items():
        for arch, digest in pushed["platforms"].items():
            attested = _verify(
                "verify-attestation", keys / "cosign.pub", f"{pushed['repository']}@{digest}",
                "--type", "spdxjson",
            )  # fmt: skip
            assert attested.returncode == 0, attested.stderr
            sbom = json.loads(Path(pushed["sboms"][arch]).read_text())
            names = {p["name"] for p in sbom["packages"]}
            assert "python3.11" in names, name
            if name == "meetingbot-operator":
                assert {"kopf", "pydantic", "httpx", "meetingbot-operator"} <= names

    # 3. The chart, from the registry by digest: its defaults name the images just pushed,
    # by digest; the node pulls them from the registry; a real bot meets in the sandbox.
    chart = f"oci://{released['chart']['repository']}@{released['chart']['digest']}"
    shown = helm("show", "values", chart, "--plain-http").stdout
    operator_ref = released["images"]["meetingbot-operator"]
    assert f'digest: "{operator_ref["digest"]}"' in shown
    install_crds()
    await operator_pods_gone(kube)
    watched = f"release-{uuid.uuid4().hex[:6]}"
    await kube.core.create_namespace({"metadata": {"name": watched}})
    try:
        helm(
            "install", RELEASE, chart, "--plain-http", "--namespace", SYSTEM,
            "--create-namespace", "--set", f"bot.image={image}",
            "--set", f"watchNamespaces={{{watched}}}", "--set", "sandbox.enabled=true",
            "--wait", "--timeout", "180s",
        )  # fmt: skip
        pods = await operator_pods(kube)
        assert pods
        for pod in pods:
            status = pod.status.container_statuses[0]
            assert status.image_id.endswith(operator_ref["platforms"]["amd64"]) or (
                status.image_id.endswith(operator_ref["digest"])
            ), status.image_id
            assert pod.spec.containers[0].image == (
                f"{operator_ref['repository']}@{operator_ref['digest']}"
            )
        assert_self_test_passes()
    finally:
        helm("uninstall", RELEASE, "--namespace", SYSTEM, "--wait", check=False)
        await operator_pods_gone(kube)
        await kube.core.delete_namespace(watched)
