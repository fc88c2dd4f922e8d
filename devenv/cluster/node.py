"""The local cluster's real node: containerd, the kubelet, kube-proxy and CoreDNS on this host.

Measured recipe and its three blockers: docs/local-node.md. In short:
- containerd (Debian's 1.6) runs on its own socket under /run/meetingbot-node with
  `restrict_oom_score_adj` (the VM withholds CAP_SYS_RESOURCE, so runc cannot set the kubelet's
  negative OOM scores); its image store lives in the cache, so imported images survive a
  `cluster-down`;
- the kubelet joins with a client certificate for `system:node:<name>` signed by the cluster's
  CA; the API server reaches it by InternalIP with kwok's admin certificate (flags in
  cluster.py);
- pods get a bridge network (10.88.0.0/16) from Debian's CNI plugins;
- kube-proxy (iptables) routes ClusterIPs; CoreDNS runs on the host at the node's address and a
  selector-less `kube-dns` Service points at it, so pods resolve `<service>.<namespace>.svc`;
- the sandbox (pause) image is compiled from the Kubernetes release's own pause.c and imported.
No registry: images reach the node with `podman save` -> `ctr images import` (import_image).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

NODE_NAME = "meetingbot-node"
POD_CIDR = "10.88.0.0/16"
# kube-apiserver's default service range is 10.0.0.0/24: `kubernetes` gets the first address.
KUBERNETES_SERVICE_IP = "10.0.0.1"
DNS_SERVICE_IP = "10.0.0.10"
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "localhost/meetingbot-pause:3.10"
RUN_DIR = Path("/run/meetingbot-node")
KUBELET_DIR = Path("/var/lib/meetingbot-node/kubelet")
CNI_NETWORK = "meetingbot"
BRIDGE = "mbr0"
CNI_STATE = Path("/var/lib/cni/networks") / CNI_NETWORK
SOCKET = RUN_DIR / "containerd.sock"
# containerd reads a registry's hosts.toml from here at every pull (no restart): a test that
# runs a registry in the cluster says there how the node reaches it (tests/e2e/test_release.py).
REGISTRY_HOSTS = RUN_DIR / "registry-hosts"
PROCESSES = ("containerd", "kubelet", "kube-proxy", "coredns")


KubectlFn = Callable[..., subprocess.CompletedProcess[str]]


def log(message: str) -> None:
    print(f"[node {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def node_ip() -> str:
    """The host's primary address (the one its default route leaves by): the node's InternalIP,
    where pods reach services running on the host (a server bound to 127.0.0.1 they cannot)."""
    route = _run(["ip", "-4", "route", "get", "198.51.100.1"]).stdout.split()
    if "src" not in route:
        raise RuntimeError(f"no source address in the default route: {' '.join(route)}")
    return route[route.index("src") + 1]


@dataclass(frozen=True)
class NodePaths:
    """Where the node keeps its configuration (rewritten at each start) and its image store
    (kept across starts)."""

    root: Path

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def images(self) -> Path:
        return self.root / "images"


class RealNode:
    """Starts and stops the node's processes. `pki` is the cluster's (kwok's) pki directory;
    `kubeconfig_server` the API server's URL; `binaries` maps a name to its cached binary."""

    def __init__(
        self, root: Path, pki: Path, server: str, kubelet: Path, kube_proxy: Path, coredns: Path
    ) -> None:
        self.paths = NodePaths(root)
        self.pki = pki
        self.server = server
        self.kubelet = kubelet
        self.kube_proxy = kube_proxy
        self.coredns = coredns
        self.ip = node_ip()

    # --- start -----------------------------------------------------------------------------------

    def start(self, kubectl: KubectlFn) -> None:
        _check_root()
        for d in (
            self.paths.config,
            self.paths.logs,
            self.paths.images,
            RUN_DIR,
            REGISTRY_HOSTS,
            KUBELET_DIR,
        ):
            d.mkdir(parents=True, exist_ok=True)
        _sysctls()
        self._certificates()
        self._start_containerd()
        self._pause_image()
        self._start("kubelet", [str(self.kubelet), *self._kubelet_args()])
        self._dns_objects(kubectl)
        self._start("kube-proxy", [str(self.kube_proxy), "--config", str(self._proxy_config())])
        self._start("coredns", [str(self.coredns), "-conf", str(self._corefile())])
        _wait(lambda: _node_ready(kubectl), 60, "the node to become Ready")

    def _certificates(self) -> None:
        """Client certificates signed by the cluster's CA (new with every cluster)."""
        for name, subject in (
            ("kubelet", f"/O=system:nodes/CN=system:node:{NODE_NAME}"),
            ("kube-proxy", "/CN=system:kube-proxy"),
            ("coredns", "/CN=meetingbot:coredns"),
        ):
            key, crt = self.paths.config / f"{name}.key", self.paths.config / f"{name}.crt"
            csr = self.paths.config / f"{name}.csr"
            _run(["openssl", "genrsa", "-out", str(key), "2048"])
            _run(["openssl", "req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr)])
            _run(
                [
                    "openssl", "x509", "-req", "-in", str(csr), "-days", "30",
                    "-CA", str(self.pki / "ca.crt"), "-CAkey", str(self.pki / "ca.key"),
                    "-CAcreateserial", "-out", str(crt),
                ]
            )  # fmt: skip
            csr.unlink()
            self._kubeconfig(name, crt, key)

    def _kubeconfig(self, name: str, crt: Path, key: Path) -> Path:
        path = self.paths.config / f"{name}.kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {"name": name, "user": {"client-certificate": str(crt), "client-key": str(key)}}
            ],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": name}}],
            "current-context": "local",
        }
        path.write_text(json.dumps(config, indent=2))
        return path

    def _start_containerd(self) -> None:
        config = self.paths.config / "containerd.toml"
        cni = self.paths.config / "cni"
        cni.mkdir(exist_ok=True)
        (cni / "10-meetingbot.conflist").write_text(json.dumps(_cni_conflist(), indent=2))
        config.write_text(_containerd_toml(self.paths.containerd_root, cni))
        self._start("containerd", ["containerd", "--config", str(config)])
        _wait(lambda: _ctr_ok(), 30, "containerd to answer")
        _clear_old_pods()

    def ensure_sandbox_image(self) -> bool:
        """Import the sandbox image again if it is gone (a running node's kubelet deletes
        images to reclaim a full disk, whatever its image GC settings: measured after a
        1000-stream benchmark filled it, every new pod failed "failed to pull
        localhost/meetingbot-pause"). Returns whether it had to."""
        if _has_image(PAUSE_IMAGE):
            return False
        self._pause_image()
        return True

    def _pause_image(self) -> None:
        """The sandbox image, compiled from the release's own pause.c (no registry here)."""
        if _has_image(PAUSE_IMAGE):
            return
        source = _pause_source()
        with tempfile.TemporaryDirectory() as build:
            work = Path(build)
            _run(["gcc", "-Os", "-static", "-o", str(work / "pause"), str(source)])
            _run(["strip", str(work / "pause")])
            (work / "Containerfile").write_text(
                'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n'
            )
            _run(["podman", "build", "--isolation=chroot", "-q", "-t", PAUSE_IMAGE, str(work)])
        import_image(PAUSE_IMAGE, self.paths.images)

    def _kubelet_args(self) -> list[str]:
        config = self.paths.config / "kubelet.yaml"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    "authentication": {
                        "anonymous": {"enabled": False},
                        "webhook": {"enabled": True},
                        "x509": {"clientCAFile": str(self.pki / "ca.crt")},
                    },
                    "authorization": {"mode": "Webhook"},
                    # cgroup v1 on these VMs; no systemd as init.
                    "failCgroupV1": False,
                    "cgroupDriver": "cgroupfs",
                    "failSwapOn": False,
                    "containerRuntimeEndpoint": f"unix://{SOCKET}",
                    "readOnlyPort": 0,
                    "clusterDNS": [DNS_SERVICE_IP],
                    "clusterDomain": CLUSTER_DOMAIN,
                    "resolvConf": "/etc/resolv.conf",
                    # A small disk and memory headroom is fine on a dev machine.
                    "evictionHard": {
                        "memory.available": "100Mi",
                        "nodefs.available": "2%",
                        "imagefs.available": "2%",
                    },
                    # Images are imported, never pulled: keep them however full the disk gets.
                    "imageGCHighThresholdPercent": 100,
                    "imageGCLowThresholdPercent": 99,
                    "registerWithTaints": [],
                    "maxPods": 60,
                }
            )
        )
        return [
            "--config",
            str(config),
            "--kubeconfig",
            str(self.paths.config / "kubelet.kubeconfig"),
            "--hostname-override",
            NODE_NAME,
            "--node-ip",
            self.ip,
            "--root-dir",
            str(KUBELET_DIR),
            "--node-labels",
            "meetingbot.dev/real-node=true",
        ]

    def _proxy_config(self) -> Path:
        path = self.paths.config / "kube-proxy.yaml"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "clientConnection": {
                        "kubeconfig": str(self.paths.config / "kube-proxy.kubeconfig")
                    },
                    "hostnameOverride": NODE_NAME,
                    "mode": "iptables",
                    "clusterCIDR": POD_CIDR,
                    # The VM's conntrack sysctls are not ours to change: leave them as they are.
                    "conntrack": {"maxPerCore": 0},
                    "metricsBindAddress": "127.0.0.1:10249",
                    "healthzBindAddress": "127.0.0.1:10256",
                }
            )
        )
        return path

    def _corefile(self) -> Path:
        path = self.paths.config / "Corefile"
        kubeconfig = self.paths.config / "coredns.kubeconfig"
        path.write_text(
            f""".:53 {{
    bind {self.ip}
    errors
    health 127.0.0.1:18080
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    forward . /etc/resolv.conf
    cache 30
    loop
}}
"""
        )
        return path

    def _dns_objects(self, kubectl: KubectlFn) -> None:
        """CoreDNS's read access, and the kube-dns Service pods use (selector-less: its one
        endpoint is CoreDNS on this host)."""
        ports = [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        ]
        objects = [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "meetingbot:coredns"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["services", "pods", "namespaces"],
                        "verbs": ["list", "watch"],
                    },
                    {
                        "apiGroups": ["discovery.k8s.io"],
                        "resources": ["endpointslices"],
                        "verbs": ["list", "watch"],
                    },
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "meetingbot:coredns"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "meetingbot:coredns",
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "User",
                        "name": "meetingbot:coredns",
                    }
                ],
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kube-dns",
                    "namespace": "kube-system",
                    "labels": {"k8s-app": "kube-dns"},
                },
                "spec": {"clusterIP": DNS_SERVICE_IP, "ports": ports},
            },
            host_endpoints("kube-dns", "kube-system", self.ip, ports),
        ]
        kubectl(
            "apply",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
        )

    def _start(self, name: str, command: list[str]) -> None:
        log = (self.paths.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        (RUN_DIR / f"{name}.pid").write_text(str(process.pid))
        time.sleep(0.2)
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited at once; see {self.paths.logs / f'{name}.log'}")

    def restart(self, name: str) -> None:
        """Stop one of the node's processes and start it again with the same command (for the
        tests that restart the kubelet or containerd under running pods)."""
        pid = int((RUN_DIR / f"{name}.pid").read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        stop_pid(pid, grace=10)
        self._start(name, [part.decode() for part in command])
        if name == "containerd":
            _wait(lambda: _ctr_ok(), 30, "containerd to answer")


def host_endpoints(
    service: str, namespace: str, ip: str, ports: list[dict[str, object]]
) -> dict[str, object]:
    """The EndpointSlice of a selector-less Service whose backend runs on this host."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-host",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
        "ports": [
            {
                "name": p["name"],
                "port": p.get("targetPort", p["port"]),
                "protocol": p.get("protocol", "TCP"),
            }
            for p in ports
        ],
    }


# --- images ----------------------------------------------------------------------------------

IMPORT_ATTEMPTS = 3


def _import(archive: Path) -> None:
    """`ctr images import`, again when containerd loses a layer's snapshot under it: a
    fresh-clone CI run failed its first import with "parent snapshot ... does not exist: not
    found" (16 e2e errors), and the same import minutes later succeeded. The cause was not
    found (the collection that follows removing an earlier build, below, runs in the
    background and is the likeliest); importing again unpacks the missing layers."""
    for attempt in range(1, IMPORT_ATTEMPTS + 1):
        try:
            _run([*_ctr(), "images", "import", str(archive)])
            return
        except RuntimeError as error:
            if "does not exist" not in str(error) or attempt == IMPORT_ATTEMPTS:
                raise
            log(f"image import lost a snapshot to containerd's collector; again ({error})")
            time.sleep(2.0 * attempt)


def import_image(image: str, stamps: Path) -> bool:
    """Make a podman-built image available to the node's containerd (no registry): `podman
    save` -> `ctr images import`, skipped when the same image ID was imported before and is
    still there. Returns whether it imported."""
    image_id = _run(["podman", "image", "inspect", "--format", "{{.Id}}", image]).stdout.strip()
    stamp = stamps / (image.replace("/", "_").replace(":", "_") + ".id")
    if stamp.exists() and stamp.read_text() == image_id and _has_image(image):
        return False
    with tempfile.TemporaryDirectory(dir=stamps) as work:
        archive = Path(work) / "image.tar"
        # The archive's index names the image (org.opencontainers.image.ref.name).
        _run(["podman", "save", "--format", "oci-archive", "-o", str(archive), image])
        _import(archive)
    if stamp.exists() and stamp.read_text() != image_id:
        # The CRI's alias of the build this one replaces: without it containerd can collect the
        # old layers (running containers keep their snapshots).
        old = "sha256:" + stamp.read_text().removeprefix("sha256:")
        _run([*_ctr(), "images", "rm", old], check=False)
    stamp.write_text(image_id)
    return True


def _has_image(image: str) -> bool:
    listed = subprocess.run(
        [*_ctr(), "images", "ls", "-q", f"name=={image}"], capture_output=True, text=True
    )
    return listed.returncode == 0 and image in listed.stdout.split()


def has_sandbox_image() -> bool:
    """Whether the node's containerd still holds the sandbox image (see ensure_sandbox_image)."""
    return _has_image(PAUSE_IMAGE)


def running() -> bool:
    """Whether every process of the node is alive."""
    return all(process_alive(name) for name in PROCESSES)


def process_alive(name: str) -> bool:
    """Whether the node's process `name` runs: a killed one nobody reaped yet (a zombie, as
    here where the process that started it has exited) does not."""
    try:
        pid = int((RUN_DIR / f"{name}.pid").read_text())
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def kill_container(container_id: str, signal_name: str = "SIGKILL") -> None:
    """Send a signal to a pod's container, as the kernel's OOM killer or a crash would end it.
    `container_id` is the pod status's `containerd://<id>`."""
    _run([*_ctr(), "tasks", "kill", "-s", signal_name, container_id.removeprefix("containerd://")])


# --- stop ------------------------------------------------------------------------------------


def stop(root: Path, kube_proxy: Path | None = None) -> None:
    """Stop every process of the node, its pods' containers and shims, and undo what it set on
    the host (mounts, CNI leases, kube-proxy's rules). Safe to call when nothing runs."""
    for name in ("coredns", "kube-proxy", "kubelet"):
        _stop_named(name)
    if _ctr_ok():
        _clear_old_pods()
    _stop_named("containerd")
    for pid in pids_of("containerd-shim-runc-v2"):
        stop_pid(pid, grace=5)
    if kube_proxy is not None and kube_proxy.exists():
        subprocess.run([str(kube_proxy), "--cleanup"], capture_output=True, check=False)
    _undo_pod_network()
    _unmount_below(KUBELET_DIR)
    subprocess.run(["umount", "-l", str(KUBELET_DIR)], capture_output=True, check=False)
    _unmount_below(RUN_DIR)
    shutil.rmtree(KUBELET_DIR, ignore_errors=True)
    with contextlib.suppress(OSError):
        shutil.rmtree(RUN_DIR)
    _unmount_below(root / "containerd")


def _undo_pod_network() -> None:
    """What the bridge CNI plugin would undo for each pod had the pods been stopped through
    the kubelet: masquerade rules and their chains, network namespaces, IP leases, the bridge."""
    rules = _run(["iptables", "-t", "nat", "-S", "POSTROUTING"], check=False).stdout
    chains = set()
    for rule in rules.splitlines():
        if rule.startswith("-A ") and f'name: \\"{CNI_NETWORK}\\"' in rule:
            args = shlex.split(rule)
            _run(["iptables", "-t", "nat", "-D", *args[1:]], check=False)
            if "-j" in args and args[args.index("-j") + 1].startswith("CNI-"):
                chains.add(args[args.index("-j") + 1])
    for chain in chains:
        _run(["iptables", "-t", "nat", "-F", chain], check=False)
        _run(["iptables", "-t", "nat", "-X", chain], check=False)
    for netns in Path("/run/netns").glob("cni-*"):
        _run(["ip", "netns", "delete", netns.name], check=False)
    _run(["ip", "link", "delete", BRIDGE], check=False)
    shutil.rmtree(CNI_STATE, ignore_errors=True)
    for result in Path("/var/lib/cni/results").glob(f"{CNI_NETWORK}-*"):
        result.unlink(missing_ok=True)


def _stop_named(name: str) -> None:
    pidfile = RUN_DIR / f"{name}.pid"
    if pidfile.exists():
        with contextlib.suppress(ValueError):
            stop_pid(int(pidfile.read_text()), grace=10)
        pidfile.unlink(missing_ok=True)


def stop_pid(pid: int, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def pids_of(executable: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.path.basename(os.readlink(entry / "exe")) == executable:
                    pids.append(int(entry.name))
    return pids


def _unmount_below(path: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(path) + "/")), reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


def _clear_old_pods() -> None:
    """Remove pod containers a previous run left in containerd (the cluster they belonged to
    is gone; the kubelet would otherwise spend its first minute garbage-collecting them)."""
    tasks = _run([*_ctr(), "tasks", "ls", "-q"], check=False).stdout.split()
    for task in tasks:
        _run([*_ctr(), "tasks", "kill", "-s", "SIGKILL", task], check=False)
    for task in tasks:
        _run([*_ctr(), "tasks", "delete", "-f", task], check=False)
    containers = _run([*_ctr(), "containers", "ls", "-q"], check=False).stdout.split()
    if containers:
        _run([*_ctr(), "containers", "rm", *containers], check=False)


# --- helpers ---------------------------------------------------------------------------------


def _ctr() -> list[str]:
    return ["ctr", "--address", str(SOCKET), "--namespace", "k8s.io", "--timeout", "60s"]


def _ctr_ok() -> bool:
    if not SOCKET.exists():
        return False
    return subprocess.run([*_ctr(), "version"], capture_output=True, check=False).returncode == 0


def _node_ready(kubectl: KubectlFn) -> bool:
    result = kubectl(
        "get", "node", NODE_NAME, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        check=False,
    )  # fmt: skip
    return bool(result.returncode == 0 and result.stdout.strip() == "True")


def _run(command: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])}... failed: {result.stderr.strip()[-800:]}")
    return result


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def _check_root() -> None:
    if os.geteuid() != 0:
        raise RuntimeError(
            "the real node runs containerd and the kubelet, which need root: run as root"
        )


def _sysctls() -> None:
    """Pods' traffic is routed and bridged through iptables (the bridge CNI and kube-proxy)."""
    for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"):
        path = Path("/proc/sys") / key
        if not path.exists():
            raise RuntimeError(f"/proc/sys/{key} is missing: the kernel lacks br_netfilter")
        if path.read_text().strip() != "1":
            path.write_text("1")


def _pause_source() -> Path:
    from devenv.cluster.cluster import versions

    gomodcache = _run(["go", "env", "GOMODCACHE"]).stdout.strip()
    kube = versions()["KUBE_VERSION"]
    source = Path(gomodcache) / f"k8s.io/kubernetes@{kube}/build/pause/linux/pause.c"
    if not source.exists():
        _run(["go", "mod", "download", f"k8s.io/kubernetes@{kube}"])
    return source


def _cni_conflist() -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def _containerd_toml(root: Path, cni_conf: Path) -> str:
    return f"""version = 2
root = "{root}"
state = "{RUN_DIR}/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{SOCKET}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # The VM withholds CAP_SYS_RESOURCE: runc cannot set negative OOM scores (docs/local-node.md).
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{REGISTRY_HOSTS}"
"""
