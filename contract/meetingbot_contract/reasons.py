"""Every reason a bot or a Zoom call can end with, and whether it is worth another attempt.

Reasons are CamelCase and an open set (clients must not treat them as a closed enum): an
unknown reason is treated as transient, so a newer bot image reporting something this table
does not know gets a bounded retry rather than a silent permanent failure.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # Zoom API and credentials
    ZOOM_CREDENTIALS_INVALID = "ZoomCredentialsInvalid"
    ZOOM_SCOPE_MISSING = "ZoomScopeMissing"
    ZOOM_USER_NOT_FOUND = "ZoomUserNotFound"
    ZOOM_USER_INACTIVE = "ZoomUserInactive"
    ZOOM_USER_EXISTS = "ZoomUserExists"
    ZOOM_RATE_LIMITED = "ZoomRateLimited"
    ZOOM_DAILY_LIMIT = "ZoomDailyLimitReached"
    ZOOM_UNAVAILABLE = "ZoomUnavailable"
    ZOOM_REQUEST_INVALID = "ZoomRequestInvalid"
    # Joining a meeting
    MEETING_NOT_FOUND = "MeetingNotFound"
    WRONG_PASSCODE = "WrongPasscode"
    MEETING_NOT_STARTED = "MeetingNotStarted"
    AUTHENTICATION_REQUIRED = "AuthenticationRequired"
    REGISTRATION_REQUIRED = "RegistrationRequired"
    ZAK_INVALID = "ZakInvalid"
    OBF_INVALID = "ObfTokenInvalid"
    # 4014/4015: the OBF token was refused (expired, or for another meeting): a new attempt
    # mints a new one for this meeting.
    OBF_TOKEN_REJECTED = "ObfTokenRejected"  # noqa: S105 - a reason, not a password
    OBF_USER_NOT_IN_MEETING = "ObfUserNotInMeeting"
    # OBF: Zoom removed the bot because its authorizing user left (4019): the bot's job is done.
    AUTHORIZING_USER_LEFT = "AuthorizingUserLeft"
    SIGNATURE_INVALID = "SignatureInvalid"
    SIGNATURE_EXPIRED = "SignatureExpired"
    CROSS_ACCOUNT_NOT_ALLOWED = "CrossAccountJoinNotAllowed"
    BLOCKED_BY_ZOOM = "BlockedByZoom"
    MEETING_FULL = "MeetingFull"
    MEETING_LOCKED = "MeetingLocked"
    JOIN_FAILED = "JoinFailed"
    # Leaving a meeting
    WAITING_ROOM_TIMEOUT = "WaitingRoomTimeout"
    NO_ONE_JOINED = "NoOneJoined"
    REMOVED_BY_HOST = "RemovedByHost"
    MEETING_ENDED = "MeetingEnded"
    EVERYONE_LEFT = "EveryoneLeft"
    MAX_DURATION_REACHED = "MaxDurationReached"
    CANCELED = "Canceled"
    COMPLETED = "Completed"  # the bot exited 0 without saying why
    BOT_CONFIG_INVALID = "BotConfigInvalid"  # the bot could not read its join configuration
    # Capture (spec.capture.onDenied: Leave): the host refused recording, or no host answered.
    RECORDING_DENIED = "RecordingDenied"
    HOST_ABSENT = "HostAbsent"
    # Before the pod
    ZOOM_ACCOUNT_NOT_FOUND = "ZoomAccountNotFound"
    ZOOM_ACCOUNT_NOT_READY = "ZoomAccountNotReady"
    USER_NOT_IN_ACCOUNT = "ZoomUserNotInAccount"
    # OBF grants (ZoomUserGrant): the bot waits until the grant is Ready.
    GRANT_NOT_FOUND = "ZoomUserGrantNotFound"
    GRANT_NOT_READY = "ZoomUserGrantNotReady"
    # The grant's botSelector does not select this MeetingBot.
    GRANT_NOT_FOR_BOT = "ZoomUserGrantNotForThisBot"
    # auth: auto found the meeting outside the account and no grant to join on behalf of.
    OBF_REQUIRED = "ObfRequiredForExternalMeeting"
    # Every service user is Unavailable or serves maxBotsPerUser bots: the bot waits.
    NO_SERVICE_USER_AVAILABLE = "NoServiceUserAvailable"
    SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 - a reason, not a password
    # A referenced Secret lacks the opt-in label for this use (see secrets.py).
    SECRET_NOT_ALLOWED = "SecretNotAllowed"  # noqa: S105 - a reason, not a password
    # The API server refused the operator's read of a referenced Secret (its RBAC, a policy).
    SECRET_UNREADABLE = "SecretUnreadable"  # noqa: S105 - a reason, not a password
    ZOOM_ENDPOINT_NOT_ALLOWED = "ZoomEndpointNotAllowed"
    # spec.artifacts names an S3 endpoint the operator does not allow (storage_endpoints).
    STORAGE_ENDPOINT_NOT_ALLOWED = "StorageEndpointNotAllowed"
    STREAM_ENDPOINT_NOT_ALLOWED = "StreamEndpointNotAllowed"
    # A MeetingStream met an operator running more than one shard (it serves none).
    SHARDED_OPERATOR = "ShardedOperator"
    IMAGE_NOT_ALLOWED = "ImageNotAllowed"
    SPEC_INVALID = "SpecInvalid"
    # Creating the bot's children
    NAME_CONFLICT = "NameConflict"  # a Pod or Secret of the child's name exists and is not ours
    POD_SPEC_INVALID = "PodSpecInvalid"  # the API server refused the pod (422/400)
    POD_FORBIDDEN = "PodForbidden"  # refused by admission policy (PodSecurity)
    POD_QUOTA_EXCEEDED = "PodQuotaExceeded"
    # The pod
    BOT_CRASHED = "BotCrashed"
    POD_FAILED = "PodFailed"
    OOM_KILLED = "OOMKilled"  # the container went over its memory limit
    # Stopped by someone other than the operator: eviction, drain, preemption, deletion.
    POD_DISRUPTED = "PodDisrupted"
    IMAGE_PULL_FAILED = "ImagePullFailed"
    START_TIMEOUT = "StartTimeout"  # no report within spec.startTimeoutSeconds
    BOT_UNRESPONSIVE = "BotUnresponsive"  # reports stopped for several report intervals
    # RTMS (MeetingStream): waiting for Zoom to start a stream; a stream started (a worker
    # connects); a worker receives it; Zoom stopped it (for another reason than the
    # meeting's end, which is MeetingEnded); it could not be reached again within Zoom's 30 s.
    WAITING_FOR_STREAM = "WaitingForStream"
    STREAM_STARTED = "StreamStarted"
    STREAM_CONNECTED = "StreamConnected"
    STREAM_STOPPED = "StreamStopped"
    STREAM_LOST = "StreamLost"


# The one table: True means another attempt (new pod, fresh ZAK) may succeed.
TRANSIENT: dict[Reason, bool] = {
    Reason.ZOOM_CREDENTIALS_INVALID: False,
    Reason.ZOOM_SCOPE_MISSING: False,
    Reason.ZOOM_USER_NOT_FOUND: False,
    Reason.ZOOM_USER_INACTIVE: False,
    Reason.ZOOM_USER_EXISTS: False,
    Reason.ZOOM_RATE_LIMITED: True,
    Reason.ZOOM_DAILY_LIMIT: True,
    Reason.ZOOM_UNAVAILABLE: True,
    Reason.ZOOM_REQUEST_INVALID: False,
    Reason.MEETING_NOT_FOUND: False,
    Reason.WRONG_PASSCODE: False,
    Reason.MEETING_NOT_STARTED: True,
    Reason.AUTHENTICATION_REQUIRED: False,
    Reason.REGISTRATION_REQUIRED: False,
    Reason.ZAK_INVALID: True,  # e.g. signed out from all devices: a fresh ZAK may work
    Reason.OBF_INVALID: False,
    Reason.OBF_TOKEN_REJECTED: True,
    Reason.OBF_USER_NOT_IN_MEETING: True,
    Reason.AUTHORIZING_USER_LEFT: False,
    Reason.SIGNATURE_INVALID: False,
    Reason.SIGNATURE_EXPIRED: True,
    Reason.CROSS_ACCOUNT_NOT_ALLOWED: False,
    Reason.BLOCKED_BY_ZOOM: False,  # never retried blindly: Zoom's bot detection said no
    Reason.MEETING_FULL: False,
    Reason.MEETING_LOCKED: False,
    Reason.JOIN_FAILED: True,
    Reason.RECORDING_DENIED: False,
    Reason.HOST_ABSENT: False,
    Reason.STORAGE_ENDPOINT_NOT_ALLOWED: False,
    Reason.STREAM_ENDPOINT_NOT_ALLOWED: False,
    Reason.SHARDED_OPERATOR: False,
    Reason.WAITING_ROOM_TIMEOUT: False,
    Reason.NO_ONE_JOINED: False,
    Reason.REMOVED_BY_HOST: False,
    Reason.MEETING_ENDED: False,
    Reason.EVERYONE_LEFT: False,
    Reason.MAX_DURATION_REACHED: False,
    Reason.CANCELED: False,
    Reason.COMPLETED: False,
    Reason.BOT_CONFIG_INVALID: False,
    Reason.ZOOM_ACCOUNT_NOT_FOUND: True,
    Reason.ZOOM_ACCOUNT_NOT_READY: True,
    Reason.USER_NOT_IN_ACCOUNT: False,
    Reason.GRANT_NOT_FOUND: True,
    Reason.GRANT_NOT_READY: True,
    Reason.GRANT_NOT_FOR_BOT: False,
    Reason.OBF_REQUIRED: False,
    Reason.NO_SERVICE_USER_AVAILABLE: True,
    Reason.SECRET_NOT_FOUND: True,
    Reason.SECRET_NOT_ALLOWED: False,
    Reason.SECRET_UNREADABLE: True,  # an RBAC or policy fix makes it readable
    Reason.ZOOM_ENDPOINT_NOT_ALLOWED: False,
    Reason.IMAGE_NOT_ALLOWED: False,
    Reason.SPEC_INVALID: False,
    Reason.NAME_CONFLICT: True,  # usually an old pod the garbage collector is removing
    Reason.POD_SPEC_INVALID: False,
    Reason.POD_FORBIDDEN: False,
    Reason.POD_QUOTA_EXCEEDED: True,
    Reason.BOT_CRASHED: True,
    Reason.POD_FAILED: True,
    Reason.OOM_KILLED: True,  # a spike may not recur; a steady excess fails every attempt
    Reason.POD_DISRUPTED: True,
    Reason.IMAGE_PULL_FAILED: False,
    Reason.START_TIMEOUT: True,
    Reason.BOT_UNRESPONSIVE: True,
    Reason.WAITING_FOR_STREAM: True,
    Reason.STREAM_STARTED: True,
    Reason.STREAM_CONNECTED: True,
    Reason.STREAM_STOPPED: False,
    Reason.STREAM_LOST: False,
}

# A bot that left for one of these did its job: the MeetingBot Succeeded.
SUCCESS: frozenset[str] = frozenset(
    {
        Reason.MEETING_ENDED,
        Reason.AUTHORIZING_USER_LEFT,
        Reason.EVERYONE_LEFT,
        Reason.NO_ONE_JOINED,
        Reason.MAX_DURATION_REACHED,
        Reason.CANCELED,
        Reason.COMPLETED,
    }
)

# Problems of the account rather than of one bot: bots wait for the account to be fixed.
ACCOUNT_LEVEL: frozenset[str] = frozenset(
    {
        Reason.ZOOM_CREDENTIALS_INVALID,
        Reason.ZOOM_SCOPE_MISSING,
        Reason.ZOOM_ACCOUNT_NOT_FOUND,
        Reason.ZOOM_ACCOUNT_NOT_READY,
        Reason.ZOOM_ENDPOINT_NOT_ALLOWED,
    }
)


def is_transient(reason: str) -> bool:
    """Whether another attempt may succeed; reasons outside the table count as transient."""
    try:
        return TRANSIENT[Reason(reason)]
    except ValueError:
        return True


# Zoom Meeting SDK join and in-meeting error codes (docs/zoom.md, Meeting SDK for Web; OBF
# tokens) to reasons. Where the documentation is silent, the meaning is the one the 6.2.0
# bundle gives the code (its own message strings, quoted).
SDK_ERROR_REASONS: dict[int, Reason] = {
    3000: Reason.JOIN_FAILED,
    3001: Reason.MEETING_NOT_FOUND,
    3004: Reason.WRONG_PASSCODE,
    3008: Reason.MEETING_NOT_STARTED,
    3009: Reason.REMOVED_BY_HOST,  # "user has been removed" (and may not rejoin)
    3099: Reason.REGISTRATION_REQUIRED,
    3100: Reason.AUTHENTICATION_REQUIRED,
    3265: Reason.ZAK_INVALID,
    3623: Reason.ZAK_INVALID,
    3633: Reason.ZOOM_RATE_LIMITED,
    3634: Reason.BLOCKED_BY_ZOOM,
    3705: Reason.SIGNATURE_EXPIRED,
    3706: Reason.MEETING_NOT_FOUND,
    3707: Reason.MEETING_NOT_FOUND,
    3712: Reason.SIGNATURE_INVALID,
    # The bundle shows 3610 both for "meeting does not exist" and for an expired token (124):
    # worth one more attempt with fresh tokens, not a permanent MeetingNotFound.
    3610: Reason.JOIN_FAILED,
    4003: Reason.JOIN_FAILED,  # "invalid parameter"
    4004: Reason.MEETING_ENDED,  # "meeting ended"
    4005: Reason.MEETING_FULL,
    4006: Reason.MEETING_LOCKED,
    4011: Reason.CROSS_ACCOUNT_NOT_ALLOWED,
    4012: Reason.AUTHENTICATION_REQUIRED,
    4013: Reason.OBF_INVALID,
    4014: Reason.OBF_TOKEN_REJECTED,  # invalid or expired: minted again for the next attempt
    4015: Reason.OBF_TOKEN_REJECTED,  # for another meeting
    4017: Reason.OBF_USER_NOT_IN_MEETING,
    4016: Reason.ZAK_INVALID,  # "recording token expired": retried with fresh tokens
    4018: Reason.OBF_INVALID,
    4019: Reason.AUTHORIZING_USER_LEFT,  # "bot user kicked due to master leaving"
    # Refused by the SDK itself, before any network call: the page's own mistakes.
    5012: Reason.JOIN_FAILED,  # CLIENT_DUPLICATED_JOIN: join() called twice
    5013: Reason.BOT_CONFIG_INVALID,  # CLIENT_INVALID_JOIN_PARAMETER: zak with obfToken, no name
}


def reason_for_sdk_error(code: int) -> Reason:
    return SDK_ERROR_REASONS.get(code, Reason.JOIN_FAILED)
