"""The one error type of the Zoom layer: a reason from the table, and whether to retry."""

from __future__ import annotations

from meetingbot_contract.reasons import Reason, is_transient

# Zoom's documented error codes in our own words. Messages shown in status and logs are
# built from these, never from the text a remote endpoint sent: a status must not become a
# channel that echoes whatever a (possibly misconfigured) endpoint answers.
CODE_MEANINGS: dict[int, str] = {
    124: "invalid access token",
    200: "no permission",
    300: "invalid request",
    1001: "the user does not exist",
    1005: "the user already exists in the account",
    1120: "the user is not active",
    4700: "invalid token",
    4702: "invalid client id or client secret",
    4704: "invalid client id or client secret",
    4705: "unsupported grant type",
    4706: "required fields missing",
    4711: "the token lacks a required scope",
    4717: "the app has been disabled",
}


def describe(status: int, code: int | None, fallback: str = "") -> str:
    """`HTTP 404, Zoom code 1001 (the user does not exist)`: only numbers and our own words."""
    text = f"HTTP {status}"
    if code is not None:
        text += f", Zoom code {code}"
        meaning = CODE_MEANINGS.get(code, fallback)
    else:
        meaning = fallback
    return f"{text} ({meaning})" if meaning else text


class ZoomError(Exception):
    """A Zoom call that failed. The message is safe to log: it never holds a token.

    `code` is Zoom's numeric error code when the response carried one.
    """

    def __init__(
        self,
        reason: Reason,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return is_transient(self.reason)

    def __str__(self) -> str:
        details = ", ".join(
            f"{name}={value}"
            for name, value in (("status", self.status), ("code", self.code))
            if value is not None
        )
        return f"{self.reason}: {self.message}" + (f" ({details})" if details else "")

    def __repr__(self) -> str:
        return f"ZoomError({self})"
