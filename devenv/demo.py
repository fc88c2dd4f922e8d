"""`make demo`: the README's Helm quick start on this machine, with Zoom simulated.

Builds what it needs (with progress): the local cluster (control plane + one real node), the
bot, operator and Zoom-sandbox images (podman), imported into the node. `helm install`s the
chart with its Zoom sandbox (the operator and the simulator run as pods on the real node),
applies examples/zoomaccount.yaml and examples/meetingbot.yaml, shows the phases as they
change, plays the meeting's scripted speakers (the sandbox's media), ends the meeting, shows
what the bot delivered to the local object store (status.artifacts and the manifest), and
`kubectl logs` of the bot and of the operator.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from devenv.cluster import cluster
from devenv.cluster.objectstore import ensure_bucket
from devenv.operator_process import install_crds
from devenv.zoomsim import SimAdmin
from meetingbot_contract import Manifest
from meetingbot_operator.artifacts.store import Bucket, ObjectStore

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "demo"
SYSTEM = "meetingbot-system"
RELEASE = "meetingbot-operator"
IMAGE = os.environ.get("IMAGE", "localhost/meetingbot-bot:dev")
OPERATOR_IMAGE = "localhost/meetingbot-operator:dev"
SIM_IMAGE = "localhost/meetingbot-zoomsim:dev"


def say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def kubectl(*args: str, stdin: str | None = None) -> str:
    result = cluster.kubectl(*args, stdin=stdin, check=False, timeout=180)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def example(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "examples" / name).read_text()))


def build_image(image: str, dockerfile: str) -> str:
    """Build with podman; return the image under a tag naming this build (its ID), so that a
    rebuilt image rolls the Deployment out, as an immutable tag from CI would."""
    subprocess.run(
        ["bash", str(ROOT / "bot-image" / "build.sh")],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "IMAGE": image, "DOCKERFILE": dockerfile},
    )
    image_id = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", image],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    tagged = f"{image.rsplit(':', 1)[0]}:dev-{image_id[:12]}"
    subprocess.run(["podman", "tag", image, tagged], check=True)
    return tagged


def setup() -> tuple[str, str, str]:
    """Returns the bot's, the operator's and the simulator's image, as built and imported."""
    started = time.monotonic()
    say("1/6 local cluster binaries (built once: ~20 min on 2 cores the first time)")
    cluster.build()
    say("2/6 the bot, operator and Zoom-sandbox images (podman; a Debian base is bootstrapped")
    say("    the first time)")
    images = (
        build_image(IMAGE, "bot-image/Dockerfile"),
        build_image(OPERATOR_IMAGE, "operator/Dockerfile"),
        build_image(SIM_IMAGE, "devenv/zoomsim/Dockerfile"),
    )
    say("3/6 starting the cluster (control plane + a real node) and importing the images")
    cluster.up()
    for image in images:
        cluster.load_image(image)
    install_crds()
    say(f"    set up in {time.monotonic() - started:.0f}s")
    return images


def helm_install(bot_image: str, operator_image: str, sim_image: str) -> None:
    """The README's `helm install`, with values only for the local images (imported into the
    node: there is no registry) and the chart's Zoom sandbox."""
    repository, tag = operator_image.rsplit(":", 1)
    sim_repository, sim_tag = sim_image.rsplit(":", 1)
    values = [
        f"watchNamespaces={{{NAMESPACE}}}",
        f"image.repository={repository}",
        f"image.tag={tag}",
        "image.pullPolicy=Never",
        f"bot.image={bot_image}",
        "sandbox.enabled=true",
        f"sandbox.image.repository={sim_repository}",
        f"sandbox.image.tag={sim_tag}",
        "sandbox.image.pullPolicy=Never",
        # The local object store (devenv/cluster/objectstore.py) as an allowed bucket endpoint.
        f"operator.storageEndpoints={{{cluster.object_store().endpoint}}}",
    ]
    command = [
        str(cluster.Binaries.in_cache().helm),
        "--kubeconfig",
        str(cluster.kubeconfig_path()),
        "upgrade",
        "--install",
        RELEASE,
        str(ROOT / "charts" / "meetingbot-operator"),
        "--namespace",
        SYSTEM,
        "--create-namespace",
        "--wait",
        "--timeout",
        "180s",
    ]
    for value in values:
        command += ["--set", value]
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)  # the README's first step
    say("4/6 helm install (the operator and the Zoom sandbox run as pods on the real node):")
    print("  helm upgrade --install meetingbot-operator charts/meetingbot-operator \\")
    print(f"    --namespace {SYSTEM} --create-namespace --wait \\")
    print(" \\\n".join(f"    --set '{v}'" for v in values))
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"helm install failed: {result.stderr.strip()}")
    pod = kubectl(
        "-n", SYSTEM, "get", "pods", "-l", "app.kubernetes.io/name=meetingbot-operator",
        "-o", "jsonpath={.items[0].metadata.name} on {.items[0].spec.nodeName}",
    )  # fmt: skip
    say(f"    operator pod {pod} Ready in {time.monotonic() - started:.0f}s")


def zoom_setup(admin: SimAdmin, bot: dict[str, Any], account: dict[str, Any]) -> dict[str, Any]:
    say("5/6 a simulated Zoom account, its service user and a meeting, as in the examples")
    zoom = admin.create_account(plan="pro")
    for email in account["spec"]["users"]:
        admin.add_user(zoom["id"], email=email)
    meeting = bot["spec"]["meeting"]
    admin.create_meeting(
        zoom["id"],
        number=meeting["number"],
        passcode=meeting.get("passcode", ""),
        auth_required=True,
    )
    for person in PEOPLE:
        admin.add_participant(meeting["number"], person, is_host=person == PEOPLE[0])
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    for name, data in {
        "zoom-sdk": {"sdkKey": zoom["sdk_key"], "sdkSecret": zoom["sdk_secret"]},
        "zoom-api": {
            "accountId": zoom["id"],
            "clientId": zoom["client_id"],
            "clientSecret": zoom["client_secret"],
        },
    }.items():
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            # The opt-in label: without it the operator will not use the Secret (docs/security.md).
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "labels": {"meetingbot.dev/secret-for": "zoom-credentials"},
            },
            "stringData": data,
        }
        kubectl("apply", "-f", "-", stdin=json.dumps(secret))
    return zoom


def storage_setup(bot: dict[str, Any]) -> None:
    """The example's bucket in the local object store, and its credentials Secret."""
    store = cluster.object_store()
    artifacts = bot["spec"]["artifacts"]
    ensure_bucket(store, artifacts["bucket"])
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": artifacts["credentialsSecretRef"]["name"],
            "namespace": NAMESPACE,
            "labels": {"meetingbot.dev/secret-for": "storage-credentials"},
        },
        "stringData": {"accessKeyId": store.access_key, "secretAccessKey": store.secret_key},
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(secret))
    # The other demo-only change to the examples: the bucket is the local object store.
    artifacts["endpoint"] = store.endpoint


def main() -> int:
    bot_image, operator_image, sim_image = setup()
    account, bot = example("zoomaccount.yaml"), example("meetingbot.yaml")
    helm_install(bot_image, operator_image, sim_image)
    sandbox = f"http://{RELEASE}-zoomsim.{SYSTEM}.svc"
    # Its admin API from this host: through the Service's ClusterIP (kube-proxy routes it).
    cluster_ip = kubectl(
        "-n", SYSTEM, "get", "service", f"{RELEASE}-zoomsim", "-o", "jsonpath={.spec.clusterIP}"
    )  # fmt: skip
    say(f"    the Zoom sandbox: {sandbox} in the cluster (http://{cluster_ip} from this host)")
    with SimAdmin(f"http://{cluster_ip}") as admin:
        admin.wait_reachable()
        zoom_setup(admin, bot, account)
        storage_setup(bot)
        # The one demo-only change to the examples, printed so nothing is hidden: Zoom is
        # the simulator, reached through its Service.
        account["spec"]["endpoints"] = {
            "oauthUrl": f"{sandbox}/oauth/token",
            "apiUrl": f"{sandbox}/v2",
        }
        say("6/6 applying examples/zoomaccount.yaml and examples/meetingbot.yaml, with:")
        print(
            yaml.safe_dump(
                {
                    "ZoomAccount.spec.endpoints": account["spec"]["endpoints"],
                    "MeetingBot.spec.artifacts.endpoint": bot["spec"]["artifacts"]["endpoint"],
                },
                sort_keys=False,
            )
        )
        name = bot["metadata"]["name"]
        kubectl("-n", NAMESPACE, "delete", "mb", name, "--ignore-not-found", "--wait=true")
        kubectl("-n", NAMESPACE, "apply", "-f", "-", stdin=json.dumps(account))
        applied = time.monotonic()
        kubectl("-n", NAMESPACE, "apply", "-f", "-", stdin=json.dumps(bot))
        follow(name, bot["spec"]["meeting"]["number"], admin, applied)
        show_artifacts(name)
        show_logs(name)
        print()
        kubectl_path = cluster.Binaries.in_cache().kubectl
        say(f"kubeconfig: {cluster.kubeconfig_path()}")
        print(f"  export KUBECONFIG={cluster.kubeconfig_path()}")
        print(f"  {kubectl_path} -n {NAMESPACE} get mb,pods,secrets")
        print(f"  {kubectl_path} -n {NAMESPACE} describe mb {name}")
        print(f"  {kubectl_path} -n {SYSTEM} logs -l app.kubernetes.io/name={RELEASE} --prefix")
        print("  make cluster-down   # when you are done")
    return 0


def show_artifacts(name: str) -> None:
    """What the bot delivered: its status.artifacts and the manifest, read from the bucket."""
    # The bot delivers its last files as it leaves: wait for them (or for what was lost).
    deadline = time.monotonic() + 60
    while True:
        body = json.loads(kubectl("-n", NAMESPACE, "get", "mb", name, "-o", "json"))
        status = body.get("status") or {}
        delivered = status.get("artifacts") or {}
        done = any(
            c["type"] == "ArtifactsDelivered" and c["status"] == "True"
            for c in status.get("conditions") or []
        )
        if done or delivered.get("lost") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    print(f"\n$ kubectl -n {NAMESPACE} get mb {name} -o jsonpath='{{.status.artifacts}}'")
    print(f"  {json.dumps(delivered, sort_keys=True)}")
    for condition in status.get("conditions") or []:
        if condition["type"] in ("Recording", "Captions", "ArtifactsDelivered"):
            print(f"  condition {condition['type']}={condition['status']} ({condition['reason']})")
    key = delivered.get("manifestKey")
    if not key:
        raise SystemExit("the demo bot delivered nothing")
    spec = body["spec"]["artifacts"]
    local = cluster.object_store()
    bucket = Bucket(
        local.endpoint,
        spec["bucket"],
        local.region,
        SecretStr(local.access_key),
        SecretStr(local.secret_key),
    )
    manifest = asyncio.run(_read_manifest(bucket, key))
    print(f"\nthe manifest, s3://{spec['bucket']}/{key} ({len(manifest.entries)} objects):")
    start = min(e.start_ms for e in manifest.entries)
    for entry in manifest.entries:
        print(
            f"  {entry.key:<58} {entry.size:>7} B  "
            f"{(entry.start_ms - start) / 1000:6.1f}-{(entry.end_ms - start) / 1000:5.1f} s  "
            f"sha256 {entry.sha256[:12]}"
        )
    print(f"  gaps: {manifest.gaps or 'none'}")


async def _read_manifest(bucket: Bucket, key: str) -> Manifest:
    store = ObjectStore(bucket)
    try:
        body = await store.get(key)
    finally:
        await store.close()
    if body is None:
        raise SystemExit(f"the manifest {key} is not in the bucket")
    return Manifest.model_validate_json(body)


def show_logs(name: str) -> None:
    """`kubectl logs` of the bot's pod and of the operator's, served by the real kubelet."""
    for title, args in (
        (f"kubectl -n {NAMESPACE} logs {name}-1", ["-n", NAMESPACE, "logs", f"{name}-1"]),
        # Both replicas, each line prefixed with its pod: the leader acted, the standby waited.
        (
            f"kubectl -n {SYSTEM} logs -l app.kubernetes.io/name={RELEASE} --prefix",
            ["-n", SYSTEM, "logs", "-l", f"app.kubernetes.io/name={RELEASE}", "--prefix"],
        ),
    ):
        lines = kubectl(*args, "--tail", "5").splitlines()
        print(f"\n$ {title} --tail 5   (JSON lines, shown here as text)")
        unexplained = 0
        for line in lines:
            text, level, explanation = readable(line)
            print(f"  {text}")
            if explanation:
                print(f"      ^ {explanation}")
            elif level in ("ERROR", "CRITICAL"):
                unexplained += 1
        if unexplained:
            print(f"  {unexplained} ERROR line(s) above: read the whole log (the command below).")


# kopf's own lines a newcomer may see, and what they mean. Its watches are long requests that
# the API server ends (every 30 s here, or when it restarts): kopf resumes each from the last
# version it saw, so nothing is missed.
KOPF_EXPLAINED = {
    "kopf._cogs.clients.watching": "kopf's watch request was cut off (the API server closed "
    "it, or was not ready yet) and is retried; it resumes from the last version it saw, so "
    "nothing is missed",
}


def readable(line: str) -> tuple[str, str, str]:
    """One log line as text (time, level, logger, message, its bot or reason), its level and,
    for kopf's known noise, what it means. A line that is not JSON is shown as it is."""
    prefix, _, rest = line.partition(" ") if line.startswith("[pod/") else ("", "", line)
    try:
        record = json.loads(rest)
    except ValueError:
        return line[:200], "", ""
    level, name = str(record.get("levelname", "")), str(record.get("name", ""))
    clock = str(record.get("asctime", ""))[11:19]
    extras = ", ".join(f"{k}={record[k]}" for k in ("bot", "reason", "state") if record.get(k))
    text = f"{clock} {level:<7} {name.rsplit('.', 1)[-1]}: {record.get('message', '')}"
    text = f"{prefix.split('/')[1] + ' ' if prefix else ''}{text}{f' ({extras})' if extras else ''}"
    explanation = KOPF_EXPLAINED.get(name, "") if level in ("WARNING", "ERROR") else ""
    return text[:200], level, explanation


# The demo meeting's people (the first hosts) and what they say (seconds from the start):
# each is heard as a tone of their own (the simulator's media), with captions and a chat line.
PEOPLE = ("Dana (host)", "Ravi", "Mei")
SCRIPT = (
    (PEOPLE[0], 0.0, 4.0, "welcome everyone let us start"),
    (PEOPLE[1], 4.5, 9.0, "the release is on track"),
    (PEOPLE[2], 9.5, 13.0, "docs are ready"),
    (PEOPLE[0], 13.5, 16.0, "thanks all"),
)
TALK = 16.0


def _recording(status: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Recording" and c["status"] == "True" for c in status.get("conditions") or []
    )


def follow(name: str, number: str, sim: SimAdmin, applied: float) -> None:
    """Print each phase as it changes (like `kubectl get mb -w`); end the meeting once the bot
    is in it; return when the bot has finished."""
    print(f"\n{'ELAPSED':>8}  {'PHASE':<12} {'REASON':<14} MESSAGE")
    last: tuple[Any, ...] = ()
    ended = False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        body: dict[str, Any] = json.loads(kubectl("-n", NAMESPACE, "get", "mb", name, "-o", "json"))
        status = body.get("status") or {}
        row = (status.get("phase"), status.get("reason"))
        if row != last and row[0]:
            print(
                f"{time.monotonic() - applied:7.1f}s  {row[0]:<12} {row[1] or '':<14} "
                f"{status.get('message') or ''}",
                flush=True,
            )
            last = row
        if row[0] == "InMeeting" and not ended and _recording(status):
            people = sim.participants(number, "in_meeting")
            print(
                f"{'':9} the meeting's participants: {', '.join(p['displayName'] for p in people)}"
            )
            print(f"{'':9} the host allowed recording; the scripted speakers talk for {TALK:.0f} s")
            speakers = {p["displayName"]: p for p in people if p["displayName"] in PEOPLE}
            sim.script_media(
                number,
                start_in_seconds=0.5,
                speech=[
                    {"participant": speakers[who]["userId"], "from": a, "to": b, "text": text}
                    for who, a, b, text in SCRIPT
                ],
                chat=[
                    {
                        "participant": speakers[PEOPLE[1]]["userId"],
                        "at": 4,
                        "message": "notes please",
                    }
                ],
            )
            time.sleep(TALK + 1)
            print(f"{'':9} the host ends the meeting")
            sim.end_meeting(number)
            ended = True
        if row[0] in ("Succeeded", "Failed"):
            print(
                f"{'':9} attempts: {status.get('attempts')}, Zoom user: "
                f"{status.get('zoomUser')}, its ZAK expires {status.get('zakExpiresAt')}"
            )
            if row[0] == "Failed":
                raise SystemExit(
                    f"the demo bot failed: {status.get('reason')}: {status.get('message')}"
                )
            return
        time.sleep(0.3)
    raise SystemExit("the demo bot did not finish within 5 minutes")


if __name__ == "__main__":
    raise SystemExit(main())
