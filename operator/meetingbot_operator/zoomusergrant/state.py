"""What the rest of the operator may know of a ZoomUserGrant."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GrantState:
    """A ZoomUserGrant as decisions see it: can it mint OBF tokens now, and if not, why."""

    ready: bool
    reason: str
    message: str
