"""The local control plane is a real Kubernetes: schema validation, garbage collection,
scheduling onto kwok nodes, and RBAC all behave as in a production cluster."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from tests.support.operator_fixtures import Kube, wait_for


@pytest.fixture
async def widget_crd(kube: Kube) -> AsyncIterator[tuple[str, str]]:
    """A throwaway CRD with a schema and a CEL rule, in a group of its own."""
    group = f"g{uuid.uuid4().hex[:8]}.test.meetingbot.dev"
    body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1},
                                        "color": {"type": "string", "enum": ["red", "blue"]},
                                    },
                                    "x-kubernetes-validations": [
                                        {
                                            "rule": "self.size <= 10",
                                            "message": "size must be at most 10",
                                        }
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    await kube.ext.create_custom_resource_definition(body)

    async def established() -> bool:
        crd = await kube.ext.read_custom_resource_definition(f"widgets.{group}")
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    await wait_for(established, timeout=30)
    yield group, "v1"
    await kube.ext.delete_custom_resource_definition(f"widgets.{group}")


async def create_widget(kube: Kube, group: str, namespace: str, spec: dict[str, Any]) -> Any:
    # A freshly established CRD can take a moment to be served by discovery.
    body = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        try:
            return await kube.custom.create_namespaced_custom_object(
                group, "v1", namespace, "widgets", body
            )
        except ApiException as error:
            if error.status != 404 or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.3)


async def test_crd_schema_and_cel_rules_are_enforced(
    kube: Kube, namespace: str, widget_crd: tuple[str, str]
) -> None:
    group, _ = widget_crd
    with pytest.raises(ApiException) as schema_error:
        await create_widget(kube, group, namespace, {"size": 0, "color": "green"})
    assert schema_error.value.status == 422
    message = json.loads(schema_error.value.body or "{}")["message"]
    assert "spec.size" in message
    assert "should be greater than or equal to 1" in message
    assert 'supported values: "red", "blue"' in message

    with pytest.raises(ApiException) as cel_error:
        await create_widget(kube, group, namespace, {"size": 11})
    assert cel_error.value.status == 422
    assert "size must be at most 10" in json.loads(cel_error.value.body or "{}")["message"]

    created = await create_widget(kube, group, namespace, {"size": 3, "color": "red"})
    assert created["spec"] == {"size": 3, "color": "red"}


async def test_owned_objects_are_garbage_collected(kube: Kube, namespace: str) -> None:
    owner = await kube.core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner.metadata.uid,
    }
    await kube.core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": "child", "ownerReferences": [reference]}, "stringData": {"a": "b"}},
    )
    await kube.core.delete_namespaced_config_map("owner", namespace)

    async def child_gone() -> bool:
        return not await kube.exists(kube.core.read_namespaced_secret, "child", namespace)

    await wait_for(child_gone, timeout=60)


async def test_pod_is_scheduled_to_a_kwok_node_and_runs(kube: Kube, namespace: str) -> None:
    nodes = (await kube.core.list_node(label_selector="type=kwok")).items
    assert nodes, "no kwok nodes"
    await kube.core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "runner"},
            "spec": {
                "containers": [{"name": "main", "image": "example.invalid/bot:1"}],
                "tolerations": [
                    {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
                ],
            },
        },
    )

    async def running() -> Any:
        current = await kube.core.read_namespaced_pod("runner", namespace)
        return current if current.status.phase == "Running" else None

    current = await wait_for(running, timeout=60)
    assert current.spec.node_name in {node.metadata.name for node in nodes}


async def test_service_account_without_permission_is_forbidden(kube: Kube, namespace: str) -> None:
    nobody = await kube.as_service_account(namespace, "nobody")
    try:
        as_nobody = nobody.core

        with pytest.raises(ApiException) as forbidden:
            await as_nobody.list_namespaced_secret(namespace)
        assert forbidden.value.status == 403
        message = json.loads(forbidden.value.body or "{}")["message"]
        assert f"system:serviceaccount:{namespace}:nobody" in message
        assert 'cannot list resource "secrets"' in message

        # The same identity is allowed once RBAC grants it, so the 403 came from authorization.
        await kube.rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "read-secrets"},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}],
            },
        )
        await kube.rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "read-secrets"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "read-secrets",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}],
            },
        )

        async def can_list() -> bool:
            try:
                await as_nobody.list_namespaced_secret(namespace)
            except ApiException:
                return False
            return True

        await wait_for(can_list, timeout=15)
    finally:
        await nobody.close()
