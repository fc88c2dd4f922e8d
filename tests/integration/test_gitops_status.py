"""GitOps health, read by the real thing: kstatus (sigs.k8s.io/cli-utils, what Flux and the
kstatus tool use, built from the Go module at a pinned version) over MeetingBots,
ZoomAccounts and ZoomUserGrants as the operator wrote them, and `kubectl wait` for either
outcome of a bot."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

from devenv.cluster import cluster
from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_api import GROUP, VERSION
from tests.support.grants import make_grant
from tests.support.operator_fixtures import Bots, Kube, account_ready, zoom_account
from tests.support.specs import bot_spec


def kstatus(body: dict[str, Any]) -> str:
    """kstatus's verdict on an object: Current, InProgress, Failed, ..."""
    checked = subprocess.run(
        [str(cluster.Binaries.in_cache().kstatus)],
        input=json.dumps(body),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return str(json.loads(checked.stdout)["status"])


async def custom(kube: Kube, namespace: str, plural: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = await kube.custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name
    )
    return body


async def test_kstatus_tells_failed_from_waiting_from_current(
    operator: OperatorProcess,
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
) -> None:
    # MeetingBots: one that cannot work (Failed), one waiting for its account (on its way),
    # one scheduled in two days (Current: a sync waiting for health is not held for days).
    await bots.apply("wrong-user", bot_spec(user="nobody@bots.example.com"))
    await bots.apply("no-account", {**bot_spec(), "accountRef": {"name": "missing"}})
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    await bots.apply("later", bot_spec(joinAt=later))
    await bots.wait_phase("wrong-user", "Failed")
    await bots.wait_phase("no-account", "Pending")
    await bots.wait_phase("later", "Scheduled")
    verdicts = {n: kstatus(await bots.get(n)) for n in ("wrong-user", "no-account", "later")}
    assert verdicts == {"wrong-user": "Failed", "no-account": "InProgress", "later": "Current"}

    # `kubectl wait` for either outcome: completionTime is set on Succeeded and on Failed.
    waited = cluster.kubectl(
        "-n", namespace, "wait", "--for=jsonpath={.status.completionTime}",
        "mb/wrong-user", "--timeout=10s",
    )  # fmt: skip
    assert "condition met" in waited.stdout

    # ZoomAccounts: Ready is Current; credentials Zoom refuses are Failed (a person must fix
    # them), told apart from a Secret not created yet (on its way).
    await account_ready(kube, namespace, predicate=lambda c: c["status"] == "True")
    assert kstatus(await custom(kube, namespace, "zoomaccounts", "main")) == "Current"
    await zoom_account(kube, namespace, sim, zoomsim.url, name="refused")
    await kube.core.patch_namespaced_secret(
        "refused-api", namespace, {"stringData": {"clientSecret": "wrong"}}
    )
    await account_ready(
        kube, namespace, "refused", lambda c: c["reason"] == "ZoomCredentialsInvalid", 45
    )
    assert kstatus(await custom(kube, namespace, "zoomaccounts", "refused")) == "Failed"
    await kube.core.delete_namespaced_secret("refused-sdk", namespace)
    await account_ready(kube, namespace, "refused", lambda c: c["reason"] == "SecretNotFound", 45)
    assert kstatus(await custom(kube, namespace, "zoomaccounts", "refused")) == "InProgress"


async def test_kstatus_reads_a_grant_awaiting_consent_as_on_its_way(
    kube: Kube, namespace: str, sim: SimAdmin, zoomsim: ZoomSim, operator: OperatorProcess
) -> None:
    await make_grant(kube, namespace, sim, zoomsim, operator)  # AwaitingAuthorization
    assert kstatus(await custom(kube, namespace, "zoomusergrants", "alice")) == "InProgress"
