"""Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does it.

One Lease per shard (one in all, unsharded; ha/shard_election.py): its holder runs the
operator for that shard; the others wait, serve /healthz and /metrics, and forward what bots
and browsers send them to the holder (ha/routing.py). Why a Lease and not kopf's peering:
peering freezes every operator of equal priority instead of electing one, and needs
cluster-wide CRDs of its own.

Expiry is judged by this process's own clock, never by comparing the holder's renewTime with
ours: a holder is gone when its record has not changed for a whole lease duration since we
first saw it (clock skew between nodes does not matter). The holder renews every `retry`
seconds (ha/renewer.py) and gives up leading when it could not renew for `renew_deadline`
(shorter than the lease, so it stops acting before anyone else may start). Every write carries the
resourceVersion read just before it: of two replicas racing for a free Lease, one wins.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from meetingbot_operator.kube.client import ApiError, KubeClient

log = logging.getLogger(__name__)
# Where the holder's report and OAuth servers listen, for the standbys to forward to.
ENDPOINTS_ANNOTATION = "meetingbot.dev/endpoints"
REQUEST_TIMEOUT = 5.0


class LeadershipLost(Exception):
    pass


@dataclass(frozen=True)
class LeaseTiming:
    duration: float = 15.0  # leaseDurationSeconds: a silent holder is replaced after this
    renew_deadline: float = 10.0  # the holder stops leading after this long without a renewal
    retry: float = 2.0  # how often the holder renews and the others look


@dataclass(frozen=True)
class Holder:
    identity: str
    endpoints: dict[str, str]


class Lease:
    def __init__(
        self,
        api: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        endpoints: dict[str, str],
        timing: LeaseTiming | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        owners: list[dict[str, Any]] | None = None,
    ) -> None:
        self._api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self._endpoints = endpoints
        self._labels = labels or {}
        self._annotations = annotations or {}
        self._owners = owners or []  # ownerReferences: the garbage collector's to delete it
        self.timing = timing or LeaseTiming()
        # The last record seen (holder, renewTime) and when, on the monotonic clock.
        self._observed: tuple[str | None, Any] | None = None
        self._observed_at = 0.0
        self._seen: dict[str, Any] | None = None  # the Lease as last read

    def bind(self, api: KubeClient) -> None:
        """Use this client from now on (one bound to the event loop that calls next)."""
        self._api = api

    async def try_acquire_or_renew(self) -> bool:
        """One attempt: True if this replica holds the Lease afterwards."""
        try:
            lease = await self._request("GET", self.name)
        except ApiError as error:
            if error.status != 404:
                raise
            return await self._write(None)
        self.observe(lease)
        holder = lease["spec"].get("holderIdentity")
        if holder and holder != self.identity and not self._expired(lease):
            return False
        return await self._write(lease)

    async def release(self) -> None:
        """Give the Lease up at once (a clean shutdown): the next replica need not wait for it
        to expire. Only if it is still ours."""
        try:
            lease = await self._request("GET", self.name)
            if lease["spec"].get("holderIdentity") != self.identity:
                return
            body = self._body(lease, holder=None)
            body["spec"]["leaseDurationSeconds"] = 1
            await self._request("PUT", self.name, body)
            log.info("released the Lease", extra={"lease": self.name})
        except (ApiError, aiohttp.ClientError, TimeoutError) as error:
            # It will expire by itself: the others wait one lease duration longer.
            log.warning("could not release the Lease", extra={"error": str(error)})

    def current_holder(self) -> Holder | None:
        """Who leads, as of this replica's last look at the Lease (a standby looks every
        `retry` seconds while it waits): None for nobody, or a holder silent for a lease
        duration."""
        lease = self._seen
        if lease is None or not lease["spec"].get("holderIdentity") or self._expired(lease):
            return None
        raw = (lease["metadata"].get("annotations") or {}).get(ENDPOINTS_ANNOTATION, "{}")
        try:
            endpoints = {str(k): str(v) for k, v in json.loads(raw).items()}
        except (ValueError, AttributeError):
            endpoints = {}
        return Holder(lease["spec"]["holderIdentity"], endpoints)

    async def _request(self, method: str, name: str = "", body: Any = None) -> dict[str, Any]:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"
        return await self._api.request(
            method, path + (f"/{name}" if name else ""), body=body, timeout=REQUEST_TIMEOUT
        )

    def observe(self, lease: dict[str, Any]) -> None:
        """Take in the Lease as read (by this object, or in a list of the namespace's)."""
        self._seen = lease
        record = (lease["spec"].get("holderIdentity"), lease["spec"].get("renewTime"))
        if record != self._observed:
            self._observed = record
            self._observed_at = time.monotonic()

    def _expired(self, lease: dict[str, Any]) -> bool:
        duration = lease["spec"].get("leaseDurationSeconds") or self.timing.duration
        return time.monotonic() > self._observed_at + duration

    async def _write(self, lease: dict[str, Any] | None) -> bool:
        try:
            if lease is None:
                await self._request("POST", body=self._body(None, holder=self.identity))
            else:
                await self._request("PUT", self.name, self._body(lease, holder=self.identity))
        except ApiError as error:
            if error.status == 409:  # another replica wrote first
                return False
            raise
        return True

    def _body(self, lease: dict[str, Any] | None, *, holder: str | None) -> dict[str, Any]:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec: dict[str, Any] = {
            "holderIdentity": holder,
            "leaseDurationSeconds": int(self.timing.duration),
            "renewTime": now,
            "acquireTime": now,
            "leaseTransitions": 0,
        }
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": self._labels,
            "annotations": {
                **self._annotations,
                ENDPOINTS_ANNOTATION: json.dumps(self._endpoints, sort_keys=True),
            },
        }
        if self._owners:
            metadata["ownerReferences"] = self._owners
        if lease is not None:
            metadata["resourceVersion"] = lease["metadata"]["resourceVersion"]
            metadata["labels"] = {**(lease["metadata"].get("labels") or {}), **self._labels}
            previous = lease["spec"].get("holderIdentity")
            transitions = lease["spec"].get("leaseTransitions") or 0
            if previous == holder and lease["spec"].get("acquireTime"):
                spec["acquireTime"] = lease["spec"]["acquireTime"]
            spec["leaseTransitions"] = transitions + (previous != holder and holder is not None)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }
