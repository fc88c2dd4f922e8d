"""Fixtures for tests that need the operator running against the local control plane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.integration.operator_fixtures import Bots, OperatorProcess, install_crds
from tests.zoomsim import ZoomSim


@pytest.fixture(scope="session")
def operator(
    kubeconfig: Path, zoomsim: ZoomSim, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator process for the session, cluster-wide, with test-friendly timings."""
    install_crds()
    process = OperatorProcess(
        kubeconfig,
        tmp_path_factory.mktemp("operator") / "operator.log",
        retry_base_seconds="1",
        start_lead_seconds="2",
        sweep_seconds="5",
        max_duration_grace_seconds="1",
        # Only the tests' namespaces: the chart test runs an operator of its own elsewhere.
        namespaces="t-*",
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def bots(api_client: client.ApiClient, namespace: str, operator: OperatorProcess) -> Bots:
    return Bots(api_client, namespace)
