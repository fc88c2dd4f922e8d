"""The local cluster: a kwokctl control plane on binaries we built ourselves, one real node,
and kwok's fake nodes.

kube-apiserver, etcd, kube-controller-manager and kube-scheduler run as local processes
(`kwokctl --runtime binary`), with RBAC on. One real node (node.py: containerd, the kubelet,
kube-proxy, CoreDNS) runs pods for real; kwok's fake nodes, tainted
`kwok.x-k8s.io/node=fake:NoSchedule` as kwok's docs suggest, take only pods that tolerate them
(the scale benchmarks and the tests whose bots are scripted). Everything lives under
~/.cache/meetingbot-operator so a second start reuses the binaries and nothing is downloaded:
every binary kwokctl could fetch is passed to it explicitly.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devenv.cluster import node, objectstore, policy

HERE = Path(__file__).resolve().parent
CLUSTER_NAME = "meetingbot"
DEFAULT_NODES = 3


def cache_dir() -> Path:
    explicit = os.environ.get("MEETINGBOT_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "meetingbot-operator"


def versions() -> dict[str, str]:
    """The pinned versions, read from versions.env (the one place they are written)."""
    pinned: dict[str, str] = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pinned[key] = value
    return pinned


def log(message: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    etcd: Path
    kwok: Path
    kwokctl: Path
    helm: Path
    kubelet: Path
    kube_proxy: Path
    coredns: Path
    kubeconform: Path
    kube_score: Path
    promtool: Path
    kstatus: Path
    versitygw: Path
    kube_router: Path
    registry: Path
    cosign: Path
    syft: Path

    @classmethod
    def in_cache(cls) -> Binaries:
        v = versions()
        bin_dir = cache_dir() / "bin"
        kube = v["KUBE_VERSION"]
        return cls(
            kube_apiserver=bin_dir / f"kube-apiserver-{kube}",
            kube_controller_manager=bin_dir / f"kube-controller-manager-{kube}",
            kube_scheduler=bin_dir / f"kube-scheduler-{kube}",
            kubectl=bin_dir / f"kubectl-{kube}",
            etcd=bin_dir / f"etcd-{v['ETCD_VERSION']}",
            kwok=bin_dir / f"kwok-{v['KWOK_VERSION']}",
            kwokctl=bin_dir / f"kwokctl-{v['KWOK_VERSION']}",
            helm=bin_dir / f"helm-{v['HELM_VERSION']}",
            kubelet=bin_dir / f"kubelet-{kube}",
            kube_proxy=bin_dir / f"kube-proxy-{kube}",
            coredns=bin_dir / f"coredns-{v['COREDNS_VERSION']}",
            kubeconform=bin_dir / f"kubeconform-{v['KUBECONFORM_VERSION']}",
            kube_score=bin_dir / f"kube-score-{v['KUBE_SCORE_VERSION']}",
            promtool=bin_dir / f"promtool-{v['PROMTOOL_VERSION']}",
            kstatus=bin_dir / f"kstatus-check-{v['KSTATUS_VERSION']}",
            versitygw=bin_dir / f"versitygw-{v['VERSITYGW_VERSION']}",
            kube_router=bin_dir / f"kube-router-{v['KUBE_ROUTER_VERSION']}",
            registry=bin_dir / f"registry-{v['REGISTRY_VERSION']}",
            cosign=bin_dir / f"cosign-{v['COSIGN_VERSION']}",
            syft=bin_dir / f"syft-{v['SYFT_VERSION']}",
        )

    # Built only by `build(extras=True)` (`make test`, `make release`), not for `make demo`.
    EXTRAS = ("kube_router", "registry", "cosign", "syft")

    def all_present(self, extras: bool = False) -> bool:
        wanted = [p for name, p in vars(self).items() if extras or name not in self.EXTRAS]
        return all(os.access(p, os.X_OK) for p in wanted)


# NodePorts (kube-apiserver and the policy agent agree on it): below kwokctl's control-plane ports.
NODE_PORT_RANGE = "30000-32699"


def build(extras: bool = False) -> Binaries:
    """Build whatever is missing (build.sh prints its own progress); a no-op when cached. With
    `extras`, the tools of the policy, release and registry tests too (Binaries.EXTRAS)."""
    binaries = Binaries.in_cache()
    if not binaries.all_present():
        subprocess.run(["bash", str(HERE / "build.sh")], check=True, stdout=subprocess.DEVNULL)
    if extras and not binaries.all_present(extras=True):
        subprocess.run(
            ["bash", str(HERE / "build.sh"), "extras"], check=True, stdout=subprocess.DEVNULL
        )
    if not binaries.all_present(extras):
        raise RuntimeError(f"build.sh finished but binaries are missing under {cache_dir()}")
    return binaries


def kwok_workdir() -> Path:
    return cache_dir() / "kwok"


def kubeconfig_path() -> Path:
    """Our own kubeconfig file: the user's ~/.kube/config is never touched."""
    return cache_dir() / "kubeconfig.yaml"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["KWOK_WORKDIR"] = str(kwok_workdir())
    # Tell kwokctl which Kubernetes it drives, so it passes flags that version understands.
    env["KWOK_KUBE_VERSION"] = versions()["KUBE_VERSION"]
    return env


def _kwokctl(
    binaries: Binaries, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binaries.kwokctl), "--name", CLUSTER_NAME, *args],
        env=_env(),
        check=check,
        text=True,
        capture_output=True,
    )


def kubectl(
    *args: str, check: bool = True, timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    binaries = Binaries.in_cache()
    return subprocess.run(
        [str(binaries.kubectl), "--kubeconfig", str(kubeconfig_path()), *args],
        check=check,
        text=True,
        capture_output=True,
        timeout=timeout,
        input=stdin,
    )


def is_running() -> bool:
    if not kubeconfig_path().exists() or not Binaries.in_cache().kubectl.exists():
        return False
    try:
        return kubectl("get", "--raw", "/readyz", check=False, timeout=5).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def problem() -> str | None:
    """What is wrong with the running cluster, in words (None when the API server is ready and
    the real node is Ready, and no control-plane process has exited): what a bench that broke
    it says before repairing it."""
    if not is_running():
        return "the API server does not answer /readyz"
    exited = exited_components()
    if exited:
        return f"the control plane's processes exited: {', '.join(exited)}"
    if not node.running():
        down = [n for n in node.PROCESSES if not node.process_alive(n)]
        return f"the real node's processes exited: {', '.join(down)}"
    ready = kubectl(
        "get", "node", node.NODE_NAME,
        "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        check=False, timeout=10,
    )  # fmt: skip
    if ready.stdout.strip() != "True":
        return f"the real node is not Ready ({ready.stdout.strip() or ready.stderr.strip()})"
    if not node.has_sandbox_image():
        # Seen after the 1000-bot shard bench on a disk 91 % full: every pod after it stayed
        # ContainerCreating ("failed to pull localhost/meetingbot-pause").
        return "the real node's sandbox image is gone (the kubelet deleted it for disk space)"
    return None


def repair() -> None:
    """Stop whatever is left and start the cluster again (a fresh control plane: the objects
    of the broken one are gone, the cached binaries and images stay)."""
    down()
    up()


KWOK_TAINT = "kwok.x-k8s.io/node=fake:NoSchedule"


def up(nodes: int = DEFAULT_NODES) -> Path:
    """Start the cluster unless one is already serving; return its kubeconfig path."""
    if is_running():
        exited = exited_components()
        if exited:
            log(f"{', '.join(exited)} had exited: starting it again")
            _start_again(build(), exited)
        if not real_node_ready():
            log("the control plane runs but the real node does not: starting it")
            start_node(build())
        elif real_node().ensure_sandbox_image():
            log("the node's sandbox image was gone (deleted under disk pressure): imported again")
        start_object_store(build())
        log(f"already running; kubeconfig: {kubeconfig_path()}")
        return kubeconfig_path()
    binaries = build()
    policy.stop()  # whatever an interrupted run left
    node.stop(node_root(), binaries.kube_proxy)
    started = time.monotonic()
    if (kwok_workdir() / "clusters" / CLUSTER_NAME).exists():
        log("removing a stopped cluster left from an earlier run")
        _kwokctl(binaries, "delete", "cluster", check=False)
    log("starting kube-apiserver, etcd, controller-manager, scheduler and kwok")
    result = _kwokctl(
        binaries,
        "create",
        "cluster",
        "--runtime",
        "binary",
        "--kube-authorization",
        "--kube-apiserver-binary",
        str(binaries.kube_apiserver),
        "--kube-controller-manager-binary",
        str(binaries.kube_controller_manager),
        "--kube-scheduler-binary",
        str(binaries.kube_scheduler),
        "--kwok-controller-binary",
        str(binaries.kwok),
        "--etcd-binary",
        str(binaries.etcd),
        "--kubeconfig",
        str(kubeconfig_path()),
        "--disable-qps-limits",
        # Setting blockOwnerDeletion then needs RBAC on the owner's finalizers, as on
        # clusters that enable this plugin: the chart's RBAC is tested against it.
        "--extra-args",
        "kube-apiserver=enable-admission-plugins=OwnerReferencesPermissionEnforcement",
        # kwok fakes only its own nodes: the podman node agent's node runs pods for real.
        "--extra-args",
        "kwok-controller=manage-all-nodes=false",
        "--extra-args",
        "kwok-controller=manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        # The API server reaches the real kubelet (logs, exec) by its InternalIP, with a client
        # certificate the kubelet trusts. These come after the kwok-controller ones: kwokctl
        # v0.8.0 panics otherwise (docs/local-node.md, blocker 3).
        "--extra-args",
        "kube-apiserver=kubelet-preferred-address-types=InternalIP,Hostname",
        "--extra-args",
        f"kube-apiserver=kubelet-client-certificate={pki_dir() / 'admin.crt'}",
        "--extra-args",
        f"kube-apiserver=kubelet-client-key={pki_dir() / 'admin.key'}",
        # kwokctl gives the control plane ports counting down from 32767, inside the default
        # NodePort range; NodePorts stop below them, so a policy agent that lets NodePort
        # traffic reach the host unjudged (policy.py) still judges the API server's port.
        "--extra-args",
        f"kube-apiserver=service-node-port-range={NODE_PORT_RANGE}",
        # Requests of the chart's service account are audited: the RBAC minimality test.
        "--kube-audit-policy",
        str(_audit_policy()),
        "--config",
        str(_kwokctl_config()),
        "--wait",
        "2m",
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kwokctl create cluster failed:\n{result.stdout}\n{result.stderr}")
    start_node(binaries)
    start_object_store(binaries)
    log(f"scaling to {nodes} fake nodes")
    scale(nodes)
    log(f"ready in {time.monotonic() - started:.1f}s; kubeconfig: {kubeconfig_path()}")
    return kubeconfig_path()


def pki_dir() -> Path:
    return kwok_workdir() / "clusters" / CLUSTER_NAME / "pki"


def node_root() -> Path:
    return cache_dir() / "node"


def _server() -> str:
    for line in kubeconfig_path().read_text().splitlines():
        if line.strip().startswith("server:"):
            return line.split("server:", 1)[1].strip()
    raise RuntimeError(f"no server in {kubeconfig_path()}")


def real_node() -> node.RealNode:
    binaries = Binaries.in_cache()
    return node.RealNode(
        node_root(),
        pki_dir(),
        _server(),
        kubelet=binaries.kubelet,
        kube_proxy=binaries.kube_proxy,
        coredns=binaries.coredns,
    )


def start_node(binaries: Binaries) -> None:
    started = time.monotonic()
    log(f"starting the real node {node.NODE_NAME} (containerd, kubelet, kube-proxy, CoreDNS)")
    real_node().start(kubectl)
    log(f"    node Ready in {time.monotonic() - started:.1f}s")


def start_object_store(binaries: Binaries) -> objectstore.ObjectStore:
    store = objectstore.start(binaries.versitygw, cache_dir())
    log(f"object store (versitygw) at {store.endpoint}")
    return store


def object_store() -> objectstore.ObjectStore:
    """The running object store (started by `up`)."""
    return objectstore.describe(cache_dir())


# How often a restart that does not come up is stopped and started again.
RESTART_ATTEMPTS = 4


def restart_control_plane() -> float:
    """Stop and start kube-apiserver, etcd, the controller-manager, the scheduler and kwok
    with kwokctl (the chaos run's API server and etcd restart); seconds until /readyz."""
    binaries = Binaries.in_cache()
    started = time.monotonic()
    for attempt in range(1, RESTART_ATTEMPTS + 1):
        _stop_and_wait(binaries, started)
        _kwokctl(binaries, "start", "cluster")
        exited: list[str] = []
        while kubectl("get", "--raw", "/readyz", check=False, timeout=10).returncode != 0:
            if time.monotonic() - started > 120 * attempt:
                raise TimeoutError("the API server is not ready 120 s after a restart")
            exited = [name for name, pid in control_plane_pids().items() if not _alive(pid)]
            if not exited and "already in use" in _last_log_line("kube-apiserver"):
                # Measured in a CI rehearsal: the API server exited on "address already in
                # use" and its pid was not seen gone for two minutes.
                exited = ["kube-apiserver"]
            if exited:
                break  # a component exited as it started: stop the rest and start again
            time.sleep(0.2)
        else:
            ready = time.monotonic() - started
            _start_exited(binaries)
            return ready
        # Measured after a 10 000-bot burst: the new API server could not bind its port
        # ("address already in use") although the old process had exited.
        log(f"the control plane did not come up (attempt {attempt}), exited: {_why(exited)}")
        time.sleep(2 * attempt)
    raise RuntimeError(f"the control plane did not come up in {RESTART_ATTEMPTS} attempts")


# The controller-manager gives the API server 10 s to answer /healthz, then exits, and kwokctl
# does not start it again. Measured after the 10 000-bot relist bench: the API server ready
# 14.0 s after its restart, the controller-manager gone 13 s after its start, and the bench's
# namespace never finished terminating (its Events were never deleted). So for this long after
# the API server is ready, a component that exits is started again (`_start_again`), at most
# SETTLE_STARTS times.
SETTLE_SECONDS = 15.0
SETTLE_STARTS = 3


def exited_components() -> list[str]:
    """The control plane's components whose process has exited."""
    return sorted(name for name, pid in control_plane_pids().items() if not _alive(pid))


def _start_exited(binaries: Binaries) -> None:
    starts = 0
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < SETTLE_SECONDS:
        exited = exited_components()
        if exited:
            if starts == SETTLE_STARTS:
                raise RuntimeError(f"{', '.join(exited)} keep exiting after a restart")
            starts += 1
            log(f"exited after the control plane's restart, started again: {_why(exited)}")
            _start_again(binaries, exited)
            quiet_since = time.monotonic()
        time.sleep(0.5)


def _start_again(binaries: Binaries, components: list[str]) -> None:
    """Start exited components again. kwokctl starts those whose pid file names no process; an
    exited one nobody has reaped yet (a zombie) still counts as one (measured: a pkilled
    controller-manager was not started again), so their pid files go first."""
    pids = kwok_workdir() / "clusters" / CLUSTER_NAME / "pids"
    for name in components:
        (pids / f"{name}.pid").unlink(missing_ok=True)
    _kwokctl(binaries, "start", "cluster")


def control_plane_pids() -> dict[str, int]:
    """The control plane's processes, by component, from kwokctl's pid files."""
    pids = kwok_workdir() / "clusters" / CLUSTER_NAME / "pids"
    found = {}
    for path in pids.glob("*.pid"):
        text = path.read_text().strip()
        if text.isdigit():
            found[path.stem] = int(text)
    return found


def _stop_and_wait(binaries: Binaries, started: float) -> None:
    old = list(control_plane_pids().values())
    _kwokctl(binaries, "stop", "cluster")
    # kwokctl returns once it has signalled them; a new API server cannot bind its port while
    # the old one is still closing its watches (measured: "address already in use").
    while any(_alive(pid) for pid in old) or not _port_free(_api_port()):
        if time.monotonic() - started > 60:
            raise TimeoutError(f"the control plane's processes {old} did not exit in 60 s")
        time.sleep(0.1)


def _api_port() -> int:
    """The API server's port, from the kubeconfig kwokctl wrote (https://127.0.0.1:<port>)."""
    text = (kwok_workdir() / "clusters" / CLUSTER_NAME / "kubeconfig.yaml").read_text()
    found = re.search(r"server: https?://[^:\s]+:(\d+)", text)
    return int(found.group(1)) if found else 0


def _port_free(port: int) -> bool:
    """Whether a listener could bind the port now (as the API server will, SO_REUSEADDR)."""
    if not port:
        return True
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))  # noqa: S104 - the API server listens on all
        except OSError:
            return False
    return True


FAILURE_WORDS = re.compile(r"fatal|panic|error|already in use", re.IGNORECASE)


def _why(components: list[str]) -> str:
    """Why each of `components` exited, as its log says."""
    return "; ".join(f"{name}: {_last_log_line(name)}" for name in components)


def _last_log_line(component: str) -> str:
    """Why a component exited: its log's last error line, else its last line."""
    log_file = kwok_workdir() / "clusters" / CLUSTER_NAME / "logs" / f"{component}.log"
    with contextlib.suppress(OSError):
        lines = log_file.read_text().strip().splitlines()
        errors = [line for line in lines if FAILURE_WORDS.search(line)]
        return (errors or lines or ["no log"])[-1][-300:]
    return "no log"


def _alive(pid: int) -> bool:
    """Running (a zombie nobody has reaped yet has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def real_node_ready() -> bool:
    result = kubectl(
        "get", "node", node.NODE_NAME,
        "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        check=False,
    )  # fmt: skip
    return result.returncode == 0 and result.stdout.strip() == "True" and node.running()


def load_image(image: str) -> None:
    """Make a podman-built image available on the real node (no registry)."""
    started = time.monotonic()
    if node.import_image(image, node_root() / "images"):
        log(f"imported {image} into the node's containerd in {time.monotonic() - started:.1f}s")


# The chart's service accounts: the demo's release (meetingbot-system) and the tests' own
# (meetingbot-test), which `make test` installs beside the demo's.
AUDITED_GROUPS = (
    "system:serviceaccounts:meetingbot-system",
    "system:serviceaccounts:meetingbot-test",
    # The shard tests' replicas, each its own service account (tests/support/shards.py).
    "system:serviceaccounts:meetingbot-shards",
)


def _audit_policy() -> Path:
    path = cache_dir() / "audit-policy.yaml"
    path.write_text(
        "apiVersion: audit.k8s.io/v1\n"
        "kind: Policy\n"
        "omitStages: [RequestReceived]\n"
        "rules:\n"
        # The shard tests read who held each shard's Lease from its writes' bodies.
        "  - level: Request\n"
        "    userGroups: ['system:serviceaccounts:meetingbot-shards']\n"
        "    resources: [{group: coordination.k8s.io, resources: [leases]}]\n"
        f"  - level: Metadata\n    userGroups: [{', '.join(map(repr, AUDITED_GROUPS))}]\n"
        "  - level: None\n"
    )
    return path


def _kwokctl_config() -> Path:
    """Options kwokctl has no flag for: the API server's certificate also names the
    `kubernetes` Service's ClusterIP, which pods (the operator's own) connect to. And no
    leader election for the one controller manager and scheduler: in a 10 000-bot burst the
    API server answered their Lease renewals too late, both exited ("leaderelection lost"),
    and kwokctl does not restart them; namespaces then never finished terminating. (Patched
    here rather than with more `--extra-args`: docs/local-node.md, blocker 3.)"""
    path = cache_dir() / "kwokctl.yaml"
    path.write_text(
        "apiVersion: config.kwok.x-k8s.io/v1alpha1\n"
        "kind: KwokctlConfiguration\n"
        "options:\n"
        f"  kubeApiserverCertSANs: [{node.KUBERNETES_SERVICE_IP!r}]\n"
        "componentsPatches:\n"
        + "".join(
            f"- name: {component}\n  extraArgs:\n  - key: leader-elect\n    value: 'false'\n"
            for component in ("kube-controller-manager", "kube-scheduler")
        )
    )
    return path


def audit_log() -> Path:
    return kwok_workdir() / "clusters" / CLUSTER_NAME / "logs" / "audit.log"


def audit_lines() -> Iterator[str]:
    """Every line of the audit log, oldest first, the rotated files included: the API server
    moves the log aside at 100 MB (audit-<time>.log), which a 1000-bot shard bench crossed
    half-way (its tenures then lacked the Lease writes before the rotation)."""
    current = audit_log()
    for path in [*sorted(current.parent.glob("audit-*.log")), current]:
        with path.open() as lines:
            yield from lines


# What kwokctl's fake nodes offer (its default node: `kubectl get node -o
# jsonpath={.status.allocatable}`): the scheduler fits a pod by both.
KWOK_NODE_CPU_MILLIS = 32_000
KWOK_NODE_PODS = 110


def nodes_for(pods: int, cpu_request: str, spare: int = 3) -> int:
    """Enough kwok nodes for `pods` pods each requesting `cpu_request` ("500m", "1"), and
    `spare` more. By pods alone a node takes 110, by CPU only 64 of the bot pods' default
    500m: sized by pods, 999 bots' pods on 12 nodes left 231 Pending (Insufficient cpu), and
    a retried attempt's pod never ran."""
    millis = int(cpu_request[:-1]) if cpu_request.endswith("m") else int(float(cpu_request) * 1000)
    per_node = min(KWOK_NODE_PODS, KWOK_NODE_CPU_MILLIS // max(1, millis))
    return -(-pods // per_node) + spare


def scale(nodes: int) -> None:
    """Set the number of fake kwok nodes (`nodes_for` says how many for a number of pods),
    tainted so that only pods which tolerate them land there."""
    _kwokctl(Binaries.in_cache(), "scale", "node", "--replicas", str(nodes))
    if nodes:
        kubectl("taint", "nodes", "-l", "type=kwok", KWOK_TAINT, "--overwrite")
    _wait_for_nodes(nodes + 1)


def _wait_for_nodes(count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = kubectl("get", "nodes", "--no-headers", check=False).stdout
        ready = [line for line in out.splitlines() if " Ready " in line]
        if len(ready) >= count:
            return
        time.sleep(0.5)
    raise TimeoutError(f"fewer than {count} nodes became Ready within {timeout}s")


def down() -> None:
    """Stop the cluster and its processes, leaving the cached binaries in place."""
    binaries = Binaries.in_cache()
    policy.stop()
    node.stop(node_root(), binaries.kube_proxy)
    if binaries.kwokctl.exists():
        _kwokctl(binaries, "delete", "cluster", check=False)
    leftovers = _our_processes()
    if leftovers:
        log(f"terminating {len(leftovers)} leftover processes")
        for pid in leftovers:
            _signal(pid, 15)
        time.sleep(2)
        for pid in _our_processes():
            _signal(pid, 9)
    log("stopped")


def _our_processes() -> list[int]:
    """Processes running one of our binaries (kwokctl runs copies under its workdir)."""
    bin_dir = str(cache_dir())
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.readlink(entry / "exe")
        except OSError:
            continue
        if exe.startswith(bin_dir):
            pids.append(int(entry.name))
    return pids


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def status() -> str:
    if not is_running():
        return "stopped"
    return kubectl("get", "nodes", "-o", "wide").stdout


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    if command == "build":
        build(extras="--extras" in argv)
    elif command == "up":
        print(up())
    elif command == "down":
        down()
    elif command == "status":
        print(status())
    elif command == "kubeconfig":
        print(kubeconfig_path())
    else:
        print(
            "usage: python -m devenv.cluster [build [--extras]|up|down|status|kubeconfig]",
            file=sys.stderr,
        )
        return 2
    return 0
