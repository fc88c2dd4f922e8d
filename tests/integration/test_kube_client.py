"""The operator's own API client (kube/client.py) against the real API server: a stale
token logs in again, refusals carry the server's message and never the request, a watch
streams events until the server ends it, and requests waiting for a connection get it in turn."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from pathlib import Path

import pytest

from meetingbot_operator.kube.client import CONNECTIONS, ApiError, KubeClient, connection


async def test_a_stale_token_logs_in_again_once(
    operator_api: KubeClient,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As a service account's token rotated on disk: the one in memory is refused (401), the
    client reads the credentials again and the request goes through as that account."""
    accounts = f"/api/v1/namespaces/{namespace}/serviceaccounts"
    await operator_api.request("POST", accounts, body={"metadata": {"name": "reader"}})
    minted = await operator_api.request(
        "POST", f"{accounts}/reader/token", body={"spec": {"expirationSeconds": 600}}
    )
    admin = connection()
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": admin.server, "certificate-authority": admin.ca_path},
            }
        ],
        "users": [{"name": "u", "user": {"token": minted["status"]["token"]}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    (tmp_path / "config").write_text(json.dumps(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    rotated = connection()
    stale = KubeClient(dataclasses.replace(rotated, token="expired-token"))
    try:
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        answer = await stale.request(
            "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=review
        )
    finally:
        await stale.close()
    user = answer["status"]["userInfo"]["username"]
    assert user == f"system:serviceaccount:{namespace}:reader"
    # A watch refused the same way reads the credentials again: the next one goes through
    # (its caller, kube/watch.py, watches again after a refusal). It may see what it lists.
    await operator_api.request(
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
        body={"metadata": {"name": "reader"}, "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch"]}]},
    )  # fmt: skip
    await operator_api.request(
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        body={"metadata": {"name": "reader"}, "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]},
    )  # fmt: skip
    stale = KubeClient(dataclasses.replace(rotated, token="expired-token"))
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    try:
        with pytest.raises(ApiError) as refused:
            async for _ in stale.watch(path, {}, 1):
                pass
        assert refused.value.status == 401

        async def drain() -> list[dict[str, object]]:
            return [e async for e in stale.watch(path, {"labelSelector": "none=here"}, 1)]

        assert await asyncio.wait_for(drain(), 20) == []
    finally:
        await stale.close()


async def test_a_refusal_carries_the_servers_message_but_never_the_request(
    operator_api: KubeClient, namespace: str
) -> None:
    value = f"do-not-print-{uuid.uuid4().hex}"
    body = {"metadata": {"name": "Not_A_Valid_Name"}, "stringData": {"token": value}}
    with pytest.raises(ApiError) as refused:
        await operator_api.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body=body)
    assert refused.value.status == 422
    assert "Not_A_Valid_Name" in refused.value.message
    assert value not in str(refused.value) and value not in refused.value.message
    with pytest.raises(ApiError) as missing:
        await operator_api.request("GET", f"/api/v1/namespaces/{namespace}/secrets/nope")
    assert missing.value.status == 404 and str(missing.value) == "HTTP 404 Not Found"


async def test_a_watch_streams_events_until_the_server_ends_it(
    operator_api: KubeClient, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    # Only this test's objects: the namespace's own kube-root-ca.crt may appear at any time.
    mine = {"labelSelector": "test=watch"}
    listed = await operator_api.request("GET", path, params=mine)
    version = listed["metadata"]["resourceVersion"]

    async def first_event() -> dict[str, object]:
        async for event in operator_api.watch(path, {**mine, "resourceVersion": version}, 30):
            return event
        raise AssertionError("the watch ended without an event")

    watching = asyncio.create_task(first_event())
    # A large event (a Secret may hold up to 1 MiB) arrives whole.
    large = {
        "metadata": {"name": "seen", "labels": {"test": "watch"}},
        "data": {"blob": "x" * 300_000},
    }
    await operator_api.request("POST", path, body=large)
    event = await asyncio.wait_for(watching, 30)
    assert event["type"] == "ADDED"
    assert event["object"]["metadata"]["name"] == "seen"  # type: ignore[index]
    assert len(event["object"]["data"]["blob"]) == 300_000  # type: ignore[index]
    # The API server ends each watch request after its timeout; the stream then simply ends.
    latest = event["object"]["metadata"]["resourceVersion"]  # type: ignore[index]

    async def drain() -> list[dict[str, object]]:
        options = {**mine, "resourceVersion": latest}
        return [e async for e in operator_api.watch(path, options, 1)]

    assert await asyncio.wait_for(drain(), 20) == []


async def test_watches_never_leave_requests_without_a_connection(
    operator_api: KubeClient, namespace: str
) -> None:
    """With exact namespaces the operator keeps three watches open in each namespace it leads
    (kube/watch.py): for 11 namespaces, more than its requests' connection pool. Every watch
    must be open at once, and requests answered meanwhile."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    mine = {"labelSelector": "test=many-watches"}
    version = (await operator_api.request("GET", path, params=mine))["metadata"]["resourceVersion"]

    async def first_event() -> str:
        async for event in operator_api.watch(path, {**mine, "resourceVersion": version}, 60):
            return str(event["type"])
        raise AssertionError("the watch ended without an event")

    watches = [asyncio.create_task(first_event()) for _ in range(CONNECTIONS + 8)]
    try:
        await asyncio.sleep(2)  # the watches' requests are sent
        body = {"metadata": {"name": "seen", "labels": {"test": "many-watches"}}}
        await operator_api.request("POST", path, body=body, timeout=10)
        assert await asyncio.wait_for(asyncio.gather(*watches), 10) == ["ADDED"] * len(watches)
    finally:
        for task in watches:
            task.cancel()
        await asyncio.gather(*watches, return_exceptions=True)


async def test_requests_waiting_for_a_connection_are_served_in_turn(
    operator_api: KubeClient, namespace: str
) -> None:
    """More callers than connections (the operator's 100 reconcile workers and its CONNECTIONS
    connections; here three callers a connection): a worker whose answer just came must not
    take its connection straight back for its next request ahead of those already waiting.
    aiohttp's pool lets it (a connection back in the pool goes to whoever asks first): at 4000
    bots' reports, 68 passes waited 15-21 s for a connection while 32 workers kept theirs, and
    at 10 000, 138 status writes timed out waiting."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    answered: dict[int, list[float]] = {}

    async def worker(n: int) -> None:
        for _ in range(6):
            await operator_api.request("GET", path, params={"limit": "1"})
            answered.setdefault(n, []).append(time.monotonic())

    await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(3 * CONNECTIONS))), 60)
    last_first_answer = max(times[0] for times in answered.values())
    first_done = min(times[-1] for times in answered.values())
    assert last_first_answer < first_done, "a worker finished before another's first answer"
