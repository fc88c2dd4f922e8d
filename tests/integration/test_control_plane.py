"""The local control plane is a real Kubernetes: schema validation, garbage collection,
scheduling onto kwok nodes, and RBAC all behave as in a production cluster."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.operator_fixtures import wait_for


@pytest.fixture
def widget_crd(api_client: client.ApiClient) -> Iterator[tuple[str, str]]:
    """A throwaway CRD with a schema and a CEL rule, in a group of its own."""
    group = f"g{uuid.uuid4().hex[:8]}.test.meetingbot.dev"
    ext = client.ApiextensionsV1Api(api_client)
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
    ext.create_custom_resource_definition(body)

    def established() -> bool:
        crd = ext.read_custom_resource_definition(f"widgets.{group}")
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    wait_for(established, timeout=30)
    yield group, "v1"
    ext.delete_custom_resource_definition(f"widgets.{group}")


def create_widget(
    api_client: client.ApiClient, group: str, namespace: str, spec: dict[str, Any]
) -> Any:
    custom = client.CustomObjectsApi(api_client)
    # A freshly established CRD can take a moment to be served by discovery.
    body = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}
    deadline = time.monotonic() + 15
    while True:
        try:
            return custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", body)
        except ApiException as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_crd_schema_and_cel_rules_are_enforced(
    api_client: client.ApiClient, namespace: str, widget_crd: tuple[str, str]
) -> None:
    group, _ = widget_crd
    with pytest.raises(ApiException) as schema_error:
        create_widget(api_client, group, namespace, {"size": 0, "color": "green"})
    assert schema_error.value.status == 422
    message = json.loads(schema_error.value.body or "{}")["message"]
    assert "spec.size" in message
    assert "should be greater than or equal to 1" in message
    assert 'supported values: "red", "blue"' in message

    with pytest.raises(ApiException) as cel_error:
        create_widget(api_client, group, namespace, {"size": 11})
    assert cel_error.value.status == 422
    assert "size must be at most 10" in json.loads(cel_error.value.body or "{}")["message"]

    created = create_widget(api_client, group, namespace, {"size": 3, "color": "red"})
    assert created["spec"] == {"size": 3, "color": "red"}


def test_owned_objects_are_garbage_collected(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="child", owner_references=[reference]),
            string_data={"k": "v"},
        ),
    )
    core.delete_namespaced_config_map("owner", namespace)

    def child_gone() -> bool:
        try:
            core.read_namespaced_secret("child", namespace)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(child_gone, timeout=60)


def test_pod_is_scheduled_to_a_kwok_node_and_runs(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    nodes = core.list_node(label_selector="type=kwok").items
    assert nodes, "the cluster has no kwok nodes"
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="runner"),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="main", image="example.invalid/bot:1")],
            tolerations=[
                client.V1Toleration(
                    key="kwok.x-k8s.io/node", operator="Exists", effect="NoSchedule"
                )
            ],
        ),
    )
    core.create_namespaced_pod(namespace, pod)

    def running() -> client.V1Pod | None:
        current = core.read_namespaced_pod("runner", namespace)
        return current if current.status.phase == "Running" else None

    current = wait_for(running, timeout=60)
    assert current.spec.node_name in {node.metadata.name for node in nodes}


def test_service_account_without_permission_is_forbidden(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token = core.create_namespaced_service_account_token(
        "nobody",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    ).status.token
    restricted = client.Configuration()
    restricted.host = api_client.configuration.host
    restricted.ssl_ca_cert = api_client.configuration.ssl_ca_cert
    restricted.verify_ssl = api_client.configuration.verify_ssl
    restricted.api_key = {"authorization": f"Bearer {token}"}
    as_nobody = client.CoreV1Api(client.ApiClient(restricted))

    with pytest.raises(ApiException) as forbidden:
        as_nobody.list_namespaced_secret(namespace)
    assert forbidden.value.status == 403
    message = json.loads(forbidden.value.body or "{}")["message"]
    assert f"system:serviceaccount:{namespace}:nobody" in message
    assert 'cannot list resource "secrets"' in message

    # The same identity is allowed once RBAC grants it, so the 403 came from authorization.
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="read-secrets"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="read-secrets"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="read-secrets"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="nobody", namespace=namespace)
            ],
        ),
    )
    wait_for(lambda: _can_list(as_nobody, namespace), timeout=15)


def _can_list(api: client.CoreV1Api, namespace: str) -> bool:
    try:
        api.list_namespaced_secret(namespace)
    except ApiException:
        return False
    return True
