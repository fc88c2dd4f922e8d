"""The simulator's world: accounts, apps, users, tokens, meetings and their participants.

Pure data and rules, no HTTP: rest.py, sdk.py and admin.py expose it. Every rule here follows
docs/zoom.md; where docs/zoom.md marks a fact uncertain the choice is written next to it.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt

Plan = Literal["pro", "business", "unlimited"]

# Requests per window (seconds) per plan and category (docs/zoom.md, Rate limits).
RATE_LIMITS: dict[str, dict[str, tuple[int, float]]] = {
    "pro": {"Light": (30, 1), "Medium": (20, 1), "Heavy": (10, 1), "Resource-intensive": (10, 60)},
    "business": {
        "Light": (80, 1),
        "Medium": (60, 1),
        "Heavy": (40, 1),
        "Resource-intensive": (20, 60),
    },
}
DAILY_CREATE_CAP = {"pro": 1500, "business": 10000}
ACCESS_TOKEN_SECONDS = 3599
ZAK_DEFAULT_TTL = 7200
ZAK_CUSTCREATE_DEFAULT_TTL = 90 * 24 * 3600
TOKEN_MAX_TTL = 365 * 24 * 3600
SIGNATURE_MIN_LIFETIME = 1800
SIGNATURE_MAX_LIFETIME = 48 * 3600
ADMIN_SCOPES = ("user:read:admin", "user:write:admin")
USER_APP_SCOPES = ("user:read:token", "user:read:user")
AUTH_CODE_SECONDS = 300  # an authorization code lives five minutes and is used once
REFRESH_TOKEN_SECONDS = 90 * 24 * 3600


def new_token(prefix: str) -> str:
    return f"{prefix}{secrets.token_urlsafe(32)}"


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class User:
    id: str
    email: str
    account_id: str
    type: int = 1
    status: str = "active"  # active | pending | inactive
    first_name: str = ""
    last_name: str = ""
    display_name: str = ""
    created_by: str = "create"
    pic_url: str = ""
    created_at: str = field(default_factory=lambda: _now_iso())
    # The uploaded profile picture's digest (sha256:<hex>): what tests check; Zoom shows the
    # picture at pic_url.
    picture_sha256: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "email": self.email,
            "type": self.type,
            "status": self.status,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "display_name": self.display_name or f"{self.first_name} {self.last_name}".strip(),
            "pic_url": self.pic_url,
        }


@dataclass
class Account:
    id: str
    client_id: str
    client_secret: str
    sdk_key: str
    sdk_secret: str
    plan: Plan = "pro"
    scopes: tuple[str, ...] = ADMIN_SCOPES
    app_published: bool = False  # Marketplace review passed: may join other accounts' meetings
    app_disabled: bool = False
    managed_domains: tuple[str, ...] = ()
    isv_partner: bool = False
    sso_enabled: bool = False
    # The account's user-managed ("General") OAuth app, for OBF: users of any account may
    # authorize it; Zoom redirects only to the URLs on its allow list (docs/zoom.md, OBF tokens).
    user_client_id: str = ""
    user_client_secret: str = ""
    redirect_urls: tuple[str, ...] = ()
    user_scopes: tuple[str, ...] = USER_APP_SCOPES
    # Where Zoom posts app_deauthorized when a user removes the app, signed with the app's
    # webhook secret token (x-zm-signature).
    deauthorization_url: str = ""
    webhook_secret_token: str = ""
    # RTMS (docs/rtms.md): the same General app, subscribed to meeting.rtms_started and
    # meeting.rtms_stopped, has them posted to its event notification endpoint; and whether
    # the host's account lets meetings share realtime content with apps.
    event_notification_url: str = ""
    rtms_allowed: bool = True
    # A second event subscription of the same app, with an endpoint of its own (Zoom lets an
    # app have several): meeting.created, meeting.updated and meeting.deleted of the
    # account's meetings (an account-level app) or of the meetings of the users who
    # authorized it (a user-managed app).
    meeting_events_url: str = ""
    users: dict[str, User] = field(default_factory=dict)

    def find_user(self, key: str) -> User | None:
        if key in self.users:
            return self.users[key]
        lowered = key.lower()
        return next((u for u in self.users.values() if u.email.lower() == lowered), None)


@dataclass
class AccessGrant:
    """An OAuth access token: an account's (S2S) or one user's (user OAuth, for OBF)."""

    account_id: str
    scopes: tuple[str, ...]
    expires_at: float
    user_id: str | None = None


@dataclass
class AuthCode:
    """An authorization code: bound to the app, the redirect URL and the PKCE challenge."""

    account_id: str  # the app's account
    user_id: str
    user_account_id: str
    redirect_uri: str
    challenge: str
    expires_at: float


@dataclass
class RefreshGrant:
    """A user's authorization of an app, as one refresh token. Each refresh rotates it: the
    old token stops working at once (docs/zoom.md, OBF tokens)."""

    app_account_id: str
    user_id: str
    user_account_id: str
    scopes: tuple[str, ...]
    expires_at: float


@dataclass
class IssuedToken:
    """A ZAK or an OBF token, checked by the meeting side at join time only."""

    kind: Literal["zak", "obf"]
    user_id: str
    account_id: str
    expires_at: float
    meeting_number: str | None = None
    revoked: bool = False


@dataclass
class Participant:
    id: str
    name: str
    kind: Literal["sdk", "human"]
    user_id: str | None = None
    avatar: str = ""
    is_host: bool = False
    state: Literal["waiting_room", "in_meeting", "left"] = "in_meeting"
    joined_at: float = field(default_factory=time.time)
    left_reason: str = ""
    inbox: asyncio.Queue[dict[str, Any]] | None = None
    # OBF: the user on whose behalf this participant joined; Zoom removes it when they leave.
    authorized_by: str | None = None
    # The tone this participant speaks with in scripted media (distinct per participant).
    tone_hz: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "userId": self.id,
            "displayName": self.name,
            "isHost": self.is_host,
            # The real SDK's raw user objects (roster events) say bHold; only its
            # getCurrentUser()/getAttendeeslist() add an isHold alias (the fake SDK does too).
            "bHold": self.state == "waiting_room",
            "avatar": self.avatar,
            "zoomUserId": self.user_id,
            "kind": self.kind,
            "state": self.state,
            "leftReason": self.left_reason,
        }


@dataclass
class Meeting:
    number: str
    account_id: str
    passcode: str = ""
    auth_required: bool = False
    waiting_room: bool = False
    host_present: bool = True
    join_before_host: bool = False
    locked: bool = False
    capacity: int = 100
    # Media (docs/capture.md): the audio path the fake SDK plays the meeting on ("wasm": an
    # AudioContext through an AudioWorklet; "wasm-element": an AudioContext handed to an
    # <audio> element; "webrtc": remote tracks played by an <audio> pool), whether the host's
    # account allows captions, and how the host answers a recording-permission request
    # ("grant", "deny", or "ignore": no answer, so the SDK denies after 10 s).
    audio_path: Literal["wasm", "wasm-element", "webrtc"] = "wasm"
    captions: bool = True
    recording_permission: Literal["grant", "deny", "ignore"] = "grant"
    # The scripted media (`script` in admin.py), sent to every client present or joining.
    script: dict[str, Any] | None = None
    chat_log: list[dict[str, Any]] = field(default_factory=list)  # what SDK clients sent
    ends_at: float | None = None
    ended: bool = False
    participants: dict[str, Participant] = field(default_factory=dict)
    # A scheduled meeting (Zoom's type 2), or a recurring one with a fixed time (type 8) when it
    # has occurrences: each {occurrence_id (its original start in ms), start_time, duration,
    # status "available" | "deleted"}, as `GET /meetings/{id}` lists them.
    topic: str = ""
    host_id: str = ""
    start_time: str = ""
    duration: int = 30
    occurrences: list[dict[str, Any]] = field(default_factory=list)

    def present(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.state != "left"]

    def public(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "accountId": self.account_id,
            "passcode": self.passcode,
            "authRequired": self.auth_required,
            "waitingRoom": self.waiting_room,
            "hostPresent": self.host_present,
            "joinBeforeHost": self.join_before_host,
            "locked": self.locked,
            "capacity": self.capacity,
            "audioPath": self.audio_path,
            "captions": self.captions,
            "recordingPermission": self.recording_permission,
            "chat": list(self.chat_log),
            "ended": self.ended,
            "participants": [p.public() for p in self.participants.values()],
            "topic": self.topic,
            "hostId": self.host_id,
            "startTime": self.start_time,
            "duration": self.duration,
            "occurrences": [dict(o) for o in self.occurrences],
        }


@dataclass
class Faults:
    """Fault injection, settable per test through the admin API."""

    error_rate: float = 0.0  # share of API calls answered with `error_status`
    error_status: int = 503
    latency_ms: int = 0
    outage: bool = False  # every OAuth and API call fails with 503
    rate_limit_headers: Literal["always", "sometimes", "never"] = "always"
    retry_after_format: Literal["seconds", "http-date", "iso", "none"] = "seconds"
    # User OAuth refreshes: a pause before the token is rotated, or after it was rotated and
    # before the answer leaves (where a client killed in between has lost the new token).
    refresh_delay_before_ms: int = 0
    refresh_delay_after_ms: int = 0
    # RTMS (docs/rtms.md): how often Zoom asks for a keep-alive on each connection and after
    # how many unanswered ones it closes it; how long a stream waits for the app to come back
    # (signaling 60 s, media 30 s); the webhook answer deadline (3 s) and Zoom's retries
    # after a late or failed answer (5, 30 and 90 minutes; tests shorten them).
    rtms_keepalive_seconds: float = 10.0
    rtms_keepalive_misses: int = 3
    rtms_signaling_grace_seconds: float = 60.0
    rtms_media_grace_seconds: float = 30.0
    rtms_webhook_timeout_seconds: float = 3.0
    rtms_webhook_retry_seconds: tuple[float, ...] = (300.0, 1800.0, 5400.0)


@dataclass
class RtmsStream:
    """One RTMS stream of one meeting to one app (devenv/zoomsim/rtms.py runs it)."""

    id: str
    meeting_uuid: str
    meeting: Meeting
    app: Account
    operator_id: str
    started_at: float = field(default_factory=time.time)
    state: Literal["started", "stopped"] = "started"
    stop_reason: int = 0
    # The app's connections: one signaling, one media (a second one of either replaces the
    # first, as Zoom does); whether the app said CLIENT_READY_ACK; what the media handshake
    # asked for (media_type bit mask and media_params), and whether audio is buffered until
    # the app is ready (buffer_data, Zoom's default true).
    signaling: Any = None
    media: Any = None
    ready: bool = False
    ever_ready: bool = False
    misses: dict[str, int] = field(default_factory=dict)  # unanswered keep-alives per socket
    media_type: int = 0
    media_params: dict[str, Any] = field(default_factory=dict)
    buffer_data: bool = True
    subscribed_events: set[int] = field(default_factory=set)
    # When the app's last connection of each kind went away (None: connected or never).
    signaling_lost_at: float | None = None
    media_lost_at: float | None = None
    # What the app was sent and how: webhook deliveries (event, HTTP status or error, seconds
    # to answer) and counts of media messages by msg_type, for the tests.
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    sent: Counter[int] = field(default_factory=Counter)
    first_audio_at: float | None = None  # when the app was sent its first audio (benchmarks)
    handshakes: int = 0
    task: asyncio.Task[None] | None = None


class JoinError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


# An account's generated identifiers: given explicitly, or made up.
IDS = frozenset(
    {
        "id",
        "client_id",
        "client_secret",
        "sdk_key",
        "sdk_secret",
        "user_client_id",
        "user_client_secret",
        "webhook_secret_token",
    }
)


@dataclass(frozen=True)
class RateWindow:
    """Where a request left its category's window: what the X-RateLimit-* headers say."""

    category: str
    limit: int
    count: int  # requests in the window, this one included
    reset_in: float  # seconds until the window resets

    @property
    def remaining(self) -> int:
        return max(self.limit - self.count, 0)

    @property
    def over(self) -> bool:
        return self.count > self.limit


class World:
    """Everything the simulator knows. Mutated only on the simulator's event loop."""

    def __init__(self, seed: int | None = None) -> None:
        self.accounts: dict[str, Account] = {}
        self.grants: dict[str, AccessGrant] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.meetings: dict[str, Meeting] = {}
        self.faults = Faults()
        self.calls: Counter[str] = Counter()  # "<account>:<endpoint>" and "<account>:429"
        self.windows: dict[tuple[str, str], tuple[int, int]] = {}
        self.daily_creates: Counter[tuple[str, int]] = Counter()
        self.random = random.Random(seed)
        self.issued_secrets: list[str] = []  # every token handed out, for leak checks in tests
        self.auth_codes: dict[str, AuthCode] = {}
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        self.rtms_streams: dict[str, RtmsStream] = {}
        # Where apps reach the RTMS signaling servers (ws://host:port); the simulator sets it
        # to the address pods reach (server.py); empty: the address the start request used.
        self.rtms_base_url = ""
        # Meeting webhooks posted (meeting_events.py): event, meeting, url, status, seconds.
        self.meeting_deliveries: list[dict[str, Any]] = []

    # --- accounts, users ----------------------------------------------------------------

    def add_account(self, **fields: Any) -> Account:
        rest: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in fields.items() if k not in IDS
        }
        account = Account(
            id=fields.pop("id", None) or secrets.token_hex(8),
            client_id=fields.pop("client_id", None) or secrets.token_hex(10),
            client_secret=fields.pop("client_secret", None) or secrets.token_urlsafe(24),
            sdk_key=fields.pop("sdk_key", None) or secrets.token_hex(10),
            sdk_secret=fields.pop("sdk_secret", None) or secrets.token_urlsafe(24),
            user_client_id=fields.pop("user_client_id", None) or secrets.token_hex(10),
            user_client_secret=fields.pop("user_client_secret", None) or secrets.token_urlsafe(24),
            webhook_secret_token=fields.pop("webhook_secret_token", None) or secrets.token_hex(11),
            **rest,
        )
        self.accounts[account.id] = account
        return account

    def add_user(self, account: Account, email: str, **fields: Any) -> User:
        user = User(
            id=fields.pop("id", None) or secrets.token_hex(11),
            email=email,
            account_id=account.id,
            **fields,
        )
        if not user.pic_url:
            user.pic_url = f"/sim/avatars/{user.id}.png"
        account.users[user.id] = user
        return user

    def delete_user(self, account: Account, user: User) -> None:
        """A deleted (or disassociated) user's ZAKs stop working with it: a join with one is
        refused as an invalid ZAK, like any ZAK Zoom no longer knows."""
        self.sign_out_everywhere(user.id)
        del account.users[user.id]

    def account_for_sdk_key(self, key: str) -> Account | None:
        return next((a for a in self.accounts.values() if a.sdk_key == key), None)

    # --- tokens ---------------------------------------------------------------------------

    def grant(self, account: Account, scopes: tuple[str, ...], user_id: str | None = None) -> str:
        token = new_token("simat_")
        self.grants[token] = AccessGrant(
            account.id, scopes, time.monotonic() + ACCESS_TOKEN_SECONDS, user_id
        )
        self.issued_secrets.append(token)
        return token

    def issue(self, kind: Literal["zak", "obf"], user: User, ttl: int, meeting: str | None) -> str:
        token = new_token("simzak_" if kind == "zak" else "simobf_")
        self.tokens[token] = IssuedToken(kind, user.id, user.account_id, time.time() + ttl, meeting)
        self.issued_secrets.append(token)
        return token

    # --- user OAuth (the authorization code grant with PKCE, for OBF) ----------------------

    def app_for_client(self, client_id: str) -> Account | None:
        return next((a for a in self.accounts.values() if a.user_client_id == client_id), None)

    def find_any_user(self, key: str) -> User | None:
        """The authorizing user may belong to any account (the meeting's, typically)."""
        for account in self.accounts.values():
            user = account.find_user(key)
            if user is not None:
                return user
        return None

    def new_code(self, app: Account, user: User, redirect_uri: str, challenge: str) -> str:
        code = secrets.token_urlsafe(24)
        self.auth_codes[code] = AuthCode(
            app.id,
            user.id,
            user.account_id,
            redirect_uri,
            challenge,
            time.time() + AUTH_CODE_SECONDS,
        )
        return code

    def user_tokens(
        self, app: Account, user_id: str, user_account_id: str, scopes: tuple[str, ...]
    ) -> tuple[str, str]:
        """An access token (the user's) and a fresh refresh token for `app`."""
        access = self.grant(self.accounts[user_account_id], scopes, user_id=user_id)
        refresh = new_token("simrt_")
        self.refresh_tokens[refresh] = RefreshGrant(
            app.id, user_id, user_account_id, scopes, time.time() + REFRESH_TOKEN_SECONDS
        )
        self.issued_secrets.append(refresh)
        return access, refresh

    def authorized_apps(self, user_id: str) -> list[Account]:
        """The apps the user has authorized (holds a refresh token of)."""
        ids = {g.app_account_id for g in self.refresh_tokens.values() if g.user_id == user_id}
        return [self.accounts[i] for i in sorted(ids)]

    def deauthorize(self, user_id: str) -> int:
        """The user removed the app (or an admin did): its refresh tokens and the user's
        access tokens stop working."""
        gone = [t for t, g in self.refresh_tokens.items() if g.user_id == user_id]
        for token in gone:
            del self.refresh_tokens[token]
        for token in [t for t, g in self.grants.items() if g.user_id == user_id]:
            del self.grants[token]
        return len(gone)

    def sign_out_everywhere(self, user_id: str) -> int:
        """Zoom's "sign me out from all devices": every ZAK of the user stops working."""
        count = 0
        for issued in self.tokens.values():
            if issued.user_id == user_id and issued.kind == "zak" and not issued.revoked:
                issued.revoked = True
                count += 1
        return count

    # --- rate limits ----------------------------------------------------------------------

    def count_request(self, account: Account, category: str) -> RateWindow | None:
        """Count one request in its fixed window; None for accounts without limits."""
        if account.plan == "unlimited":
            return None
        limit, period = RATE_LIMITS[account.plan][category]
        now = time.time()
        window = int(now // period)
        key = (account.id, category)
        current, count = self.windows.get(key, (window, 0))
        if current != window:
            current, count = window, 0
        count += 1
        self.windows[key] = (current, count)
        return RateWindow(category, limit, count, (window + 1) * period - now)

    # --- the meeting side -----------------------------------------------------------------

    def verify_signature(self, signature: str, meeting_number: str) -> tuple[Account, int]:
        """Check an SDK JWT as Zoom does: key, HS256 with the SDK secret, lifetime, meeting."""
        try:
            claims = jwt.decode(signature, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise JoinError(3712, "Invalid signature.") from None
        key = claims.get("appKey") or claims.get("sdkKey")
        account = self.account_for_sdk_key(str(key)) if key else None
        if account is None:
            raise JoinError(3712, "Invalid signature.")
        try:
            jwt.decode(
                signature,
                account.sdk_secret,
                algorithms=["HS256"],
                options={"verify_exp": False, "require": ["iat", "exp"]},
            )
        except jwt.PyJWTError:
            raise JoinError(3712, "Invalid signature.") from None
        iat, exp = int(claims["iat"]), int(claims["exp"])
        if exp < time.time():
            raise JoinError(3705, "The signature has expired.")
        if not SIGNATURE_MIN_LIFETIME <= exp - iat <= SIGNATURE_MAX_LIFETIME:
            raise JoinError(3712, "Invalid signature.")
        if str(claims.get("mn", "")) != meeting_number:
            raise JoinError(3706, "The meeting number is wrong.")
        role = int(claims.get("role", 0))
        if role not in (0, 1):
            raise JoinError(3712, "Invalid signature.")
        return account, role

    def join(
        self,
        *,
        signature: str,
        meeting_number: str,
        user_name: str,
        passcode: str = "",
        zak: str = "",
        obf_token: str = "",
    ) -> tuple[Meeting, Participant]:
        app_account, role = self.verify_signature(signature, meeting_number)
        meeting = self.meetings.get(meeting_number)
        if meeting is None or meeting.ended:
            raise JoinError(3001, "Meeting does not exist.")
        if zak and obf_token:
            raise JoinError(4018, "The OBF token conflicts with the login user.")
        if meeting.passcode and passcode != meeting.passcode:
            raise JoinError(3004, "Wrong meeting passcode.")
        if meeting.account_id != app_account.id:
            if not app_account.app_published:
                raise JoinError(4011, "This app can not join meetings hosted by other accounts.")
            if not zak and not obf_token:
                raise JoinError(4012, "Anonymous join is blocked for meetings of other accounts.")
        user: User | None = None
        if zak:
            user = self._check_zak(zak)
        if obf_token:
            user = self._check_obf(obf_token, meeting)
        if role == 1 and (user is None or meeting.account_id != user.account_id):
            raise JoinError(3712, "Invalid signature.")
        if meeting.auth_required and user is None:
            raise JoinError(3100, "This meeting is for authorized attendees only. Please sign in.")
        if meeting.locked:
            raise JoinError(4006, "The meeting is locked.")
        if len([p for p in meeting.present() if p.state == "in_meeting"]) >= meeting.capacity:
            raise JoinError(4005, "The meeting has reached its capacity.")
        if not meeting.host_present and not meeting.join_before_host:
            raise JoinError(3008, "The meeting has not started.")
        participant = Participant(
            id=secrets.token_hex(6),
            name=user_name,
            kind="sdk",
            user_id=user.id if user else None,
            avatar=user.pic_url if user else "",
            state="waiting_room" if meeting.waiting_room else "in_meeting",
            authorized_by=user.id if obf_token and user else None,
        )
        meeting.participants[participant.id] = participant
        return meeting, participant

    def _check_zak(self, zak: str) -> User:
        # A ZAK is checked here, at join time, and nowhere else: expiry later does not eject.
        issued = self.tokens.get(zak)
        if (
            issued is None
            or issued.kind != "zak"
            or issued.revoked
            or issued.expires_at < time.time()
        ):
            raise JoinError(3265, "The ZAK is invalid or expired.")
        user = self.accounts[issued.account_id].users.get(issued.user_id)
        if user is None:  # deleted since: its ZAKs went with it
            raise JoinError(3265, "The ZAK is invalid or expired.")
        return user

    def _check_obf(self, token: str, meeting: Meeting) -> User:
        issued = self.tokens.get(token)
        if issued is None or issued.kind != "obf" or issued.expires_at < time.time():
            raise JoinError(4014, "The OBF token is invalid.")
        if issued.meeting_number and issued.meeting_number != meeting.number:
            raise JoinError(4015, "The OBF token does not match the meeting.")
        present_users = {p.user_id for p in meeting.present() if p.state == "in_meeting"}
        if issued.user_id not in present_users:
            raise JoinError(4017, "The authorizing user is not in the meeting.")
        return self.accounts[issued.account_id].users[issued.user_id]
