"""`make demo`: the whole chain on this machine, with Zoom simulated.

Sets up what it needs (with progress), starts the local control plane, the Zoom simulator,
the operator and the bot node (podman), applies examples/zoomaccount.yaml and
examples/meetingbot.yaml, shows the phases as they change, ends the simulated meeting, and
prints where the kubeconfig is. DEMO_KEEP=1 keeps everything running until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from devenv.cluster import cluster
from devenv.cluster.node_agent import BOT_NODE, fake_sdk_url, pod_template_for
from devenv.operator_process import OperatorProcess, install_crds
from devenv.zoomsim import SimAdmin, ZoomSim

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "demo"
IMAGE = os.environ.get("IMAGE", "localhost/meetingbot-bot:dev")
WORK = cluster.cache_dir() / "demo"


def say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def kubectl(*args: str, stdin: str | None = None) -> str:
    binaries = cluster.Binaries.in_cache()
    result = subprocess.run(
        [str(binaries.kubectl), "--kubeconfig", str(cluster.kubeconfig_path()), *args],
        input=stdin,
        text=True,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def example(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "examples" / name).read_text()))


def setup() -> None:
    started = time.monotonic()
    say("1/6 local control plane binaries (built once, ~11 min on 2 cores the first time)")
    cluster.build()
    say("2/6 the bot image (podman; a Debian base is bootstrapped the first time)")
    subprocess.run(
        ["bash", str(ROOT / "bot-image" / "build.sh")], check=True, stdout=subprocess.DEVNULL
    )
    say("3/6 starting the control plane")
    cluster.up()
    install_crds()
    say(f"    set up in {time.monotonic() - started:.0f}s")


def start_services(sim: ZoomSim) -> tuple[subprocess.Popen[bytes], OperatorProcess]:
    WORK.mkdir(parents=True, exist_ok=True)
    say("4/6 starting the Zoom simulator, the bot node (podman) and the operator")
    agent_log = WORK / "node-agent.log"
    agent = subprocess.Popen(
        [sys.executable, "-m", "devenv.cluster.node_agent", "--node", BOT_NODE],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path())},
        stdout=agent_log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while "ready" not in agent_log.read_text():
        if agent.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the node agent did not start: see {agent_log}")
        time.sleep(0.2)
    (WORK / "operator.log").unlink(missing_ok=True)
    operator = OperatorProcess(
        cluster.kubeconfig_path(),
        WORK / "operator.log",
        namespaces=NAMESPACE,
        log_level="INFO",
        allowed_endpoints=sim.url,
        bot_sdk_url=fake_sdk_url(sim.url),
    )
    operator.start()
    say(f"    simulator {sim.url}, operator log {operator.log_path}, node agent log {agent_log}")
    return agent, operator


def zoom_setup(sim: ZoomSim, bot: dict[str, Any], account: dict[str, Any]) -> dict[str, Any]:
    say("5/6 a simulated Zoom account, its service user and a meeting, as in the examples")
    admin = SimAdmin(sim.url)
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
    admin.add_participant(meeting["number"], "Dana (host)", is_host=True)
    subprocess.run(
        [
            str(cluster.Binaries.in_cache().kubectl),
            "--kubeconfig",
            str(cluster.kubeconfig_path()),
            "create",
            "namespace",
            NAMESPACE,
        ],
        capture_output=True,
        check=False,
    )
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
            # The opt-in label: without it the operator will not use the Secret (README).
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "labels": {"meetingbot.dev/secret-for": "zoom-credentials"},
            },
            "stringData": data,
        }
        kubectl("apply", "-f", "-", stdin=json.dumps(secret))
    return zoom


def main() -> int:
    setup()
    account, bot = example("zoomaccount.yaml"), example("meetingbot.yaml")
    with ZoomSim() as sim:
        agent, operator = start_services(sim)
        try:
            zoom_setup(sim, bot, account)
            # Demo-only additions, printed so nothing is hidden: Zoom is the simulator, and bot
            # pods go to the podman node (the operator gives them the simulator's fake SDK).
            account["spec"]["endpoints"] = {
                "oauthUrl": f"{sim.url}/oauth/token",
                "apiUrl": f"{sim.url}/v2",
            }
            account["spec"]["botImages"] = [IMAGE]
            bot["spec"]["podTemplate"] = pod_template_for(IMAGE)
            say("6/6 applying examples/zoomaccount.yaml and examples/meetingbot.yaml, with:")
            print(
                yaml.safe_dump(
                    {
                        "ZoomAccount.spec.endpoints": account["spec"]["endpoints"],
                        "ZoomAccount.spec.botImages": account["spec"]["botImages"],
                        "MeetingBot.spec.podTemplate": bot["spec"]["podTemplate"],
                    },
                    sort_keys=False,
                )
            )
            kubectl(
                "-n",
                NAMESPACE,
                "delete",
                "mb",
                bot["metadata"]["name"],
                "--ignore-not-found",
                "--wait=true",
            )
            kubectl("-n", NAMESPACE, "apply", "-f", "-", stdin=json.dumps(account))
            applied = time.monotonic()
            kubectl("-n", NAMESPACE, "apply", "-f", "-", stdin=json.dumps(bot))
            follow(
                bot["metadata"]["name"],
                bot["spec"]["meeting"]["number"],
                SimAdmin(sim.url),
                applied,
            )
            print()
            say(f"kubeconfig: {cluster.kubeconfig_path()}")
            print(f"  export KUBECONFIG={cluster.kubeconfig_path()}")
            print(f"  {cluster.Binaries.in_cache().kubectl} -n {NAMESPACE} get mb,pods,secrets")
            kubectl_path = cluster.Binaries.in_cache().kubectl
            print(f"  {kubectl_path} -n {NAMESPACE} describe mb {bot['metadata']['name']}")
            print("  make cluster-down   # when you are done")
            if os.environ.get("DEMO_KEEP") == "1":
                say(
                    "DEMO_KEEP=1: the simulator, operator and bot node keep running; Ctrl-C to stop"
                )
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            operator.stop()
            agent.terminate()
            agent.wait(10)
    return 0


def follow(name: str, number: str, sim: SimAdmin, applied: float) -> None:
    """Print each phase as it changes (like `kubectl get mb -w`); end the meeting once the bot
    is in it; return when the bot has finished."""
    config.load_kube_config(config_file=str(cluster.kubeconfig_path()))  # type: ignore[no-untyped-call]
    custom = client.CustomObjectsApi()
    print(f"\n{'ELAPSED':>8}  {'PHASE':<12} {'REASON':<14} MESSAGE")
    last: tuple[Any, ...] = ()
    ended = False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        body: dict[str, Any] = custom.get_namespaced_custom_object(  # type: ignore[assignment]
            "meetingbot.dev", "v1alpha1", NAMESPACE, "meetingbots", name
        )
        status = body.get("status") or {}
        row = (status.get("phase"), status.get("reason"))
        if row != last and row[0]:
            print(
                f"{time.monotonic() - applied:7.1f}s  {row[0]:<12} {row[1] or '':<14} "
                f"{status.get('message') or ''}",
                flush=True,
            )
            last = row
        if row[0] == "InMeeting" and not ended:
            people = [p["displayName"] for p in sim.participants(number, "in_meeting")]
            print(f"{'':9} the meeting's participants: {', '.join(people)}")
            time.sleep(3)
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
        time.sleep(0.2)
    raise SystemExit("the demo bot did not finish within 5 minutes")


if __name__ == "__main__":
    raise SystemExit(main())
