"""The observed state of every MeetingBot, kept from watch events, reports and the attempt
executor's results: what `decide` reads, and nothing more."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from meetingbot_contract import BotReport
from meetingbot_operator.identities.claims import ZOOM_ACCOUNT_ANNOTATION, ZOOM_USER_ANNOTATION
from meetingbot_operator.kube.objects import older
from meetingbot_operator.meetingbot import children
from meetingbot_operator.meetingbot.observed import AttemptResult, Meta, PodObservation, pod_name
from meetingbot_operator.meetingbot.reports import Receipt

Key = tuple[str, str]


@dataclass
class BotRecord:
    body: dict[str, Any] | None = None
    # Pods seen with this bot's label, by attempt, with the uid of their controller: decisions
    # read only the one named for the attempt and controlled by this MeetingBot's uid.
    pods: dict[int, tuple[str | None, PodObservation]] = field(default_factory=dict)
    report: BotReport | None = None
    last_report_at: datetime | None = None
    # When this process first saw the MeetingBot: its reports are answered "accepted" from then
    # on (before, "not yet" or "unknown"), so a silence is counted from then at the earliest.
    known_since: datetime | None = None
    secret_cleaned: bool = False
    # The executor's result for the attempt asked for, until a status write carries it.
    attempt_result: AttemptResult | None = None
    in_meeting_seen: bool = False
    delete_failures: int = 0  # deleting its objects (artifacts.deleteOnDelete) failed so often
    # The body's status is the one this operator last wrote (set by its own status patch).
    # While it is, a watch event bringing another status was written by someone else: the
    # operator's record is kept and written back (`status_foreign`).
    status_own: bool = False
    status_foreign: bool = False
    # time.monotonic() of the oldest report or pod change no status write has carried yet:
    # how stale a status is (the meetingbot_status_lag_seconds metric).
    waiting_since: float | None = None

    def changed(self) -> None:
        if self.waiting_since is None:
            self.waiting_since = time.monotonic()

    def pod(self, meta: Meta, attempt: int) -> PodObservation | None:
        """The attempt's pod, if the one seen is really ours: its name is the attempt's and its
        controller is this MeetingBot (not a pod of an earlier MeetingBot of the same name,
        nor any pod that merely carries our labels)."""
        seen = self.pods.get(attempt)
        if seen is None:
            return None
        owner, observation = seen
        if owner != meta.uid or observation.name != pod_name(meta.name, attempt):
            return None
        return observation

    def report_for(self, attempt: int) -> BotReport | None:
        return self.report if self.report and self.report.attempt == attempt else None


class BotCache:
    def __init__(self) -> None:
        self.records: dict[Key, BotRecord] = {}

    def get(self, key: Key) -> BotRecord | None:
        return self.records.get(key)

    def unstarted(self, key: Key) -> bool:
        """A bot whose first attempt has not been started: no attempt in its status, no pod
        seen, no start pending. Its next pass is likely the one that creates its children."""
        record = self.records.get(key)
        if record is None or record.body is None or record.pods or record.attempt_result:
            return False
        return not (record.body.get("status") or {}).get("attempts")

    def observe_bot(self, event_type: str, body: dict[str, Any]) -> bool:
        """A MeetingBot watch event; whether there is anything new to decide about."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if event_type == "DELETED":
            self.records.pop(key, None)
            return False
        record = self.records.setdefault(key, BotRecord())
        current = record.body
        if current is not None and body["metadata"].get("uid") != current["metadata"].get("uid"):
            self.records[key] = record = BotRecord()  # deleted and re-created with the same name
            current = None
        if current is not None and _same_version(body, current):
            return False  # the echo of our own status patch: already known
        if not older(body, current):
            kept = slim(body)
            if (
                current is not None
                and record.status_own
                and kept.get("status") != current.get("status")
            ):
                # Only the operator writes a MeetingBot's status (a principal allowed to patch
                # meetingbots/status could otherwise mark a running bot Succeeded).
                kept["status"] = current.get("status")
                record.status_foreign = True
            if record.body is None:
                record.known_since = datetime.now(UTC)
            record.body = kept
        return True

    def wrote_status(self, record: BotRecord, body: dict[str, Any]) -> None:
        """The operator's own status patch came back: its result is what the cache holds."""
        record.body = slim(body)
        record.status_own, record.status_foreign = True, False

    def observe_pod(
        self, event_type: str, body: dict[str, Any]
    ) -> tuple[Key, str | None, PodObservation] | None:
        """A bot pod's watch event; if anything changed, the bot to decide about again, with
        the pod's controller UID and what was read of it."""
        meta = body["metadata"]
        labels = meta.get("labels") or {}
        bot = labels.get(children.BOT_LABEL)
        attempt = labels.get(children.ATTEMPT_LABEL, "")
        if not bot or not attempt.isdigit():
            return None
        key = (meta["namespace"], bot)
        deleted = event_type == "DELETED"
        if deleted and (key not in self.records or self.records[key].body is None):
            # The pod of a bot that is gone (or never seen): nothing to decide, nothing to keep.
            orphan = self.records.get(key)
            if orphan is not None:
                orphan.pods.pop(int(attempt), None)
                if not orphan.pods:
                    del self.records[key]
            return None
        observation = parse_pod(body, deleted=deleted)
        if observation.name != pod_name(bot, observation.attempt):
            return None  # carries our labels, but is not named as any pod of ours would be
        record = self.records.setdefault(key, BotRecord())
        seen = (controller_uid(body), observation)
        if record.pods.get(observation.attempt) == seen:
            return None  # nothing the decisions look at has changed (conditions, IPs, ...)
        record.pods[observation.attempt] = seen
        record.changed()
        return key, *seen

    def created_pod(self, key: Key, meta: Meta, attempt: int) -> None:
        """The executor created this pod; until its watch event arrives (it may lag under
        load), this stands for it, so a busy operator does not take the pod for lost."""
        record = self.records.get(key)
        if record is not None:
            record.pods.setdefault(
                attempt, (meta.uid, PodObservation(pod_name(meta.name, attempt), attempt))
            )
            record.changed()  # a pod change, as the operator itself knows it: the status lags

    def observe_report(self, key: Key, report: BotReport) -> tuple[Receipt, bool]:
        """A bot's report; (the answer, whether there is anything new to decide about)."""
        record = self.records.get(key)
        if record is None or record.body is None:
            return "unknown", False
        record.last_report_at = datetime.now(UTC)
        if report == record.report:
            return "accepted", False  # a heartbeat: the liveness timer reads last_report_at
        record.report = report
        record.changed()
        return "accepted", True

    def identity(self, namespace: str, name: str) -> tuple[str, int] | None:
        record = self.records.get((namespace, name))
        if record is None or record.body is None:
            return None
        status = record.body.get("status") or {}
        return record.body["metadata"]["uid"], int(status.get("attempts") or 0)

    def phases(self) -> Counter[str]:
        return Counter(
            ((r.body.get("status") or {}).get("phase") or "Pending")
            for r in self.records.values()
            if r.body is not None
        )

    def oldest_starting_seconds(self, now: datetime) -> float:
        """How long the longest-waiting bot has been starting (Starting or Joining, counted
        from its attempt's start); 0 when none is. Read at scrape time only."""
        oldest = 0.0
        for record in self.records.values():
            status = (record.body or {}).get("status") or {}
            started = status.get("startedAt")
            if status.get("phase") in ("Starting", "Joining") and started:
                since = datetime.fromisoformat(started.replace("Z", "+00:00"))
                oldest = max(oldest, (now - since).total_seconds())
        return oldest

    def bots_of_account(self, namespace: str, account: str) -> list[Key]:
        return [
            key
            for key, r in self.records.items()
            if key[0] == namespace
            and r.body is not None
            and (r.body.get("spec") or {}).get("accountRef", {}).get("name") == account
        ]

    def bots_of_grant(self, namespace: str, grant: str) -> list[Key]:
        def named(body: dict[str, Any]) -> bool:
            obf = (body.get("spec") or {}).get("obf") or {}
            return bool((obf.get("grantRef") or {}).get("name") == grant)

        return [
            key
            for key, r in self.records.items()
            if key[0] == namespace and r.body is not None and named(r.body)
        ]


# What decisions, status writes and Events read of a MeetingBot's metadata. The rest
# (managedFields above all, kubectl's last-applied annotation) is most of an object's size
# and would be held for every bot (the bench's traced run: ~50 KB a bot before this).
KEPT_METADATA = (
    "name",
    "namespace",
    "uid",
    "generation",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "finalizers",  # artifacts.deleteOnDelete: the operator's own (ARTIFACTS_FINALIZER)
)


# A podTemplate is read only when an attempt's pod is built, and may be large (env values,
# annotations, node selectors: up to about 100 KB within the CRD's caps). Above this size the
# cache keeps the image alone and the start reads the MeetingBot again (one request), so a
# tenant's large specs cost the operator almost nothing while they wait, however many.
POD_TEMPLATE_KEPT_BYTES = 2048
# Set on a kept body whose podTemplate was left out (not a field of the MeetingBot).
POD_TEMPLATE_ELIDED = "podTemplateElided"


def slim(body: dict[str, Any]) -> dict[str, Any]:
    """The part of a MeetingBot the operator keeps in memory."""
    meta = body["metadata"]
    spec: dict[str, Any] = body.get("spec") or {}
    kept: dict[str, Any] = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {k: meta[k] for k in KEPT_METADATA if k in meta},
        "spec": spec,
    }
    if (spec.get("obf") or {}).get("grantRef") and meta.get("labels"):
        kept["metadata"]["labels"] = meta["labels"]  # a grant's botSelector reads them
    template = spec.get("podTemplate")
    if isinstance(template, dict) and _size(template) > POD_TEMPLATE_KEPT_BYTES:
        image = template.get("image")
        kept["spec"] = {**spec, "podTemplate": {"image": image} if image else {}}
        kept[POD_TEMPLATE_ELIDED] = True
    if "status" in body:
        kept["status"] = body["status"]
    return kept


def _size(value: dict[str, Any]) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def controller_uid(body: dict[str, Any]) -> str | None:
    for owner in body["metadata"].get("ownerReferences") or []:
        if owner.get("controller"):
            return str(owner.get("uid"))
    return None


def parse_pod(body: dict[str, Any], *, deleted: bool = False) -> PodObservation:
    meta, status = body["metadata"], body.get("status") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    disruption = conditions.get("DisruptionTarget") or {}
    scheduled = conditions.get("PodScheduled") or {}
    container = (
        next((c for c in status.get("containerStatuses") or [] if c.get("name") == "bot"), None)
        or {}
    )
    state = container.get("state") or {}
    terminated = state.get("terminated") or {}
    waiting = state.get("waiting") or {}
    return PodObservation(
        name=meta["name"],
        attempt=int(labels.get(children.ATTEMPT_LABEL, "0")),
        phase=status.get("phase") or "Pending",
        deleted=deleted,
        deleting=bool(meta.get("deletionTimestamp")),
        disruption=(
            f"{disruption.get('reason')}: {disruption.get('message') or ''}".strip(": ")
            if disruption.get("status") == "True"
            else None
        ),
        unschedulable=(
            scheduled.get("message") or "no node fits the pod"
            if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable"
            else None
        ),
        exit_code=terminated.get("exitCode"),
        terminated_reason=terminated.get("reason"),
        termination_message=terminated.get("message"),
        waiting_reason=waiting.get("reason"),
        waiting_message=waiting.get("message"),
        status_reason=status.get("reason"),
        status_message=status.get("message"),
        zoom_user=annotations.get(ZOOM_USER_ANNOTATION),
        zoom_account=annotations.get(ZOOM_ACCOUNT_ANNOTATION),
    )


def _same_version(a: dict[str, Any], b: dict[str, Any]) -> bool:
    version = a["metadata"].get("resourceVersion")
    return bool(version) and version == b["metadata"].get("resourceVersion")
