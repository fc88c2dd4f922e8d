"""A ZoomUserGrant's consent links and states, signed with the release's key.

- The authorization link is `/oauth/start/{namespace}/{name}?t=<token>`, the token an HMAC
  of the grant's uid. Only whoever can read the grant's status has it; a grant deleted and
  created again under the same name gets a new one; a stranger who guesses names learns
  nothing (an unknown grant and a wrong token get the same answer).
- The state Zoom carries back to the callback is `{namespace}/{name}/{nonce}.{issued}.{mac}`
  and the PKCE verifier is derived from its nonce with the key. Starting a consent therefore
  writes nothing: each visit has its own state, and no visitor can cancel another's consent in
  progress by opening the link again. A state is redeemable for STATE_SECONDS, by this
  release only (its replicas share the key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

STATE_SECONDS = 600  # a consent must be completed within ten minutes
# The key is the report key; each use is separated by its own prefix.
LINK_PREFIX = b"meetingbot grant link:"
STATE_PREFIX = b"meetingbot grant state:"
VERIFIER_PREFIX = b"meetingbot grant pkce:"


@dataclass(frozen=True)
class Redeemed:
    namespace: str
    name: str
    verifier: str


class StateRefused(Exception):
    """A state that this release did not issue for that grant, or issued too long ago."""


class GrantLinks:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def link_token(self, uid: str) -> str:
        return self._mac(LINK_PREFIX, uid)[:32]

    def link_ok(self, uid: str, token: str) -> bool:
        return hmac.compare_digest(self.link_token(uid), token)

    def new_state(self, namespace: str, name: str, uid: str, now: float) -> tuple[str, str]:
        """(the state for Zoom's consent page, the PKCE S256 challenge)."""
        nonce = secrets.token_urlsafe(16)
        issued = str(int(now))
        mac = self._mac(STATE_PREFIX, f"{namespace}/{name}/{uid}/{nonce}/{issued}")
        verifier = self._verifier(uid, nonce)
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return f"{namespace}/{name}/{nonce}.{issued}.{mac}", challenge

    @staticmethod
    def grant_of(state: str) -> tuple[str, str]:
        """(namespace, name) the state names; checked by `redeem`, not here."""
        namespace, _, rest = state.partition("/")
        name, _, _ = rest.partition("/")
        return namespace, name

    def redeem(self, state: str, uid: str, now: float) -> Redeemed:
        """The grant and the PKCE verifier, if this release issued the state for the grant
        with that uid less than STATE_SECONDS ago; StateRefused otherwise."""
        namespace, name = self.grant_of(state)
        nonce, _, rest = state.rpartition("/")[2].partition(".")
        issued, _, mac = rest.partition(".")
        expected = self._mac(STATE_PREFIX, f"{namespace}/{name}/{uid}/{nonce}/{issued}")
        if not (nonce and issued.isdigit() and hmac.compare_digest(expected, mac)):
            raise StateRefused("this authorization link is unknown")
        if not 0 <= now - int(issued) < STATE_SECONDS:
            raise StateRefused("this authorization link has expired")
        return Redeemed(namespace, name, self._verifier(uid, nonce))

    def _verifier(self, uid: str, nonce: str) -> str:
        # 43 characters of base64url: within RFC 7636's 43..128 unreserved characters.
        raw = hmac.new(self._key, VERIFIER_PREFIX + f"{uid}/{nonce}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(raw.digest()).rstrip(b"=").decode()

    def _mac(self, prefix: bytes, message: str) -> str:
        return hmac.new(self._key, prefix + message.encode(), hashlib.sha256).hexdigest()
