"""Service users the operator creates (spec.pool.provisioning) when bots find every user busy.

The count of created users is read from Zoom (the template's addresses among the account's
active and pending users), never from memory, so a restart cannot exceed maxUsers. A user made
with `create` stays pending (Unavailable) until they accept Zoom's invitation.
"""

from __future__ import annotations

from datetime import UTC, datetime

from meetingbot_api import Provisioning
from meetingbot_contract.reasons import Reason
from meetingbot_operator.identities.pool import UserPool
from meetingbot_operator.zoom import ZoomClient, ZoomError

PENDING = "pending: the user has not accepted Zoom's invitation yet"
# One run at a time per account; a failed one waits this long before the next may start.
PROVISION_BACKOFF_SECONDS = 30.0


async def discover(
    client: ZoomClient, provisioning: Provisioning, pool: UserPool
) -> tuple[str, ...]:
    """The template's users as Zoom has them, in template order; pending ones are Unavailable."""
    found: list[str] = []
    for state in ("active", "pending"):
        for user in await client.list_users(state):
            if provisioning.index(user.email) is not None:
                found.append(user.email.lower())
                if state == "pending":
                    pool.mark_unavailable(
                        user.email.lower(), Reason.ZOOM_USER_INACTIVE, PENDING, datetime.now(UTC)
                    )
    return tuple(sorted(set(found), key=lambda e: provisioning.index(e) or 0))


async def create_next(
    client: ZoomClient, provisioning: Provisioning, provisioned: tuple[str, ...], pool: UserPool
) -> str | None:
    """Create the template's first free user (POST /v2/users); its email, or None when
    maxUsers exist. A user Zoom already has (1005) is adopted."""
    taken = {provisioning.index(e) for e in provisioned}
    free = [n for n in range(1, provisioning.max_users + 1) if n not in taken]
    if not free:
        return None
    email = provisioning.email(free[0])
    try:
        await client.create_user(
            provisioning.action,
            email,
            user_type=provisioning.user_type,
            first_name="Meeting",
            last_name=f"Bot {free[0]}",
        )
    except ZoomError as error:
        if error.reason != Reason.ZOOM_USER_EXISTS:
            raise
    if provisioning.action == "create":
        # Zoom emails an invitation; no ZAK until the user accepts it.
        pool.mark_unavailable(email.lower(), Reason.ZOOM_USER_INACTIVE, PENDING, datetime.now(UTC))
    return email.lower()
