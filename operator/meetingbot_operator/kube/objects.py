"""What the operator reads the same way from every Kubernetes object it is sent."""

from __future__ import annotations

from typing import Any


def older(candidate: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """Whether `candidate` is an older version than `current` (a late watch event after our own
    patch). resourceVersions are opaque, but etcd's are integers; when they are not, trust
    arrival order."""
    if current is None:
        return False
    a = candidate["metadata"].get("resourceVersion", "")
    b = current["metadata"].get("resourceVersion", "")
    return a.isdigit() and b.isdigit() and int(a) < int(b)
