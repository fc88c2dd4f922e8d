"""Prometheus metrics, computed from what the operator already holds in memory (a scrape never
lists objects from the API server)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from meetingbot_operator.identities.pool import UserView

REGISTRY = CollectorRegistry(auto_describe=True)

ZAK_MINTS = Counter(
    "meetingbot_zak_mints_total",
    "ZAK (and OBF token) mint attempts by result: ok, or the failure reason.",
    ["result"],
    registry=REGISTRY,
)
ZOOM_RESPONSES = Counter(
    "meetingbot_zoom_responses_total",
    "Zoom API responses by endpoint and HTTP status (429: rate limited).",
    ["endpoint", "status"],
    registry=REGISTRY,
)
KUBE_REQUESTS = Counter(
    "meetingbot_kube_requests_total",
    "Requests to the Kubernetes API by verb (a dry run apart), resource and HTTP status; "
    "the watches kopf keeps are not counted.",
    ["verb", "resource", "code"],
    registry=REGISTRY,
)
EVENTS_DROPPED = Counter(
    "meetingbot_events_dropped_total",
    "Kubernetes Events not posted (the queue was full or the API refused): informational only.",
    registry=REGISTRY,
)
ZOOM_API_SECONDS = Histogram(
    "meetingbot_zoom_api_seconds",
    "Latency of Zoom API calls by endpoint.",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
APPLY_TO_POD = Histogram(
    "meetingbot_apply_to_pod_seconds",
    "From a MeetingBot's creation to its first bot pod being created.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
APPLY_TO_IN_MEETING = Histogram(
    "meetingbot_apply_to_in_meeting_seconds",
    "From a MeetingBot's creation (or its joinAt, if later) to the bot being in the meeting.",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
STATUS_LAG = Histogram(
    "meetingbot_status_lag_seconds",
    "From a bot's report or its pod's change to the status write that carries it.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300),
    registry=REGISTRY,
)
UPLOADS = Counter(
    "meetingbot_uploads_total",
    "Bots' artifact requests by result: granted, recorded, refused (409: not as announced), "
    "unavailable (503: the bucket or its Secret is not usable; the bot retries).",
    ["result"],
    registry=REGISTRY,
)
SCHEDULED_BOTS = Counter(
    "meetingbot_schedule_bots_total",
    "MeetingBotSchedules' occurrences by result: made (its MeetingBot created), refused (the API "
    "server refused it: quota, policy, a name taken), missed (no bot: the reason), moved, "
    "canceled.",
    ["result"],
    registry=REGISTRY,
)
WEBHOOKS = Counter(
    "meetingbot_webhook_deliveries_total",
    "Webhook notifications by result: delivered (the endpoint answered 2xx), retried (a try "
    "failed and is retried with backoff), dropped (given up on after a day, or the outbox full).",
    ["result"],
    registry=REGISTRY,
)
WEBHOOK_LATENCY = Histogram(
    "meetingbot_webhook_delivery_seconds",
    "From the change a notification tells (its status write) to the endpoint's 2xx.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
    registry=REGISTRY,
)
ZOOM_WEBHOOK_ANSWER = Histogram(
    "meetingbot_zoom_webhook_answer_seconds",
    "Zoom's webhooks to the operator (RTMS, meeting), from the request's body read to the "
    "answer: Zoom counts one not answered within 3 s as failed and sends it again later.",
    ["webhook", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3, 5),
    registry=REGISTRY,
)
REPORTS = Counter(
    "meetingbot_reports_total",
    "Bot reports received by result: accepted, stale, unauthorized, invalid, unknown; warming "
    "and early (answered 503: the operator has not caught up with the bot yet).",
    ["result"],
    registry=REGISTRY,
)
LEADER = Gauge(
    "meetingbot_leader",
    "1 on a replica that leads (holds a shard's Lease and acts), 0 on a standby; one replica "
    "without leader election always leads.",
    registry=REGISTRY,
)
SHARD_LEADER = Gauge(
    "meetingbot_shard_leader",
    "1 for each shard this replica leads, 0 for the others (one shard unless "
    "leaderElection.shards is set; every shard should be led by exactly one replica).",
    ["shard"],
    registry=REGISTRY,
)
FINISHED = Counter(
    "meetingbot_bots_finished_total",
    "MeetingBots that reached Succeeded or Failed, by phase and reason.",
    ["phase", "reason"],
    registry=REGISTRY,
)


class PhaseCollector(Collector):
    """What the operator holds, counted at scrape time: meetingbot_bots{phase}, how long the
    longest-starting bot has waited, and the ZoomUserGrants by readiness."""

    def __init__(
        self,
        phases: Callable[[], Mapping[str, int]],
        oldest_starting: Callable[[], float],
        grants: Callable[[], Mapping[str, int]],
    ) -> None:
        self._phases = phases
        self._oldest_starting = oldest_starting
        self._grants = grants

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("meetingbot_bots", "MeetingBots by phase.", labels=["phase"])
        for phase, count in sorted(self._phases().items()):
            family.add_metric([phase], count)
        yield family
        yield GaugeMetricFamily(
            "meetingbot_bots_starting_oldest_seconds",
            "How long the longest-waiting bot in Starting or Joining has been at it (0: none).",
            value=self._oldest_starting(),
        )
        grants = GaugeMetricFamily(
            "meetingbot_user_grants",
            "ZoomUserGrants by readiness (Ready, NotReady).",
            labels=["ready"],
        )
        counts = self._grants()
        for state in ("Ready", "NotReady"):
            grants.add_metric([state], counts.get(state, 0))
        yield grants


def observe_zoom_call(endpoint: str, seconds: float, status: int) -> None:
    ZOOM_API_SECONDS.labels(endpoint).observe(seconds)
    ZOOM_RESPONSES.labels(endpoint, str(status)).inc()


SERVICE_USERS = Gauge(
    "meetingbot_service_users",
    "Service users of each ZoomAccount by state (Active, Unavailable).",
    ["namespace", "account", "state"],
    registry=REGISTRY,
)
SERVICE_USER_BOTS = Gauge(
    "meetingbot_service_user_bots",
    "Running bots each service user serves (one ZAK each).",
    ["namespace", "account", "user"],
    registry=REGISTRY,
)


# The service users each account's series were last written for: a user taken out of the
# spec, or a deleted account, takes its series with it (else they pile up for ever).
_POOL_SERIES: dict[tuple[str, str], set[str]] = {}


def observe_pool(namespace: str, account: str, views: Iterable[UserView]) -> None:
    views = list(views)
    for state in ("Active", "Unavailable"):
        SERVICE_USERS.labels(namespace, account, state).set(sum(v.state == state for v in views))
    users = {view.user for view in views}
    for gone in _POOL_SERIES.get((namespace, account), set()) - users:
        SERVICE_USER_BOTS.remove(namespace, account, gone)
    _POOL_SERIES[(namespace, account)] = users
    for view in views:
        SERVICE_USER_BOTS.labels(namespace, account, view.user).set(view.active_bots)


def forget_pool(namespace: str, account: str) -> None:
    """A deleted ZoomAccount: its pool's series go with it."""
    for user in _POOL_SERIES.pop((namespace, account), set()):
        SERVICE_USER_BOTS.remove(namespace, account, user)
    for state in ("Active", "Unavailable"):
        with contextlib.suppress(KeyError):
            SERVICE_USERS.remove(namespace, account, state)


def app() -> web.Application:
    """The /metrics endpoint, served by the leader and by standbys alike."""

    async def serve(_: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    metrics_app = web.Application()
    metrics_app.router.add_get("/metrics", serve)
    return metrics_app
