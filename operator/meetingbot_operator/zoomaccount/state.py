"""What the rest of the operator may know of a ZoomAccount: its readiness and its pool as
decisions read them (`AccountState`), and what a meeting lookup found (`MeetingOwner`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from meetingbot_api import ZoomAccountSpec
from meetingbot_operator.identities.claims import AccountKey
from meetingbot_operator.zoom import SdkCredentials, ZoomClient

# Accounts that are not Ready, and bots waiting for one, are looked at again this often.
NOT_READY_RECHECK_SECONDS = 30.0


@dataclass(frozen=True)
class AccountState:
    ready: bool
    reason: str
    message: str
    users: tuple[str, ...] = ()  # the service users that can mint ZAKs now (Active)
    # The pool (identities/pool.py): every listed user, running attempts per user, the cap, and the
    # users Zoom refused, with why.
    all_users: tuple[str, ...] = ()
    loads: tuple[tuple[str, int], ...] = ()
    max_per_user: int | None = None
    unavailable: tuple[tuple[str, str], ...] = ()
    # spec.pool.provisioning may create one more user (fewer than maxUsers exist).
    can_provision: bool = False


class MeetingOwner(StrEnum):
    """What `GET /meetings/{id}` with the account's token said (auth: auto)."""

    OWN = "own"
    EXTERNAL = "external"  # not found with the account's token: another account's meeting
    UNKNOWN = "unknown"  # the app lacks the scope to look meetings up


@dataclass(frozen=True)
class ReadyAccount:
    """A Ready ZoomAccount as bots use it: its spec, its Zoom client and SDK credentials."""

    key: AccountKey
    spec: ZoomAccountSpec
    client: ZoomClient
    sdk: SdkCredentials
