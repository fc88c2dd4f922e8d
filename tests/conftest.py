"""Shared fixtures: the local control plane (once per session) and a namespace per test."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from devenv.cluster import cluster
from devenv.cluster.node import node_ip
from devenv.operator_process import OperatorProcess, install_crds
from devenv.zoomsim import SimAdmin, ZoomSim, fake_sdk_url, in_cluster
from devenv.zoomsim.server import free_port
from meetingbot_operator.kube.client import KubeClient
from tests.support import stream_workers
from tests.support.artifacts import ScratchBucket, bucket_for
from tests.support.chart import (
    CHART,
    KEY_SECRET,
    RELEASE,
    SYSTEM,
    Release,
    helm,
    operator_pods_gone,
    values_file,
)
from tests.support.operator_fixtures import MERGE_PATCH, Bots, Kube, account_ready
from tests.support.operator_fixtures import zoom_account as zoom_account_in
from tests.support.scripted_bot import ScriptedBot
from tests.support.shards import namespaces_for_each_shard
from tests.support.stream_receiver import StreamReceiver
from tests.support.webhook_receiver import WEBHOOK_SECRET, Receiver


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The marker follows the folder, so a test cannot land in the wrong suite by omission.
    for item in items:
        parts = Path(str(item.path)).parts
        for suite in ("unit", "integration", "e2e", "bench"):
            if suite in parts:
                item.add_marker(getattr(pytest.mark, suite))
    # A test that restarts the API server and etcd runs after every other: measured, a kopf
    # process started just after such a restart may not see a new namespace for minutes (the
    # session's operator is restarted by later tests, which then waited in vain).
    items.sort(key=lambda item: item.get_closest_marker("restarts_control_plane") is not None)


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[Path]:
    """The local control plane, started once for the run or reused if already serving.

    A cluster this fixture started is stopped at the end, unless MEETINGBOT_KEEP_CLUSTER=1.
    """
    was_running = cluster.is_running()
    path = cluster.up()
    yield path
    if not was_running and os.environ.get("MEETINGBOT_KEEP_CLUSTER") != "1":
        cluster.down()


@pytest.fixture
async def kube(kubeconfig: Path) -> AsyncIterator[Kube]:
    """The tests' async Kubernetes client (kubernetes_asyncio), for one test (its own loop)."""
    connected = await Kube.connect(kubeconfig)
    yield connected
    await connected.close()


@pytest.fixture
async def operator_api(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[KubeClient]:
    """The operator's own API client (kube/client.py), logged in with the kubeconfig."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    api = KubeClient.connect()
    yield api
    await api.close()


@pytest.fixture
async def namespace(kube: Kube) -> AsyncIterator[str]:
    """A fresh namespace for one test, deleted afterwards (finalizers first, so it can go)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    await kube.core.create_namespace({"metadata": {"name": name}})
    yield name
    for crd in (await kube.ext.list_custom_resource_definition()).items:
        if crd.spec.scope != "Namespaced":
            continue
        version = next(v.name for v in crd.spec.versions if v.storage)
        plural = crd.spec.names.plural
        try:
            objects = await kube.custom.list_namespaced_custom_object(
                crd.spec.group, version, name, plural
            )
        except ApiException:
            continue  # a CRD being deleted, or not served yet
        for obj in objects.get("items", []):
            if obj["metadata"].get("finalizers"):
                await kube.custom.patch_namespaced_custom_object(
                    crd.spec.group,
                    version,
                    name,
                    plural,
                    obj["metadata"]["name"],
                    {"metadata": {"finalizers": None}},
                    _content_type=MERGE_PATCH,
                )
    await kube.core.delete_namespace(name)


@pytest.fixture
async def ha_namespace(kube: Kube) -> AsyncIterator[str]:
    """A namespace the session's operator does not watch (it watches t-*): for tests that run
    operator replicas of their own."""
    name = f"ha-{uuid.uuid4().hex[:8]}"
    await kube.core.create_namespace({"metadata": {"name": name}})
    yield name
    await kube.core.delete_namespace(name)


@pytest.fixture
async def shard_namespaces(kube: Kube, ha_namespace: str) -> AsyncIterator[list[str]]:
    """Names of one namespace per shard of tests/support/shards.py (shard i's at i), under
    `ha_namespace-` (not made here: the test makes each with its account), deleted after."""
    install_crds()
    names = namespaces_for_each_shard(ha_namespace)
    yield names
    for name in names:
        with contextlib.suppress(ApiException):
            await kube.core.delete_namespace(name)


@pytest.fixture(scope="session")
def zoomsim() -> Iterator[ZoomSim]:
    """The simulator on loopback (for the operator) and on the node's address (for pods)."""
    with ZoomSim(pod_host=node_ip()) as sim:
        yield sim


@pytest.fixture
def sim(zoomsim: ZoomSim) -> Iterator[SimAdmin]:
    """The simulator's admin API, with faults cleared before and after the test."""
    admin = SimAdmin(zoomsim.url)
    admin.set_faults()
    yield admin
    admin.set_faults()
    admin.close()


@pytest.fixture
def zoom_account(sim: SimAdmin) -> dict[str, Any]:
    """A fresh Pro account with one active service user, isolated from other tests."""
    account = sim.create_account(plan="pro")
    account["user"] = sim.add_user(
        account["id"], email=f"bot-{uuid.uuid4().hex[:6]}@bots.example.com"
    )
    return account


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    """One webhook receiver for the session (the session's operator allows its URL); each
    test uses a path of its own and scripts its answers there."""
    found = Receiver(WEBHOOK_SECRET)
    found.start()
    yield found
    found.close()


@pytest.fixture(scope="session")
def stream_receiver() -> Iterator[StreamReceiver]:
    """One live-stream receiver for the session (the session's operator allows its URL)."""
    found = StreamReceiver()
    found.start()
    yield found
    found.close()


@pytest.fixture(scope="session")
def example_port() -> int:
    """Where the example notetaker service listens (the session's operator allows it)."""
    return free_port()


@pytest.fixture(scope="session")
def operator(
    kubeconfig: Path,
    zoomsim: ZoomSim,
    receiver: Receiver,
    stream_receiver: StreamReceiver,
    example_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """One operator process for the session, for the tests' namespaces, with quick timings."""
    install_crds()
    process = OperatorProcess(
        kubeconfig,
        tmp_path_factory.mktemp("operator") / "operator.log",
        retry_base_seconds="1",
        start_lead_seconds="2",
        image_pull_patience_seconds="10",
        user_recheck_seconds="2",
        sweep_seconds="5",
        # MeetingBotSchedules read Zoom again every 2 s (a moved occurrence is seen at once).
        schedule_poll_seconds="2",
        max_duration_grace_seconds="1",
        # Heartbeats every 2 s: a silent bot is stopped after 8 s (BotUnresponsive).
        report_interval_seconds="2",
        allowed_endpoints=zoomsim.url,
        bot_sdk_url=fake_sdk_url(zoomsim.pod_url),
        # The local object store (cluster up starts it): bots' artifacts go there.
        storage_endpoints=cluster.object_store().endpoint,
        # Webhooks to the session's receiver, with short timeouts and backoff.
        webhook_endpoints=",".join(
            [receiver.url, f"http://127.0.0.1:{example_port}", stream_receiver.allowed]
        ),
        webhook_timeout_seconds="2",
        # The simulator's RTMS signaling servers (MeetingStreams).
        rtms_servers=zoomsim.rtms_url,
        # The tests' stream workers (tests/support/stream_workers.py).
        stream_workers=stream_workers.IDENTITY,
        webhook_backoff_max_seconds="2",
        # Only the tests' namespaces: the chart test runs an operator of its own elsewhere.
        namespaces="t-*",
    )
    process.start()
    process.wait_until_watching(f"t-ready-{uuid.uuid4().hex[:6]}")
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def _session_operator_running(request: pytest.FixtureRequest) -> None:
    """A test that stops the session's operator (to restart it, or to SIGKILL it) and fails
    before it runs again must fail alone: the next test that uses the operator finds it
    running and watching, not every later test failing behind it."""
    if "operator" not in request.fixturenames:
        return
    process: OperatorProcess = request.getfixturevalue("operator")
    if not process.running():
        process.start()
        process.wait_until_watching(f"t-ready-{uuid.uuid4().hex[:6]}")


@pytest.fixture
async def workers(
    kube: Kube, image: str, operator: OperatorProcess
) -> AsyncIterator[stream_workers.Workers]:
    """Two stream workers on the real node, polling the session's operator."""
    deployed = await stream_workers.deploy(kube, image, operator.report_url)
    await deployed.ready(2)
    yield deployed
    await deployed.remove()


@pytest.fixture(scope="session")
def handed_secrets() -> list[str]:
    """Every secret a scripted bot was handed during the run (signatures, report tokens, ZAKs):
    the check of the operator's log looks for each of them, and for the webhooks' signing
    secret, which no bot is handed."""
    return [WEBHOOK_SECRET]


@pytest.fixture
def scripted(
    kube: Kube, namespace: str, zoomsim: ZoomSim, handed_secrets: list[str]
) -> Callable[[str], ScriptedBot]:
    """Makes the scripted bot of a MeetingBot of this test's namespace."""

    def make(name: str) -> ScriptedBot:
        return ScriptedBot(kube, namespace, name, zoomsim.url, handed_secrets)

    return make


@pytest.fixture
def bots(kube: Kube, namespace: str, operator: OperatorProcess) -> Bots:
    return Bots(kube, namespace)


@pytest.fixture
async def zoom(
    kube: Kube,
    namespace: str,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    operator: OperatorProcess,
) -> dict[str, Any]:
    """A simulated Zoom account with one service user, and its Ready ZoomAccount "main"."""
    account = await zoom_account_in(
        kube,
        namespace,
        sim,
        zoomsim.url,
        extra_spec={"botImages": [TEST_BOT_IMAGE, IMAGE]},
    )
    assert (await account_ready(kube, namespace))["status"] == "True"
    return account


ROOT = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("IMAGE", "localhost/meetingbot-bot:dev")
OPERATOR_IMAGE = "localhost/meetingbot-operator:dev"
SIM_IMAGE = "localhost/meetingbot-zoomsim:dev"
# The test operator's default bot image (pods on kwok nodes never pull it).
TEST_BOT_IMAGE = "example.invalid/meetingbot-bot:test"


@pytest.fixture(scope="session")
def image(kubeconfig: Path) -> str:
    """The bot image, built with podman (cached layers) and imported into the real node."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed (devenv/prereqs.sh installs it)")
    print("\nbuilding the bot image (cached layers make this quick after the first time)")
    subprocess.run(
        ["bash", str(ROOT / "bot-image" / "build.sh")],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "IMAGE": IMAGE},
    )
    cluster.load_image(IMAGE)
    return IMAGE


def _build_and_load(image: str, dockerfile: str) -> str:
    print(f"\nbuilding {image}", flush=True)
    subprocess.run(
        ["bash", str(ROOT / "bot-image" / "build.sh")],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "IMAGE": image, "DOCKERFILE": dockerfile},
    )
    cluster.load_image(image)
    return image


@pytest.fixture(scope="session")
def operator_image(kubeconfig: Path) -> str:
    """The operator's image (`make operator-image`), imported into the real node."""
    return _build_and_load(OPERATOR_IMAGE, "operator/Dockerfile")


@pytest.fixture(scope="session")
def sim_image(kubeconfig: Path) -> str:
    """The Zoom sandbox's image (`make sim-image`), imported into the real node."""
    return _build_and_load(SIM_IMAGE, "devenv/zoomsim/Dockerfile")


@pytest.fixture
async def running(
    kube: Kube,
    kubeconfig: Path,
    tmp_path: Path,
    image: str,
    operator_image: str,
    zoomsim: ZoomSim,
) -> AsyncIterator[Release]:
    """The README's Helm install for real: the operator runs as the chart's Deployment on the
    real node, with its own service account; bots report to it through the chart's Service;
    Zoom is the simulator, reached through a Service (devenv/zoomsim/in_cluster.py)."""
    install_crds()
    watched = f"chart-{uuid.uuid4().hex[:6]}"
    await kube.core.create_namespace({"metadata": {"name": watched}})
    if await kube.exists(kube.core.read_namespaced_secret, KEY_SECRET, SYSTEM):
        await kube.core.delete_namespaced_secret(KEY_SECRET, SYSTEM)  # a first start, then
    if await kube.exists(kube.coordination.read_namespaced_lease, RELEASE, SYSTEM):
        await kube.coordination.delete_namespaced_lease(RELEASE, SYSTEM)  # (its create too)
    sandbox = in_cluster.expose(zoomsim)
    repository, tag = operator_image.rsplit(":", 1)
    release = Release(watched, sandbox, tmp_path)
    release.values = {
        "watchNamespaces": [watched],
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "operator": {"allowedEndpoints": [sandbox], "retryBaseSeconds": 1},
        "bot": {
            "image": image,
            "sdkUrl": fake_sdk_url(sandbox),
            "imagePullPatienceSeconds": 10,
        },
    }
    await operator_pods_gone(kube)  # a previous install's pods would be refused on our Roles
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        helm(
            "install", RELEASE, str(CHART), "--namespace", SYSTEM, "--create-namespace",
            "-f", values_file(tmp_path, release.values), "--wait", "--timeout", "120s",
        )  # fmt: skip
        release.since = since
        yield release
    finally:
        release.logs()  # printed on failure, with the test's output
        helm("uninstall", RELEASE, "--namespace", SYSTEM, "--wait", check=False)
        await kube.core.delete_namespace(watched)
        await operator_pods_gone(kube)


@pytest.fixture
async def bucket(kube: Kube, namespace: str) -> AsyncIterator[ScratchBucket]:
    """A bucket of its own in the local object store, with its opted-in Secret."""
    made = await bucket_for(kube, namespace)
    yield made
    await made.store.close()
