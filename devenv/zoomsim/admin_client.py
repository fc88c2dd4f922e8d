"""A small synchronous client for the simulator's admin API, used by tests and the demo."""

from __future__ import annotations

import time
from typing import Any

import httpx


class SimAdmin:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, path, json=body)
        response.raise_for_status()
        return response.json() if response.content else None

    def create_account(self, **fields: Any) -> dict[str, Any]:
        return dict(self._json("POST", "/sim/accounts", fields))

    def update_account(self, account_id: str, **fields: Any) -> dict[str, Any]:
        return dict(self._json("PATCH", f"/sim/accounts/{account_id}", fields))

    def revoke_tokens(self, account_id: str) -> int:
        return int(self._json("POST", f"/sim/accounts/{account_id}/revoke-tokens")["revoked"])

    def add_user(self, account_id: str, **fields: Any) -> dict[str, Any]:
        return dict(self._json("POST", f"/sim/accounts/{account_id}/users", fields))

    def account_users(self, account_id: str) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/sim/accounts/{account_id}/users"))

    def set_user_status(self, user_id: str, status: str) -> dict[str, Any]:
        return dict(self._json("POST", f"/sim/users/{user_id}/status/{status}"))

    def delete_user(self, user_id: str) -> None:
        self._json("DELETE", f"/sim/users/{user_id}")

    def deauthorize(self, user_id: str) -> dict[str, Any]:
        """The user removes the app: every refresh token of theirs stops working, and apps with
        a deauthorization URL are told; {"revoked": n, "notified": [HTTP statuses]}."""
        return dict(self._json("POST", f"/sim/users/{user_id}/deauthorize"))

    def sign_out_everywhere(self, user_id: str) -> int:
        return int(self._json("POST", f"/sim/users/{user_id}/signout")["revoked"])

    def authorize_user(self, user_id: str, scopes: str = "user:read:token") -> str:
        path = f"/sim/users/{user_id}/authorize?scopes={scopes}"
        return str(self._json("POST", path)["access_token"])

    def create_meeting(self, account_id: str, **fields: Any) -> dict[str, Any]:
        return dict(self._json("POST", "/sim/meetings", {"account_id": account_id, **fields}))

    def meeting(self, number: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/sim/meetings/{number}"))

    def update_meeting(self, number: str, **fields: Any) -> dict[str, Any]:
        return dict(self._json("PATCH", f"/sim/meetings/{number}", fields))

    def delete_meeting(self, number: str) -> None:
        self._json("DELETE", f"/sim/meetings/{number}")

    def meeting_deliveries(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/sim/meeting-deliveries"))

    def move_occurrence(self, number: str, occurrence_id: str, start_time: str) -> dict[str, Any]:
        path = f"/sim/meetings/{number}/occurrences/{occurrence_id}"
        return dict(self._json("PATCH", path, {"start_time": start_time}))

    def delete_occurrence(self, number: str, occurrence_id: str) -> dict[str, Any]:
        return dict(self._json("DELETE", f"/sim/meetings/{number}/occurrences/{occurrence_id}"))

    def participants(self, number: str, state: str | None = None) -> list[dict[str, Any]]:
        people = self.meeting(number)["participants"]
        return [p for p in people if state is None or p["state"] == state]

    def add_participant(self, number: str, name: str, **fields: Any) -> dict[str, Any]:
        body = {"name": name, **fields}
        return dict(self._json("POST", f"/sim/meetings/{number}/participants", body))

    def remove_participant(self, number: str, pid: str, mode: str = "remove") -> dict[str, Any]:
        return dict(self._json("DELETE", f"/sim/meetings/{number}/participants/{pid}?mode={mode}"))

    def admit(self, number: str, pid: str | None = None) -> Any:
        path = (
            f"/sim/meetings/{number}/participants/{pid}/admit"
            if pid
            else f"/sim/meetings/{number}/admit"
        )
        return self._json("POST", path)

    def script_media(self, number: str, **script: Any) -> dict[str, Any]:
        """Script speakers and chat (admin.script): each speaker is heard as its own tone."""
        return dict(self._json("POST", f"/sim/meetings/{number}/script", script))

    def end_meeting(self, number: str) -> dict[str, Any]:
        return dict(self._json("POST", f"/sim/meetings/{number}/end"))

    def start_rtms(self, number: str, app_account_id: str, **fields: Any) -> dict[str, Any]:
        """The host starts the app's realtime media stream (rtms.admin_start)."""
        body = {"app_account_id": app_account_id, **fields}
        return dict(self._json("POST", f"/sim/meetings/{number}/rtms", body))

    def rtms_stream(self, stream_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/sim/rtms/{stream_id}"))

    def rtms_streams(self, number: str | None = None) -> list[dict[str, Any]]:
        path = "/sim/rtms" + (f"?meeting={number}" if number else "")
        return list(self._json("GET", path))

    def drop_rtms(self, stream_id: str) -> dict[str, Any]:
        """The network between Zoom and the app breaks: both sockets close."""
        return dict(self._json("POST", f"/sim/rtms/{stream_id}/drop"))

    def stop_rtms(self, stream_id: str) -> dict[str, Any]:
        return dict(self._json("POST", f"/sim/rtms/{stream_id}/stop"))

    def validate_app_endpoint(self, account_id: str) -> bool:
        return bool(self._json("POST", f"/sim/apps/{account_id}/validate")["validated"])

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return dict(self._json("PUT", "/sim/faults", faults))

    def calls(self) -> dict[str, int]:
        return dict(self._json("GET", "/sim/calls"))

    def wait_reachable(self, timeout: float = 60.0) -> SimAdmin:
        """Wait until the admin API answers. Through a Service just created, kube-proxy
        refuses connections until it has programmed the Service's endpoints (a fresh-clone
        CI run met "connection refused" in the second after `helm install --wait`)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.calls()
                return self
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def issued_secrets(self) -> list[str]:
        return list(self._json("GET", "/sim/issued")["secrets"])

    def __enter__(self) -> SimAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()
