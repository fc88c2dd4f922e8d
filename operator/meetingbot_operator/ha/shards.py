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
    """The shards this process leads: the one fact every filter and router reads. Changed
    only by the election (ha/election.py), and only while the operator is stopped."""

    count: int = 1
    held: frozenset[int] = field(default_factory=lambda: frozenset({0}))

    def owns(self, namespace: str) -> bool:
        return self.count <= 1 or shard_of(namespace, self.count) in self.held

    @property
    def sharded(self) -> bool:
        return self.count > 1
