"""Who leads which shard: one Lease per shard, and one membership Lease per replica.

Each replica renews its own membership Lease (`<name>-member-<identity>`, annotated with the
number of shards it was configured with) and, every `retry` seconds, reads every Lease of the
release in one list. From that one observation every replica computes the same assignment
(`assign`): a shard stays with a live holder up to a fair share (ceil(shards / replicas)), and
the rest go to the least-loaded replicas, ties broken by rendezvous hashing. A replica then
gives up what is assigned elsewhere and takes what is assigned to it once it is free, with the
same Lease rules as one leader (ha/lease.py: expiry by this replica's own clock, every write
carrying the resourceVersion it read, so two replicas never both hold a shard).

With one shard the shard's Lease keeps the release's name (the unsharded Lease), so a
release's Lease does not change when it upgrades. A change of the number of shards is safe
during a rolling update: a replica takes nothing while a live member was configured with
another number, or while a Lease of the release it does not know (another number's shard)
is held: the new replicas stand by until the old ones have gone.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator

import aiohttp

from meetingbot_operator.ha.lease import Holder, LeadershipLost, Lease, LeaseTiming
from meetingbot_operator.ha.shards import owners
from meetingbot_operator.kube.client import ApiError, KubeClient

log = logging.getLogger(__name__)
LEASE_OF = "meetingbot.dev/lease-of"  # label: the release's Lease name
ROLE = "meetingbot.dev/lease-role"  # label: "shard" or "member"
SHARDS_ANNOTATION = "meetingbot.dev/shards"  # on a member: the number it was configured with
LIST_TIMEOUT = 5.0


def shard_lease_name(base: str, shard: int, count: int) -> str:
    return base if count == 1 else f"{base}-shard-{shard}"


def member_lease_name(base: str, identity: str) -> str:
    return f"{base}-member-{identity}"[:253]


def assign(count: int, members: Iterable[str], holders: dict[int, str]) -> dict[int, str]:
    """Which live member leads each shard: the same answer in every replica that observed the
    same members and holders. `holders` are the live holders (expired ones left out)."""
    alive = sorted(set(members))
    if not alive:
        return {}
    fair = math.ceil(count / len(alive))
    load: Counter[str] = Counter()
    result: dict[int, str] = {}
    for shard in range(count):  # a shard stays where it is, within the fair share
        holder = holders.get(shard)
        if holder in alive and load[holder] < fair:
            result[shard] = holder
            load[holder] += 1
    preferred = owners(count, alive)
    for shard in range(count):
        if shard not in result:
            chosen = min(alive, key=lambda m: (load[m], m != preferred[shard], m))
            result[shard] = chosen
            load[chosen] += 1
    return result


class ShardElector:
    def __init__(
        self,
        api: KubeClient,
        namespace: str,
        base: str,
        identity: str,
        endpoints: dict[str, str],
        timing: LeaseTiming,
        count: int,
        pod_uid: str = "",
    ) -> None:
        self._api = api
        self.namespace = namespace
        self.base = base
        self.identity = identity
        self.timing = timing
        self.count = count
        self.member = Lease(
            api, namespace, member_lease_name(base, identity), identity, {}, timing,
            labels={LEASE_OF: base, ROLE: "member"},
            annotations={SHARDS_ANNOTATION: str(count)},
            # Owned by this replica's pod: deleted with it, so pods' names do not pile up.
            owners=[{"apiVersion": "v1", "kind": "Pod", "name": identity, "uid": pod_uid}]
            if pod_uid else None,
        )  # fmt: skip
        self.shards = [
            Lease(
                api,
                namespace,
                shard_lease_name(base, shard, count),
                identity,
                endpoints,
                timing,
                labels={LEASE_OF: base, ROLE: "shard"},
            )
            for shard in range(count)
        ]
        self.held: set[int] = set()
        # Every other Lease of the release, as last listed: expiry is judged per Lease.
        self._others: dict[str, Lease] = {}
        self._renewed = time.monotonic()

    @contextlib.contextmanager
    def bound(self, api: KubeClient) -> Iterator[None]:
        """Use `api` (a client of another thread's event loop, ha/renewer.py) meanwhile."""
        previous = self._api
        self._bind(api)
        try:
            yield
        finally:
            self._bind(previous)

    def _bind(self, api: KubeClient) -> None:
        self._api = api
        for lease in (self.member, *self.shards, *self._others.values()):
            lease.bind(api)

    def holder(self, shard: int) -> Holder | None:
        """Who leads `shard`, as of the last look."""
        return self.shards[shard].current_holder()

    async def look(self) -> set[int]:
        """Renew this replica's membership and the shards it holds, read every Lease of the
        release, and say which shards this replica should lead. Raises LeadershipLost when a
        held shard was taken, or could not be renewed for the renew deadline."""
        await self._renew_held()
        try:
            await self.member.try_acquire_or_renew()
            listed = await self._api.request(
                "GET",
                f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases",
                timeout=LIST_TIMEOUT,
            )
        except (ApiError, aiohttp.ClientError, TimeoutError) as error:
            log.warning("cannot read the Leases; trying again", extra={"error": str(error)})
            return set(self.held)  # nothing moves on what was not seen
        mine = {lease.name: shard for shard, lease in enumerate(self.shards)}
        items = listed.get("items") or []
        # Forget the Leases no longer there (a gone pod's membership went with it).
        seen = {item["metadata"]["name"] for item in items}
        self._others = {name: lease for name, lease in self._others.items() if name in seen}
        members = {self.identity}
        foreign_counts, foreign_held = set(), False
        for item in items:
            name = item["metadata"]["name"]
            labels = item["metadata"].get("labels") or {}
            if name in mine:
                self.shards[mine[name]].observe(item)
                continue
            if name == self.member.name:
                continue
            if labels.get(LEASE_OF) != self.base and name != self.base:
                continue  # another release's, or nothing of ours
            observer = self._others.setdefault(
                name, Lease(self._api, self.namespace, name, self.identity, {}, self.timing)
            )
            observer.observe(item)
            alive = observer.current_holder()
            if alive is None:
                continue
            if labels.get(ROLE) == "member":
                members.add(alive.identity)
                annotations = item["metadata"].get("annotations") or {}
                if annotations.get(SHARDS_ANNOTATION) != str(self.count):
                    foreign_counts.add(annotations.get(SHARDS_ANNOTATION))
            else:  # a shard Lease of another number of shards, or the unsharded one
                foreign_held = True
        if foreign_counts or foreign_held:
            if self.held:  # keep leading what we lead; take nothing more
                return set(self.held)
            log.info(
                "a replica configured with another number of shards is alive; standing by",
                extra={"counts": sorted(str(c) for c in foreign_counts)},
            )
            return set()
        holders = {
            shard: holder.identity
            for shard, lease in enumerate(self.shards)
            if (holder := lease.current_holder()) is not None
        }
        assignment = assign(self.count, members, holders)
        return {shard for shard, member in assignment.items() if member == self.identity}

    def moves(self, wanted: set[int]) -> bool:
        """Whether the shards led must change now: one held is wanted elsewhere, or one wanted
        here is free to take."""
        return bool(self.held - wanted) or any(self.free(s) for s in wanted - self.held)

    def free(self, shard: int) -> bool:
        """Whether `shard` may be taken now: nobody (alive) holds it, or this replica does."""
        holder = self.holder(shard)
        return holder is None or holder.identity == self.identity

    async def acquire(self, shards: Iterable[int]) -> None:
        for shard in sorted(shards):
            if shard in self.held or not self.free(shard):
                continue
            try:
                if await self.shards[shard].try_acquire_or_renew():
                    self.held.add(shard)
                    name = self.shards[shard].name
                    log.info("leading a shard", extra={"shard": shard, "lease": name})
            except (ApiError, aiohttp.ClientError, TimeoutError) as error:
                log.warning("could not take a shard", extra={"shard": shard, "error": str(error)})
        self._renewed = time.monotonic()

    async def release(self, shards: Iterable[int]) -> None:
        for shard in sorted(set(shards) & self.held):
            self.held.discard(shard)
            await self.shards[shard].release()

    async def leave(self) -> None:
        """A clean shutdown: every shard and the membership given up at once."""
        await self.release(set(self.held))
        await self.member.release()

    async def _renew_held(self) -> None:
        renewed = True
        for shard in sorted(self.held):
            try:
                still = await self.shards[shard].try_acquire_or_renew()
            except (ApiError, aiohttp.ClientError, TimeoutError) as error:
                log.warning(
                    "could not renew a shard's Lease", extra={"shard": shard, "error": str(error)}
                )
                renewed = False
                continue
            if not still:
                raise LeadershipLost(f"another replica holds shard {shard}'s Lease")
        if renewed:
            self._renewed = time.monotonic()
        elif time.monotonic() - self._renewed > self.timing.renew_deadline:
            raise LeadershipLost(
                f"the shards' Leases could not be renewed for {self.timing.renew_deadline:.0f} s"
            )
