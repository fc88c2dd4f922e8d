"""Which shard an object belongs to, and which replica should lead each shard.

Shards split the objects by a stable hash of their **namespace**, not of each object's UID:
a MeetingBot names its ZoomAccount and its ZoomUserGrant by name in its own namespace
(cross-namespace references are refused for tenant safety), and a MeetingBotSchedule makes
its bots there too. So everything a decision reads - the account's pool of service users and
their claims, its ZAK cache, its provisioning and `maxUsers`, the grant's tokens - lives in one
shard, has one owner, and no state spans shards: two shards can never both hand out a user's
last seat or both provision the account's next user, because no two shards ever see the same
account. Hashing UIDs would spread a busy namespace evenly, but every account would then be
shared by every shard and need a store of its own. The price, stated in docs/operations.md: one
namespace is never split, so a single namespace's bots are at most one shard's worth.

Assignment is rendezvous hashing over the live replicas (membership Leases, ha/shard_election.py):
every replica computes the same owner for each shard from the same list, and a replica that
comes or goes moves only the shards it wins or held.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime


def _score(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest()[:8], "big")


@functools.lru_cache(maxsize=4096)  # asked on every watch event, of a few namespaces
def shard_of(namespace: str, count: int) -> int:
    """The shard of a namespace's objects: the same in every replica and every release."""
    return 0 if count <= 1 else _score("namespace", namespace) % count


def owners(count: int, members: Iterable[str]) -> dict[int, str]:
    """Which live replica should lead each shard (none when there are no members)."""
    alive = sorted(set(members))
    if not alive:
        return {}
    return {s: max(alive, key=lambda m: _score("shard", str(s), m)) for s in range(count)}


@dataclass
class ShardSet:
    """The shards this process leads, and since when: the one fact every filter and router
    reads. Set by the election (ha/election.py) before the operator starts, and grown while it
    runs when this replica takes a shard in place (`take`, app.py's Operator.gain); a shard
    given up stops the operator first, so what a running operator leads never shrinks."""

    count: int = 1
    held: frozenset[int] = field(default_factory=lambda: frozenset({0}))
    # When this process began leading each shard: a bot's patience (its pod not seen yet, its
    # reports not heard yet) and a capped pool's settling count from there (meetingbot/).
    since: dict[int, datetime] = field(default_factory=dict)

    def owns(self, namespace: str) -> bool:
        return self.count <= 1 or self.shard(namespace) in self.held

    def lead(self, shards: Iterable[int]) -> None:
        """Lead exactly these, from now (the operator is about to start)."""
        self.held = frozenset(shards)
        self.since = dict.fromkeys(self.held, datetime.now(UTC))

    def take(self, shards: Iterable[int]) -> frozenset[int]:
        """Lead these too, from now; the ones not led before."""
        new = frozenset(shards) - self.held
        now = datetime.now(UTC)
        self.since.update(dict.fromkeys(new, now))
        self.held |= new
        return new

    def shard(self, namespace: str) -> int:
        return shard_of(namespace, self.count)

    def leading_since(self, namespace: str) -> datetime | None:
        """When this process began leading the namespace's shard (None: not known, as for
        a ShardSet made without the election's `lead`)."""
        return self.since.get(self.shard(namespace))

    @property
    def sharded(self) -> bool:
        return self.count > 1
