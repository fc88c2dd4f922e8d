"""The operator's settings: one pydantic settings object, environment variables prefixed
MEETINGBOT_ (e.g. MEETINGBOT_BOT_IMAGE, MEETINGBOT_NAMESPACES=team-a,team-b)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

from kopf._cogs.structs.references import NamespaceName, match_namespace
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEETINGBOT_", extra="ignore")

    # Scope: empty means every namespace (cluster-wide RBAC needed).
    namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)

    def watches(self, namespace: str) -> bool:
        """Whether `namespace` is watched, by kopf's own rule for its patterns."""
        return not self.namespaces or any(
            match_namespace(NamespaceName(namespace), pattern) for pattern in self.namespaces
        )

    @property
    def exact_namespaces(self) -> bool:
        """Namespaces listed by name (none of kopf's glob patterns): watched and listed one
        by one, with no cluster-wide RBAC. False for none (every namespace) too."""
        return bool(self.namespaces) and not any(c in "".join(self.namespaces) for c in "*?[!")

    # The report endpoint: where it listens, and the URL bot pods use to reach it.
    report_host: str = "0.0.0.0"  # noqa: S104 - bots in other pods must reach it
    report_port: int = 8081
    report_url: str = "http://meetingbot-operator.meetingbot-system.svc:8081"
    # Signs per-bot report tokens; must be stable across restarts (the chart keeps it in a
    # Secret). When unset a random key is used and running bots cannot report after a restart.
    report_key: SecretStr | None = None
    # Or: the Secret (key reportKey) in the operator's own namespace that holds the key; the
    # operator creates it with a random key on its first start and reuses it ever after (the
    # chart's way: nothing random in the rendered chart, so GitOps renders are stable).
    report_key_secret: str = ""
    pod_namespace: str = ""  # the operator's namespace (the downward API in the chart)

    metrics_port: int = 9090
    health_port: int = 8080

    # High availability: replicas elect a leader on a Lease (named here, in pod_namespace);
    # only the leader acts, the others forward reports to it and take over when it goes.
    # Off: this process leads alone (one replica, or a test).
    leader_election: bool = False
    leader_lease_name: str = "meetingbot-operator"
    lease_duration_seconds: int = Field(15, ge=2, le=300)
    lease_renew_deadline_seconds: float = Field(10.0, gt=0)
    lease_retry_seconds: float = Field(2.0, gt=0)
    # Shards (ha/shards.py): the namespaces split by a hash into this many shards, each led
    # by one replica on a Lease of its own. More than one needs leader election.
    shards: int = Field(1, ge=1, le=64)
    # This replica's name in the Lease (the chart: the pod's name) and the address the others
    # reach its report and OAuth ports at (the chart: the pod's IP).
    pod_name: str = ""
    pod_ip: str = "127.0.0.1"
    pod_uid: str = ""  # the pod owns this replica's membership Lease (the chart: downward API)

    # ZoomUserGrants (OBF): the authorization endpoints (/oauth/start/..., /oauth/callback)
    # listen here; 0 turns them off. `oauth_public_url` is where a person's browser reaches
    # them (a port-forward, or the chart's Ingress); the user-managed app's redirect URL is
    # `<oauth_public_url>/oauth/callback`.
    oauth_port: int = Field(8082, ge=0, le=65535)
    oauth_public_url: str = "http://localhost:8082"
    # Ready grants are refreshed at least this often, so a refresh token never lapses unused
    # and a revocation shows in the status before a bot needs the grant.
    grant_refresh_seconds: float = Field(86400.0, gt=0)

    # Bot pods.
    bot_image: str = "ghcr.io/meetingbot-dev/meetingbot-bot:0.1.0"
    bot_image_pull_policy: str = "IfNotPresent"
    bot_cpu_request: str = "500m"
    # Measured on the real node (`make bench`): a bot pod's PSS is 370 MB in a simulated
    # meeting and 411 MB with the real SDK loaded; the limit leaves room for a real meeting's
    # video decoding, which no measurement here can show.
    bot_memory_request: str = "512Mi"
    bot_cpu_limit: str = "2"
    bot_memory_limit: str = "1536Mi"
    bot_grace_seconds: int = Field(60, ge=5, description="Time a bot has to leave on SIGTERM.")
    bot_run_as_user: int = 10001
    # Bot-wide pod settings a platform team sets (the chart's bot.*); a MeetingBot's podTemplate
    # refines them: its nodeSelector adds keys (the platform's win), its tolerations and
    # imagePullSecrets are added, its priorityClassName replaces the default; the runtime class
    # is the platform's only (a tenant cannot choose a weaker sandbox).
    bot_node_selector: dict[str, str] = Field(default_factory=dict)
    bot_tolerations: list[dict[str, Any]] = Field(default_factory=list)
    bot_priority_class_name: str = ""
    bot_runtime_class_name: str = ""
    bot_image_pull_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # A bot's image that cannot be pulled for this long fails the bot (ImagePullFailed, not
    # retried: a new attempt would pull the same image).
    image_pull_patience_seconds: int = Field(90, ge=0, le=3600)

    # Timing.
    start_lead_seconds: int = Field(60, ge=0, description="Start this long before joinAt.")
    retry_base_seconds: float = Field(5.0, gt=0)
    retry_max_seconds: float = Field(300.0, gt=0)
    account_recheck_seconds: float = Field(600.0, gt=0)
    # A service user Zoom refused is checked again after this long, then with doubling delays.
    user_recheck_seconds: float = Field(30.0, gt=0)
    sweep_seconds: float = Field(30.0, gt=0)
    # A MeetingBotSchedule's Zoom source (a recurring meeting, a user's calendar) is read again
    # this often: the backstop for a change Zoom's meeting webhooks did not tell.
    schedule_poll_seconds: float = Field(300.0, gt=0)
    # Reconcile passes that run at once (controller-runtime's MaxConcurrentReconciles); the
    # others wait their turn, holding nothing (those running share kube_client's connections).
    concurrent_reconciles: int = Field(100, ge=1, le=1000)
    # A bot still running this long past its maxDuration is stopped by the operator.
    max_duration_grace_seconds: int = 120

    # Bots re-send their state this often (a heartbeat); after `unresponsive_intervals` missed
    # ones the bot's pod is stopped and the attempt retried (BotUnresponsive).
    report_interval_seconds: int = Field(30, ge=1, le=600)
    unresponsive_intervals: int = Field(4, ge=2, le=100)
    # The bot pod's liveness probe: GET /healthz on this port (0: no probe, for a bot image of
    # your own that does not serve it).
    bot_health_port: int = Field(8090, ge=0, le=65535)
    # Sandbox only: the Meeting SDK script the reference bot loads instead of the real one (the
    # Zoom simulator's fake SDK). An operator setting, never a MeetingBot's: the page that
    # loads it holds the ZAK.
    bot_sdk_url: str = ""

    # Base URLs a ZoomAccount's spec.endpoints may use (a proxy, a Zoom simulator). Empty: none,
    # only Zoom's own clouds. http:// is accepted only for loopback and in-cluster (*.svc) hosts.
    allowed_endpoints: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # S3-compatible endpoints a MeetingBot's spec.artifacts.endpoint may name (AWS's own,
    # https://s3.<region>.amazonaws.com, is always allowed). http:// only for a loopback,
    # in-cluster (*.svc) or private-network host: the bots' presigned uploads travel to it.
    storage_endpoints: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # How long a bot's presigned upload URL stays valid.
    upload_url_seconds: int = Field(300, ge=30, le=3600)
    storage_timeout_seconds: float = 10.0
    # The bot's spool (files not yet delivered): an emptyDir of this size. At 32 kbit/s, an
    # hour of audio is about 15 MB.
    bot_spool_size: str = "256Mi"

    # Base URLs a MeetingBot's spec.webhook.url may lie under (the operator POSTs to them from
    # inside the cluster, so none is allowed unless listed). http:// only for a loopback,
    # in-cluster (*.svc) or private-network host.
    webhook_endpoints: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60)
    # A notification is retried with backoff (doubling up to webhook_backoff_max_seconds,
    # jittered) until it is this old, then dropped and counted.
    webhook_max_age_seconds: float = Field(86400.0, ge=60)
    webhook_backoff_max_seconds: float = Field(300.0, ge=1)
    # Deliveries in flight at once, across bots (each bot's own are one at a time, in order).
    webhook_concurrency: int = Field(64, ge=1, le=1024)

    # Zoom's RTMS signaling servers a meeting.rtms_started may name. A MeetingStream's app
    # signs its own webhooks, so its server_urls is the tenant's word: only these are taken
    # (a stream worker connects there from inside the cluster). wss:// under a domain
    # (`wss://*.zoom.us`: any host below zoom.us), or ws(s):// base URLs for a simulator
    # (ws:// only for a loopback, in-cluster or private-network host).
    rtms_servers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["wss://*.zoom.us", "wss://*.zoomgov.com"]
    )

    # The stream workers (docs/rtms.md): the service accounts whose pods may ask for streams
    # (`system:serviceaccount:<namespace>:<name>`; their tokens are checked with a
    # TokenReview); a worker not heard from for `stream_worker_timeout_seconds` is gone and
    # its streams go to others (inside Zoom's 30 s, with the worker's poll and reconnection);
    # a worker's poll is held open for at most `stream_worker_poll_seconds`.
    stream_workers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    stream_worker_timeout_seconds: float = Field(10.0, ge=2, le=25)
    stream_worker_poll_seconds: float = Field(4.0, ge=0.5, le=20)

    zoom_timeout_seconds: float = 10.0
    zoom_max_attempts: int = 6

    # Kubernetes Events, rate-limited (burst 25) so a burst of bots spends the API server on
    # their Secrets and Pods first; 0: no Events (the log has the same lines).
    events_per_second: float = Field(10.0, ge=0, le=1000)

    log_format: str = Field("json", pattern="^(json|text)$")
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _worker_timing(self) -> Settings:
        if not self.stream_worker_poll_seconds < self.stream_worker_timeout_seconds:
            raise ValueError(
                "stream_worker_poll_seconds must be below stream_worker_timeout_seconds: a "
                "worker waiting for an answer is not gone"
            )
        return self

    @model_validator(mode="after")
    def _lease_timing(self) -> Settings:
        if self.shards > 1 and not self.leader_election:
            raise ValueError("shards > 1 needs leader election: each shard is led on a Lease")
        if self.leader_election:
            if not self.pod_namespace:
                raise ValueError("leader election needs MEETINGBOT_POD_NAMESPACE (the Lease's)")
            if not self.lease_retry_seconds < self.lease_renew_deadline_seconds:
                raise ValueError("lease_retry_seconds must be below lease_renew_deadline_seconds")
            if not self.lease_renew_deadline_seconds < self.lease_duration_seconds:
                raise ValueError(
                    "lease_renew_deadline_seconds must be below lease_duration_seconds: the "
                    "leader must stop acting before another replica may start"
                )
        return self

    @field_validator(
        "namespaces",
        "allowed_endpoints",
        "storage_endpoints",
        "webhook_endpoints",
        "rtms_servers",
        "stream_workers",
        "bot_image_pull_secrets",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # NoDecode above: the variable is a plain comma-separated list, not JSON.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("storage_endpoints", "webhook_endpoints")
    @classmethod
    def _safe_private(cls, value: list[str], info: ValidationInfo) -> list[str]:
        _check_endpoints(
            value,
            (info.field_name or "").replace("_", " ").removesuffix("s"),
            _private_host,
            "loopback, in-cluster (*.svc) or private-network",
        )
        return [url.rstrip("/") for url in value]

    @field_validator("rtms_servers")
    @classmethod
    def _safe_rtms_servers(cls, value: list[str]) -> list[str]:
        as_http = [re.sub(r"^ws(s?)://", r"http\1://", url) for url in value]
        _check_endpoints(as_http, "rtms server", _private_host, "loopback, *.svc or private")
        if any(not url.startswith(("ws://", "wss://")) for url in value):
            raise ValueError("rtms servers are ws:// or wss:// URLs")
        return [url.rstrip("/") for url in value]

    @field_validator("allowed_endpoints")
    @classmethod
    def _safe_endpoints(cls, value: list[str]) -> list[str]:
        _check_endpoints(value, "allowed endpoint", _sandbox_host, "loopback or in-cluster (*.svc)")
        return value


def _check_endpoints(
    urls: list[str], what: str, plain_ok: Callable[[str], bool], where: str
) -> None:
    """Each URL is https://, or http:// to a host `plain_ok` accepts (`where`, in words)."""
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname and (
            parts.scheme == "https" or (parts.scheme == "http" and plain_ok(parts.hostname))
        ):
            continue
        raise ValueError(f"{what} {url!r}: use https://, or http:// only for a {where} host")


def _private_host(host: str) -> bool:
    """A sandbox host, or an address of a private network (a node's own address)."""
    if _sandbox_host(host):
        return True
    try:
        return ipaddress.ip_address(host).is_private
    except ValueError:
        return False


def _sandbox_host(host: str) -> bool:
    """Loopback, or a Service name inside the cluster: where plain HTTP stays on the machine
    or the cluster network."""
    if host == "localhost" or host.endswith((".svc", ".svc.cluster.local")):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def rtms_server_allowed(url: str, allowed: list[str]) -> bool:
    """Whether an RTMS signaling URL is among `rtms_servers`: under a `*.domain` entry (same
    scheme, a host below the domain, the entry's port if it names one), or under a base URL."""
    target = urlsplit(url)
    host = target.hostname or ""
    for entry in allowed:
        parts = urlsplit(entry)
        wildcard = (parts.hostname or "").removeprefix("*.")
        if (parts.hostname or "").startswith("*."):
            if (
                target.scheme == parts.scheme
                and host.endswith("." + wildcard)
                and (parts.port is None or parts.port == target.port)
            ):
                return True
        elif endpoint_allowed(url, [entry]):
            return True
    return False


def endpoint_allowed(url: str, allowed: list[str]) -> bool:
    """Whether `url` lies under one of the allowed base URLs (same scheme, host and port; path
    below the allowed one)."""
    target = urlsplit(url)
    for base in allowed:
        prefix = urlsplit(base)
        same_origin = (target.scheme, target.hostname, target.port) == (
            prefix.scheme,
            prefix.hostname,
            prefix.port,
        )
        base_path = prefix.path.rstrip("/")
        if same_origin and (target.path == base_path or target.path.startswith(base_path + "/")):
            return True
    return False
