"""The one error type of the Zoom layer: a reason from the table, and whether to retry."""

from __future__ import annotations

from meetingbot_operator.reasons import Reason, is_transient


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
