"""The operator behind a corporate proxy that intercepts TLS (docs/install.md, "Behind a
proxy"): its Zoom calls go through HTTPS_PROXY, and they succeed only when the proxy's CA is
given with SSL_CERT_FILE, as the chart's extraEnv and extraVolumes give it. The Kubernetes API
is never reached through the proxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from devenv.cluster import cluster
from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.operator_fixtures import Kube, account_ready, zoom_account
from tests.support.tls_proxy import intercepting_proxy

pytestmark = pytest.mark.integration
ZOOM = "zoom.corp.test"  # a name only the proxy knows: nothing reaches it but through it


async def test_zoom_calls_go_through_a_tls_intercepting_proxy_with_the_corporate_ca(
    kube: Kube, ha_namespace: str, sim: SimAdmin, zoomsim: ZoomSim, tmp_path: Path
) -> None:
    async with intercepting_proxy({ZOOM: zoomsim.url}, tmp_path) as proxy:
        settings = {"namespaces": ha_namespace, "allowed_endpoints": f"https://{ZOOM}"}
        proxied = {"HTTPS_PROXY": proxy.url, "NO_PROXY": "127.0.0.1,localhost"}

        # Without the proxy's CA the TLS handshake is refused: the account says why.
        untrusting = OperatorProcess(cluster.kubeconfig_path(), tmp_path / "untrusting.log",
                                     extra_env=proxied, **settings)  # fmt: skip
        untrusting.start()
        try:
            await zoom_account(kube, ha_namespace, sim, f"https://{ZOOM}")
            refused = await account_ready(
                kube, ha_namespace, predicate=lambda r: r["reason"] == "ZoomUnavailable",
                timeout=60,
            )  # fmt: skip
            assert refused["status"] == "False" and proxy.refused_tls > 0
            assert proxy.seen == []
        finally:
            untrusting.stop()

        # With it (SSL_CERT_FILE, as extraEnv sets it): verified through the proxy.
        trusting = OperatorProcess(
            cluster.kubeconfig_path(), tmp_path / "trusting.log",
            extra_env={**proxied, "SSL_CERT_FILE": str(proxy.ca_bundle)}, **settings,
        )  # fmt: skip
        trusting.start()
        try:
            ready = await account_ready(
                kube, ha_namespace, predicate=lambda r: r["status"] == "True", timeout=60
            )
            assert ready["reason"] == "CredentialsVerified"
            assert ("POST", ZOOM, "/oauth/token") in proxy.seen
        finally:
            trusting.stop()
