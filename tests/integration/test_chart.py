"""The Helm chart against the real cluster: lint, server-side dry runs of its manifests, a
real install whose operator pod runs on the real node through a full MeetingBot lifecycle
with real bots (RBAC sufficient), an audit of what its service account did (RBAC minimal),
the report key across an upgrade, upgrade and uninstall."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from devenv.cluster import cluster, node
from devenv.operator_process import install_crds
from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_api import GROUP, VERSION
from meetingbot_operator.meetingbot.children import join_secret
from meetingbot_operator.meetingbot.observed import Meta
from meetingbot_operator.meetingbotschedule.children import bot_body
from meetingbot_operator.meetingbotschedule.occurrences import Occurrence
from meetingbot_operator.zoomusergrant.state import grant_secret
from tests.support.chart import (
    CHART,
    KEY_SECRET,
    NON_DEFAULT,
    RELEASE,
    ROOT,
    SYSTEM,
    Release,
    assert_self_test_passes,
    helm,
    leader_pod,
    operator_pods,
    port_forward,
    render,
    sandbox_values,
    values_file,
)
from tests.support.grants import (
    authorize_in_browser,
    create_grant,
    grant_body,
    grant_setup,
    wait_grant,
)
from tests.support.operator_fixtures import (
    Bots,
    Kube,
    account_ready,
    patch_account,
    wait_for,
    zoom_account,
)
from tests.support.specs import bot_spec, join_config
from tests.support.takeover import leader_deleted_mid_burst

SA_USER = f"system:serviceaccount:{SYSTEM}:{RELEASE}"
QUOTA = 3  # meetingBotQuota of the `installed` release
# Granted, and needed, but no request of a short lifecycle shows them in the audit log:
RARELY_USED = {
    # OwnerReferencesPermissionEnforcement checks it when a child sets blockOwnerDeletion:
    # an authorization check inside admission, not a request of its own.
    ("meetingbot.dev", "meetingbots/finalizers", "update"),
    # The same for a grant's Secret (proved needed by the test that writes each child as the
    # chart's service account, and by the OBF test through the chart).
    ("meetingbot.dev", "zoomusergrants/finalizers", "update"),
    # Only when a MeetingStream exists (its Waiting status, then what Zoom's webhooks say).
    ("meetingbot.dev", "meetingstreams/status", "patch"),
    # Only for a finished MeetingStream with ttlSecondsAfterFinished.
    ("meetingbot.dev", "meetingstreams", "delete"),
    # Only for a MeetingBot whose artifacts.deleteOnDelete is set (its finalizer), or a
    # MeetingBotSchedule's bot that moves or is canceled.
    ("meetingbot.dev", "meetingbots", "patch"),
    # Only when a MeetingBotSchedule exists: its bots, their owner check, its status.
    ("meetingbot.dev", "meetingbots", "create"),
    ("meetingbot.dev", "meetingbotschedules/finalizers", "update"),
    ("meetingbot.dev", "meetingbotschedules/status", "patch"),
    # Only for a ZoomAccount whose picture is in a ConfigMap.
    ("", "configmaps", "get"),
    # Only when a restarted operator finds its pod already there (409 on create).
    ("", "pods", "get"),
    # A stream worker's token, checked when it polls (the chart's workers poll from their
    # start; the review is cached for a minute per token).
    ("authentication.k8s.io", "tokenreviews", "create"),
    # Only when a join Secret of ours is already there: a restart between writing it and
    # creating the pod (each attempt's Secret is deleted when the attempt ends).
    ("", "secrets", "update"),
}


def test_lint_strict(tmp_path: Path) -> None:
    assert (
        "0 chart(s) failed"
        in helm("lint", "--strict", str(CHART), "-f", values_file(tmp_path, {})).stdout
    )
    assert (
        "0 chart(s) failed"
        in helm("lint", "--strict", str(CHART), "-f", values_file(tmp_path, NON_DEFAULT)).stdout
    )


class _UniqueKeys(yaml.SafeLoader):
    """A YAML loader that refuses a mapping with a repeated key (PyYAML keeps the last)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        assert len(keys) == len(set(keys)), f"duplicate keys in {keys}"
        return super().construct_mapping(node, deep=deep)


def test_values_platform_teams_ask_for(tmp_path: Path) -> None:
    rendered = helm(
        "template", RELEASE, str(CHART), "-f", values_file(tmp_path, NON_DEFAULT)
    ).stdout
    documents = [d for d in yaml.load_all(rendered, Loader=_UniqueKeys) if d]
    (deployment,) = [
        d
        for d in documents
        if d["kind"] == "Deployment"
        and not d["metadata"]["name"].endswith(("-zoomsim", "-stream-worker"))
    ]
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "meetingbot-operator"
    assert pod["metadata"]["labels"]["team"] == "bots"
    assert pod["spec"]["containers"][0]["image"].endswith("@sha256:" + "a" * 64)
    assert "runAsUser" not in pod["spec"]["securityContext"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["topologySpreadConstraints"][0]["maxSkew"] == 1
    assert pod["spec"]["containers"][0]["startupProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["HTTPS_PROXY"]["value"] == "http://proxy.example.com:3128"
    assert env["NO_PROXY"]["valueFrom"]["configMapKeyRef"]["name"] == "proxy"
    assert "MEETINGBOT_NAMESPACES" in env  # the chart's own stay
    assert {"name": "corp-ca", "mountPath": "/etc/corp-ca", "readOnly": True} in pod["spec"][
        "containers"
    ][0]["volumeMounts"]
    assert {"name": "corp-ca", "configMap": {"name": "corp-ca"}} in pod["spec"]["volumes"]


def test_every_value_is_described() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    undescribed: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for key, child in (node.get("properties") or {}).items():
            if "description" not in child:
                undescribed.append(f"{path}{key}")
            walk(child, f"{path}{key}.")

    walk(schema, "")
    assert undescribed == []


def test_schema_rejects_bad_values(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"replicaCount": 2, "leaderElection": {"enabled": False}}, "needs leaderElection"),
        ({"replicaCount": -1}, "replicaCount"),
        ({"leaderElection": {"shards": 0}}, "shards"),
        ({"leaderElection": {"shards": 3}}, "serves no MeetingStreams"),
        (
            {"replicaCount": 1, "leaderElection": {"enabled": False, "shards": 2}},
            "each shard is led on a Lease",
        ),
        ({"bot": {"graceSeconds": 1}}, "graceSeconds"),
        ({"unknown": 1}, "unknown"),
    ]
    for bad, message in cases:
        result = helm(
            "template", RELEASE, str(CHART), "-f", values_file(tmp_path, bad), check=False
        )
        assert result.returncode != 0 and message in result.stderr, result.stderr


def test_shards_reach_the_operator_and_its_alerts(tmp_path: Path) -> None:
    values = {"leaderElection": {"shards": 3}, "streamWorkers": {"enabled": False},
              "replicaCount": 4, "metrics": {"prometheusRule": {"enabled": True}}}  # fmt: skip
    rendered = helm("template", RELEASE, str(CHART), "-f", values_file(tmp_path, values)).stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    [deployment] = [d for d in documents if d["kind"] == "Deployment"]
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MEETINGBOT_SHARDS"] == "3"
    [rule] = [d for d in documents if d["kind"] == "PrometheusRule"]
    exprs = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert exprs["MeetingBotOperatorWithoutLeader"].endswith("< 3")


def test_the_crds_are_the_charts_only_when_asked_and_kept_on_uninstall(tmp_path: Path) -> None:
    """crds.install renders crds/ (the same specs) as templates, kept on uninstall unless
    crds.keep is false; off (the default) renders none."""
    canonical = {
        d["metadata"]["name"]: d
        for d in (yaml.safe_load(p.read_text()) for p in sorted((ROOT / "crds").glob("*.yaml")))
        if d.get("kind") == "CustomResourceDefinition"
    }
    assert not [d for d in render(tmp_path, {}) if d["kind"] == "CustomResourceDefinition"]
    for keep in (True, False):
        rendered = [
            d for d in render(tmp_path, {"crds": {"install": True, "keep": keep}})
            if d["kind"] == "CustomResourceDefinition"
        ]  # fmt: skip
        assert sorted(d["metadata"]["name"] for d in rendered) == sorted(canonical)
        for crd in rendered:
            assert crd["spec"] == canonical[crd["metadata"]["name"]]["spec"]
            annotations = crd["metadata"].get("annotations") or {}
            assert (annotations.get("helm.sh/resource-policy") == "keep") is keep


def test_the_bots_policy_reaches_zoom_never_the_cluster_or_metadata_over_either_family(
    tmp_path: Path,
) -> None:
    """What the bots' NetworkPolicy lets out on Zoom's ports, read as Kubernetes reads an
    ipBlock (its cidr minus its exceptions): the Internet over IPv4 and IPv6, never a private,
    link-local (cloud metadata) or mapped address of either family."""
    policies = [
        d for d in render(tmp_path, {"networkPolicy": {"enabled": True}, "watchNamespaces": ["b"]})
        if d["kind"] == "NetworkPolicy" and d["metadata"]["namespace"] == "b"
    ]  # fmt: skip
    blocks = [
        t["ipBlock"]
        for p in policies
        for rule in p["spec"].get("egress", [])
        for t in rule.get("to", [])
        if "ipBlock" in t
    ]

    def allowed(address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(
            ip.version == ipaddress.ip_network(b["cidr"]).version
            and ip in ipaddress.ip_network(b["cidr"])
            and not any(ip in ipaddress.ip_network(e) for e in b.get("except", []))
            for b in blocks
        )

    for outside in ("203.0.113.7", "8.8.8.8", "2001:4860:4860::8888", "2a00:1450::1"):
        assert allowed(outside), outside
    for inside in ("169.254.169.254", "10.96.0.1", "192.168.1.1", "100.64.0.10", "172.17.0.1",
                   "fd00:ec2::254", "fe80::1", "fd12:3456::1", "64:ff9b::a9fe:a9fe"):  # fmt: skip
        assert not allowed(inside), inside


def test_the_chart_refuses_to_render_without_a_bot_image() -> None:
    """No public bot image can exist (Zoom's SDK licence): the user's own is required, and the
    error says how to make one."""
    result = helm("template", RELEASE, str(CHART), check=False)
    assert result.returncode != 0
    assert "bot.image is required: build the bot image (make image" in result.stderr


@pytest.mark.parametrize("values", [{}, NON_DEFAULT], ids=["default", "non-default"])
def test_rendered_manifests_pass_a_server_side_dry_run(
    kubeconfig: Path, tmp_path: Path, values: dict[str, Any]
) -> None:
    install_crds()
    namespaces = [SYSTEM, *values.get("watchNamespaces", [])]
    for namespace in namespaces:
        cluster.kubectl("create", "namespace", namespace, check=False)
    rendered = helm(
        "template", RELEASE, str(CHART), "--namespace", SYSTEM, "-f", values_file(tmp_path, values)
    ).stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = sorted({d["kind"] for d in documents})
    # The ServiceMonitor CRD is not installed here, and `helm test`'s Pod names a service
    # account a dry run does not create (the sandbox test runs it for real): the dry run covers
    # everything else.
    manifest = yaml.safe_dump_all([
        d for d in documents
        if d["kind"] != "ServiceMonitor"
        and not (d["kind"] == "Pod" and "helm.sh/hook" in d["metadata"].get("annotations", {}))
    ])  # fmt: skip
    dry = subprocess.run(
        [
            str(cluster.Binaries.in_cache().kubectl),
            "--kubeconfig",
            str(cluster.kubeconfig_path()),
            "apply",
            "--dry-run=server",
            "-f",
            "-",
        ],
        input=manifest,
        text=True,
        capture_output=True,
        check=False,
    )
    assert dry.returncode == 0, dry.stderr
    assert {"Deployment", "Service", "ServiceAccount"} <= set(kinds)
    if values:
        # Listed namespaces: Roles there, nothing cluster-wide for the operator but the
        # TokenReviews that tell it a stream worker from anyone else (a cluster-scoped kind);
        # the other ClusterRoles are the ones aggregated into view/edit/admin, for people.
        assert {"Role", "RoleBinding", "NetworkPolicy", "ServiceMonitor"} <= set(kinds)
        assert "ResourceQuota" in kinds  # meetingBotQuota, in each watched namespace
        bindings = [d for d in documents if d["kind"] == "ClusterRoleBinding"]
        assert [b["roleRef"]["name"] for b in bindings] == [f"{RELEASE}-token-review"]
        [review] = [d for d in documents if d["metadata"]["name"] == f"{RELEASE}-token-review"
                    and d["kind"] == "ClusterRole"]  # fmt: skip
        assert review["rules"] == [
            {
                "apiGroups": ["authentication.k8s.io"],
                "resources": ["tokenreviews"],
                "verbs": ["create"],
            }
        ]
        cluster_roles = [d for d in documents if d["kind"] == "ClusterRole" and d is not review]
        assert all(
            any(
                k.startswith("rbac.authorization.k8s.io/aggregate-to-")
                for k in d["metadata"]["labels"]
            )
            for d in cluster_roles
        )
    else:
        assert {"ClusterRole", "ClusterRoleBinding"} <= set(kinds)
    # Nothing random: the report key is made by the operator, never by the render.
    assert "Secret" not in kinds
    for document in documents:
        assert document["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


@pytest.fixture
async def installed(kube: Kube, kubeconfig: Path, tmp_path: Path) -> AsyncIterator[str]:
    """`helm install` scoped to one fresh namespace, with no operator pod (replicaCount 0):
    for the tests of what the chart renders and grants. Uninstalled afterwards."""
    install_crds()
    watched = f"chart-{uuid.uuid4().hex[:6]}"
    await kube.core.create_namespace({"metadata": {"name": watched}})
    values = {"watchNamespaces": [watched], "replicaCount": 0, "meetingBotQuota": QUOTA}
    helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        SYSTEM,
        "--create-namespace",
        "-f",
        values_file(tmp_path, values),
        "--wait=false",
    )
    yield watched
    helm("uninstall", RELEASE, "--namespace", SYSTEM, check=False)
    await kube.core.delete_namespace(watched)


def audited_permissions(since: str) -> tuple[set[tuple[str, str, str]], set[tuple[str, str, str]]]:
    """(allowed, forbidden) requests of the service account since an RFC 3339 time."""
    used: set[tuple[str, str, str]] = set()
    forbidden: set[tuple[str, str, str]] = set()
    for line in cluster.audit_lines():
        entry = json.loads(line)
        if entry["user"]["username"] != SA_USER or "objectRef" not in entry:
            continue
        if entry["requestReceivedTimestamp"] < since:
            continue
        ref = entry["objectRef"]
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        permission = (ref.get("apiGroup", ""), resource, entry["verb"])
        (forbidden if entry.get("responseStatus", {}).get("code") == 403 else used).add(permission)
    return used, forbidden


async def granted_permissions(kube: Kube, namespace: str) -> set[tuple[str, str, str]]:
    rules = list((await kube.rbac.read_namespaced_role(RELEASE, namespace)).rules)
    for role in (f"{RELEASE}-report-key", f"{RELEASE}-leader-election"):
        rules += (await kube.rbac.read_namespaced_role(role, SYSTEM)).rules
    cluster_roles = [
        r
        for r in (await kube.rbac.list_cluster_role()).items
        if r.metadata.name.startswith(RELEASE) and "aggregate" not in r.metadata.name
    ]
    # Cluster-wide, only the stream workers' TokenReviews (tokenreviews are cluster-scoped).
    assert [r.metadata.name for r in cluster_roles] == [f"{RELEASE}-token-review"]
    rules += cluster_roles[0].rules
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.api_groups
        for resource in rule.resources
        for verb in rule.verbs
    }


async def test_the_operator_pod_runs_on_the_charts_rbac_and_needs_all_of_it(
    kube: Kube, running: Release, sim: SimAdmin, zoomsim: ZoomSim
) -> None:
    """A whole lifecycle with the chart's operator pod and real bots: a crash and a second
    attempt, the operator's pod deleted mid-meeting (its successor takes over: no duplicate
    bot pod, the status goes on), the TTL, an image that cannot be pulled. Then the audit log
    of its service account: every request allowed, every grant used."""
    namespace = running.namespace
    pods = await operator_pods(kube)
    assert len(pods) == 2 and {p.spec.node_name for p in pods} == {node.NODE_NAME}
    first = await leader_pod(kube)
    bots = Bots(kube, namespace)
    zoom = await zoom_account(kube, namespace, sim, running.sandbox)
    assert (await account_ready(kube, namespace, timeout=60))["status"] == "True"
    # 0. a ZoomUserGrant: its status names the chart's public OAuth URL (oauth.publicUrl)
    await create_grant(kube, namespace, "someone", "app", allowAnyUser=True)

    async def grant_url() -> str | None:
        body = await kube.custom.get_namespaced_custom_object(
            "meetingbot.dev", "v1alpha1", namespace, "zoomusergrants", "someone"
        )
        return (body.get("status") or {}).get("authorizationUrl")

    url = await wait_for(grant_url, 60, what="the grant's authorizationUrl")
    assert url.startswith(f"http://localhost:8082/oauth/start/{namespace}/someone?t=")
    number = sim.create_meeting(zoom["id"])["number"]
    # 1. a bot that crashes once (a second attempt gets a new Secret) ...
    # (a TTL of 0 would delete the bot before a poll could see it Succeeded: CI saw 404)
    await bots.apply("full", bot_spec(number, on_kwok=False, ttlSecondsAfterFinished=10))
    await bots.wait_phase("full", "InMeeting", timeout=120)
    (pod,) = await bots.pods("full")
    node.kill_container(await bots.wait_running_container(pod.metadata.name))
    await bots.wait_status("full", lambda s: s.get("attempts") == 2, timeout=60)
    await bots.wait_phase("full", "InMeeting", timeout=120)
    # ... the leading operator's pod is deleted mid-meeting: the standby takes over
    await kube.core.delete_namespaced_pod(first.metadata.name, SYSTEM)

    async def successor() -> Any:
        leader = await leader_pod(kube)
        return leader if leader and leader.metadata.uid != first.metadata.uid else None

    await wait_for(successor, 60, what="the standby leading")
    assert (await bots.status("full"))["phase"] == "InMeeting"
    sim.end_meeting(number)
    status = await bots.wait_phase("full", "Succeeded", timeout=60)
    assert (status["reason"], status["attempts"]) == ("MeetingEnded", 2)
    assert len(sim.participants(number, "left")) == 2  # one bot per attempt, never two at once

    # ... and is deleted by its TTL (the delete verb)
    async def deleted() -> bool:
        return not await bots.all()

    await wait_for(deleted, 60, what="TTL deletion")
    # 2. a bot whose image cannot be pulled: Failed once, the stuck pod deleted
    missing = running.values["bot"]["image"].rsplit(":", 1)[0] + ":missing"
    await patch_account(kube, namespace, {"botImages": [running.values["bot"]["image"], missing]})
    stuck = bot_spec(sim.create_meeting(zoom["id"])["number"], on_kwok=False)
    await bots.apply("stuck", {**stuck, "podTemplate": {"image": missing}})
    status = await bots.wait_phase("stuck", "Failed", timeout=90)
    assert status["reason"] == "ImagePullFailed"

    async def stuck_pod_deleted() -> bool:
        return not [p for p in await bots.pods("stuck") if p.metadata.deletion_timestamp is None]

    await wait_for(stuck_pod_deleted, 30, what="stuck pod deleted")

    log = running.logs()  # kubectl logs of the operator's pod, served by the real kubelet
    assert log.strip(), "kubectl logs of the operator's pod is empty"
    assert "forbidden" not in log.lower(), "the operator hit an RBAC denial"
    used, forbidden = audited_permissions(running.since)
    assert not forbidden, f"the operator was refused: {sorted(forbidden)}"
    granted = await granted_permissions(kube, namespace)
    unused = granted - used - RARELY_USED
    assert not unused, f"granted but never used: {sorted(unused)}"
    assert used <= granted
    print("\nRBAC used by the operator:", sorted(used))


async def test_obf_through_the_chart_a_person_authorizes_and_the_bot_joins_on_their_behalf(
    kube: Kube, running: Release, sim: SimAdmin
) -> None:
    """The OBF path of docs/resources.md with the chart's operator pods and RBAC: a person opens the
    grant's link through `kubectl port-forward` (whichever replica answers; a standby forwards
    to the leader), signs in on Zoom's consent page in Chromium, the grant's Secret is written
    under OwnerReferencesPermissionEnforcement, and a real bot joins another account's
    meeting on the user's behalf and leaves with them."""
    namespace = running.namespace
    public = "http://localhost:8082"  # the chart's default oauth.publicUrl
    _, host, alice = await grant_setup(
        kube,
        namespace,
        sim,
        running.sandbox,
        public,
        extra_spec={"botImages": [running.values["bot"]["image"]]},
        grant_spec={"email": f"alice-{namespace}@customer.example.com"},
    )
    url = (await grant_body(kube, namespace))["status"]["authorizationUrl"]
    sandbox_host = running.sandbox.removeprefix("http://")
    sandbox_ip = cluster.kubectl(
        "-n", sandbox_host.split(".")[1], "get", "service", sandbox_host.split(".")[0],
        "-o", "jsonpath={.spec.clusterIP}",
    ).stdout  # fmt: skip
    with port_forward(f"svc/{RELEASE}", SYSTEM, 8082):
        title = await authorize_in_browser(url, alice["email"], hosts={sandbox_host: sandbox_ip})
    assert title == "Authorized"
    await wait_grant(kube, namespace, ready="True", timeout=30)
    number = sim.create_meeting(host["id"])["number"]
    alice_in = sim.add_participant(number, "Alice", user_id=alice["id"])
    bots = Bots(kube, namespace)
    spec = bot_spec(number, on_kwok=False, auth="obf", obf={"grantRef": {"name": "alice"}})
    await bots.apply("onbehalf", spec)
    status = await bots.wait_phase("onbehalf", "InMeeting", "Failed", timeout=120)
    assert (status["phase"], status["auth"]) == ("InMeeting", "obf"), status
    sim.remove_participant(number, alice_in["userId"], mode="leave")
    done = await bots.wait_phase("onbehalf", "Succeeded", "Failed", timeout=60)
    assert (done["phase"], done["reason"]) == ("Succeeded", "AuthorizingUserLeft")
    _, forbidden = audited_permissions(running.since)
    assert not forbidden, f"the operator was refused: {sorted(forbidden)}"


async def test_the_sandbox_serves_a_whole_meeting_in_the_cluster(
    kube: Kube, tmp_path: Path, image: str, operator_image: str, sim_image: str
) -> None:
    """`sandbox.enabled=true`: the simulator runs as a pod beside the operator, and `helm test`
    runs one MeetingBot against it from a pod: a real bot joins, meets and leaves with nothing
    on the host."""
    install_crds()
    watched = f"chart-{uuid.uuid4().hex[:6]}"
    await kube.core.create_namespace({"metadata": {"name": watched}})
    values = sandbox_values(watched, image, operator_image, sim_image)
    try:
        helm(
            "install", RELEASE, str(CHART), "--namespace", SYSTEM, "--create-namespace",
            "-f", values_file(tmp_path, values), "--wait", "--timeout", "120s",
        )  # fmt: skip
        assert_self_test_passes()  # nothing of it runs on the host
        # It left nothing behind in the namespace it tested.
        listed = await kube.custom.list_namespaced_custom_object(
            "meetingbot.dev", "v1alpha1", watched, "zoomaccounts"
        )
        assert listed["items"] == []
    finally:
        helm("uninstall", RELEASE, "--namespace", SYSTEM, "--wait", check=False)
        await kube.core.delete_namespace(watched)


async def test_the_standby_takes_over_mid_burst_without_losing_a_bot(
    kube: Kube, running: Release, sim: SimAdmin, zoomsim: ZoomSim, handed_secrets: list[str]
) -> None:
    """High availability on the real node: the chart's two replicas; the leader's pod is
    deleted while 100 bots start. The standby leads, every bot joins and succeeds on its
    first attempt, one pod each, every report accepted (tests/support/takeover.py).
    `make bench` measures the takeover five times (tests/bench/test_takeover.py)."""
    zoom = await zoom_account(kube, running.namespace, sim, running.sandbox)
    await account_ready(kube, running.namespace, timeout=60)
    number = sim.create_meeting(zoom["id"])["number"]
    result = await leader_deleted_mid_burst(
        kube, running.namespace, sim, zoomsim.url, number, handed_secrets, prefix="ha"
    )
    print(f"\n{result}")

    # Each replica's membership Lease is owned by its pod: the deleted leader's went with it.
    async def one_member_lease_per_pod() -> bool:
        leases = await client.CoordinationV1Api(kube.api).list_namespaced_lease(
            SYSTEM, label_selector="meetingbot.dev/lease-role=member"
        )
        pods = {p.metadata.name: p.metadata.uid for p in await operator_pods(kube)}
        owners = {
            (ref.name, ref.uid)
            for lease in leases.items
            for ref in lease.metadata.owner_references or []
        }
        return len(leases.items) == len(pods) and owners == set(pods.items())

    await wait_for(one_member_lease_per_pod, 60, what="one membership Lease per operator pod")


def test_renders_are_stable(tmp_path: Path) -> None:
    """What Argo CD and `helm diff` run: the same values render the same manifests."""
    for values in ({}, NON_DEFAULT):
        renders = {
            helm("template", RELEASE, str(CHART), "-f", values_file(tmp_path, values)).stdout
            for _ in range(2)
        }
        assert len(renders) == 1


async def test_the_report_key_outlives_an_upgrade_with_a_bot_in_a_meeting(
    kube: Kube, running: Release, sim: SimAdmin
) -> None:
    """The operator made the key on its first start; an upgrade that changes the render
    replaces both pods (RollingUpdate: each old leader hands over to a new standby), and the
    bot started before still reports to the new leader."""
    namespace = running.namespace
    key = await _report_key(kube)
    bots = Bots(kube, namespace)
    zoom = await zoom_account(kube, namespace, sim, running.sandbox)
    await account_ready(kube, namespace, timeout=60)
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("steady", bot_spec(number, on_kwok=False))
    await bots.wait_phase("steady", "InMeeting", timeout=120)
    before = {p.metadata.uid for p in await operator_pods(kube)}
    running.upgrade(logLevel="DEBUG")

    async def replaced() -> bool:
        after = {p.metadata.uid for p in await operator_pods(kube)}
        return len(after) == 2 and not after & before and await leader_pod(kube) is not None

    await wait_for(replaced, 60, what="two new operator pods, one leading")
    assert await _report_key(kube) == key
    sim.end_meeting(number)
    status = await bots.wait_phase("steady", "Succeeded", timeout=60)
    assert (status["reason"], status["attempts"]) == ("MeetingEnded", 1)


async def _report_key(kube: Kube) -> str:
    secret = await kube.core.read_namespaced_secret(KEY_SECRET, SYSTEM)
    return str(secret.data["reportKey"])


async def test_the_chart_adopts_upgrades_and_keeps_the_crds_when_asked(
    kube: Kube, kubeconfig: Path, tmp_path: Path
) -> None:
    """docs/install.md's way to crds.install on a cluster whose CRDs were applied without the
    chart: adopted (label and annotations), installed and upgraded with the release, and still
    there, with every object, after `helm uninstall`."""
    install_crds()
    crds = sorted(p.stem.split("_", 1)[1] for p in (ROOT / "crds").glob("meetingbot.dev_*.yaml"))
    names = [f"{plural}.meetingbot.dev" for plural in crds]
    watched = f"chart-{uuid.uuid4().hex[:6]}"
    await kube.core.create_namespace({"metadata": {"name": watched}})
    await Bots(kube, watched).apply("kept", bot_spec())
    values = {"watchNamespaces": [watched], "replicaCount": 0, "crds": {"install": True}}
    ownership = ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace")
    try:
        for name in names:
            cluster.kubectl(
                "label", "crd", name, "app.kubernetes.io/managed-by=Helm", "--overwrite"
            )
            cluster.kubectl("annotate", "crd", name, f"{ownership[0]}={RELEASE}",
                            f"{ownership[1]}={SYSTEM}", "--overwrite")  # fmt: skip
        for verb in ("install", "upgrade"):
            helm(verb, RELEASE, str(CHART), "--namespace", SYSTEM, "--create-namespace",
                 "-f", values_file(tmp_path, values), "--wait=false")  # fmt: skip
            for name in names:
                crd = await kube.ext.read_custom_resource_definition(name)
                annotations = crd.metadata.annotations or {}
                assert annotations["helm.sh/resource-policy"] == "keep"
                assert annotations[ownership[0]] == RELEASE
                assert crd.metadata.labels["helm.sh/chart"].startswith("meetingbot-operator-")
        helm("uninstall", RELEASE, "--namespace", SYSTEM, "--wait")
        for name in names:
            assert await kube.ext.read_custom_resource_definition(name)
        assert await Bots(kube, watched).exists("kept")
    finally:
        helm("uninstall", RELEASE, "--namespace", SYSTEM, check=False)
        for name in names:  # as the other tests expect them: applied without the chart
            cluster.kubectl("annotate", "crd", name, f"{ownership[0]}-", f"{ownership[1]}-",
                            "helm.sh/resource-policy-", check=False)  # fmt: skip
        install_crds()
        await kube.core.delete_namespace(watched)


async def test_upgrade_and_uninstall(kube: Kube, installed: str, tmp_path: Path) -> None:
    values = {"watchNamespaces": [installed], "operator": {"logLevel": "DEBUG"}}
    helm("upgrade", RELEASE, str(CHART), "--namespace", SYSTEM, "-f", values_file(tmp_path, values))
    deployment = await kube.apps.read_namespaced_deployment(RELEASE, SYSTEM)
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
    assert env["MEETINGBOT_LOG_LEVEL"] == "DEBUG"
    assert env["MEETINGBOT_NAMESPACES"] == installed
    assert deployment.spec.strategy.type == "RollingUpdate"
    helm("uninstall", RELEASE, "--namespace", SYSTEM)
    assert not (await kube.apps.list_namespaced_deployment(SYSTEM)).items
    assert not [
        r
        for r in (await kube.rbac.list_cluster_role()).items
        if r.metadata.name.startswith(RELEASE)
    ]
    listed = await kube.core.list_namespaced_secret(
        SYSTEM, label_selector=f"app.kubernetes.io/instance={RELEASE}"
    )
    assert not listed.items


async def test_the_charts_rbac_lets_the_operator_write_every_child_it_owns(
    kube: Kube, installed: str
) -> None:
    """Every Secret the operator writes is controlled by its MeetingBot or ZoomUserGrant, and
    every MeetingBot a MeetingBotSchedule makes by the schedule, with blockOwnerDeletion;
    OwnerReferencesPermissionEnforcement (on in this cluster, and on OpenShift by default) then
    asks for update on the owner's finalizers. Written here as the chart's service account,
    from the operator's own builders, as the operator writes them."""
    namespace = installed
    schedule = await kube.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "meetingbotschedules",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MeetingBotSchedule",
         "metadata": {"name": "weekly"},
         "spec": {"cron": {"schedule": "0 9 * * 1"}, "template": {"spec": bot_spec()}}},
    )  # fmt: skip
    start = datetime(2030, 1, 7, 9, tzinfo=UTC)
    occurrence = Occurrence(key="weekly-key", start=start)
    made = bot_body(schedule, "weekly-1", occurrence, datetime.now(UTC))
    grant = await create_grant(kube, namespace, "alice", "app", allowAnyUser=True)
    bot = await Bots(kube, namespace).apply("owner", bot_spec())
    meta = Meta("owner", namespace, bot["metadata"]["uid"], 1)
    children = {
        "ZoomUserGrant": grant_secret(
            namespace, "alice", grant["metadata"]["uid"], {"refreshToken": "x"}
        ),
        "MeetingBot": join_secret(meta, 1, join_config()),
        "MeetingBotSchedule": made,
    }
    for owner, secret in children.items():
        created = cluster.kubectl(
            "--as", SA_USER, "-n", namespace, "create", "-f", "-",
            stdin=json.dumps(secret), check=False,
        )  # fmt: skip
        assert created.returncode == 0, f"a {owner}'s child was refused: {created.stderr}"


async def test_a_namespace_past_its_meetingbot_quota_is_refused_at_apply_time(
    kube: Kube, installed: str
) -> None:
    bots = Bots(kube, installed)
    for i in range(QUOTA):
        await bots.apply(f"b{i}", bot_spec())
    with pytest.raises(ApiException) as refused:
        await bots.apply("one-more", bot_spec())
    assert refused.value.status == 403
    assert "exceeded quota" in str(refused.value.body)
    assert "count/meetingbots.meetingbot.dev" in str(refused.value.body)


async def test_namespace_users_get_our_resources_through_view_and_edit(
    kube: Kube, installed: str
) -> None:
    """The chart's aggregated ClusterRoles reach Kubernetes' own "view" and "edit" (the
    controller-manager aggregates them): a RoleBinding is all a namespace user needs."""
    namespace = installed
    for user, role in (("editor", "edit"), ("viewer", "view")):
        await kube.rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": user},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [{"kind": "ServiceAccount", "name": user, "namespace": namespace}],
            },
        )
    editor = Bots(await kube.as_service_account(namespace, "editor"), namespace)
    viewer = Bots(await kube.as_service_account(namespace, "viewer"), namespace)
    try:

        async def editor_can_create() -> bool:
            try:
                await editor.apply("by-editor", bot_spec())
            except ApiException as error:
                if error.status == 403:
                    return False  # the aggregation may not have caught up yet
                raise
            return True

        await wait_for(editor_can_create, 30, what="edit granting MeetingBots")
        assert [b["metadata"]["name"] for b in await viewer.all()] == ["by-editor"]
        with pytest.raises(ApiException) as refused:
            await viewer.apply("by-viewer", bot_spec())
        assert refused.value.status == 403
    finally:
        await editor.kube.close()
        await viewer.kube.close()
