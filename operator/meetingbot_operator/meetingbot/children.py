"""What a bot's Secret and Pod look like: pure builders, the only place that knows.

The pod runs the bot image with the join Secret mounted read-only, no service-account
token, as a non-root user with a read-only root file system, no capabilities, the runtime's
default seccomp profile, requests and limits, and a grace period long enough to leave the
meeting cleanly. Chromium writes only to the emptyDirs mounted for it (/tmp, $HOME, /dev/shm).
"""

from __future__ import annotations

from typing import Any

from meetingbot_api import API_VERSION, GROUP, EnvVar, MeetingBotSpec
from meetingbot_contract import (
    CONFIG_ENV,
    CONFIG_KEY,
    CONFIG_MOUNT_PATH,
    HEALTH_PATH,
    HEALTH_PORT_ENV,
    SDK_URL_ENV,
    SPOOL_ENV,
    SPOOL_PATH,
    JoinConfig,
)
from meetingbot_operator.identities.claims import ZOOM_ACCOUNT_ANNOTATION, ZOOM_USER_ANNOTATION
from meetingbot_operator.kube import secrets
from meetingbot_operator.meetingbot.observed import Meta, pod_name
from meetingbot_operator.settings import Settings

BOT_LABEL = f"{GROUP}/bot"
ATTEMPT_LABEL = f"{GROUP}/attempt"
HOME = "/home/bot"


def secret_name(bot: str) -> str:
    return f"{bot}-join"


def labels(meta: Meta, attempt: int) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "meetingbot-bot",
        **secrets.MANAGED_BY,
        BOT_LABEL: meta.name,
        ATTEMPT_LABEL: str(attempt),
    }


def owner_reference(meta: Meta) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "MeetingBot",
        "name": meta.name,
        "uid": meta.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def join_secret(meta: Meta, attempt: int, config: JoinConfig) -> dict[str, Any]:
    return secrets.manifest(
        meta.namespace,
        secret_name(meta.name),
        {CONFIG_KEY: config.to_json()},
        owner=owner_reference(meta),
        labels=labels(meta, attempt),
        annotations={ATTEMPT_LABEL: str(attempt)},
    )


def bot_pod(
    meta: Meta, attempt: int, spec: MeetingBotSpec, settings: Settings, zoom_user: str | None = None
) -> dict[str, Any]:
    template = spec.pod_template
    uid = settings.bot_run_as_user
    resources: dict[str, dict[str, Any]] = {
        "requests": {"cpu": settings.bot_cpu_request, "memory": settings.bot_memory_request},
        "limits": {"cpu": settings.bot_cpu_limit, "memory": settings.bot_memory_limit},
    }
    if template.resources:
        resources["requests"].update(template.resources.requests or {})
        resources["limits"].update(template.resources.limits or {})
    env = [
        {"name": CONFIG_ENV, "value": f"{CONFIG_MOUNT_PATH}/{CONFIG_KEY}"},
        {"name": "HOME", "value": HOME},
        {"name": HEALTH_PORT_ENV, "value": str(settings.bot_health_port)},
    ]
    if settings.bot_sdk_url:
        env.append({"name": SDK_URL_ENV, "value": settings.bot_sdk_url})
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    if spec.capture is not None:
        # Captured files wait here until delivered; an emptyDir, so it outlives a browser crash
        # (not the pod): the bot's uploads keep it small (docs/capture.md).
        env.append({"name": SPOOL_ENV, "value": SPOOL_PATH})
        mounts.append({"name": "spool", "mountPath": SPOOL_PATH})
        volumes.append({"name": "spool", "emptyDir": {"sizeLimit": settings.bot_spool_size}})
    env += [_env(e) for e in template.env or []]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.bot_grace_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "bot",
                "image": template.image or settings.bot_image,
                "imagePullPolicy": settings.bot_image_pull_policy,
                "env": env,
                "resources": resources,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                **_probes(settings),
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [
                    {"name": "join", "mountPath": CONFIG_MOUNT_PATH, "readOnly": True},
                    {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir
                    {"name": "home", "mountPath": HOME},
                    {"name": "shm", "mountPath": "/dev/shm"},  # noqa: S108 - an emptyDir
                    *mounts,
                ],
            }
        ],
        "volumes": [
            {
                "name": "join",
                "secret": {"secretName": secret_name(meta.name), "defaultMode": 0o440},
            },
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
            {"name": "home", "emptyDir": {"sizeLimit": "256Mi"}},
            # The bot starts Chromium with --disable-dev-shm-usage: its shared memory goes to
            # /tmp (measured on the real node in a meeting: 0 MB in /dev/shm, `make bench`).
            # A small memory-backed /dev/shm remains for libraries that use POSIX shm; what it
            # holds counts against the memory limit, so it is kept small.
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
            *volumes,
        ],
    }
    # The platform's bot-wide settings, refined by the podTemplate (settings.py says how).
    node_selector = {**(template.node_selector or {}), **settings.bot_node_selector}
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    tolerations = [
        *settings.bot_tolerations,
        *(t.model_dump(by_alias=True, exclude_none=True) for t in template.tolerations or []),
    ]
    if tolerations:
        pod_spec["tolerations"] = tolerations
    priority = template.priority_class_name or settings.bot_priority_class_name
    if priority:
        pod_spec["priorityClassName"] = priority
    if settings.bot_runtime_class_name:
        pod_spec["runtimeClassName"] = settings.bot_runtime_class_name
    pull = [*settings.bot_image_pull_secrets, *(r.name for r in template.image_pull_secrets or [])]
    if pull:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in dict.fromkeys(pull)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(meta.name, attempt),
            "namespace": meta.namespace,
            "labels": {**(template.labels or {}), **labels(meta, attempt)},
            "annotations": _annotations(template.annotations or {}, spec, zoom_user),
            "ownerReferences": [owner_reference(meta)],
        },
        "spec": pod_spec,
    }


def _annotations(
    template: dict[str, str], spec: MeetingBotSpec, zoom_user: str | None
) -> dict[str, str]:
    """The template's annotations, without the two the claims ledger reads (only ours say
    which user a pod holds: identities/claims.py), and ours for a ZAK start."""
    ours = (ZOOM_USER_ANNOTATION, ZOOM_ACCOUNT_ANNOTATION)
    kept = {k: v for k, v in template.items() if k not in ours}
    if zoom_user:
        kept[ZOOM_USER_ANNOTATION] = zoom_user
        kept[ZOOM_ACCOUNT_ANNOTATION] = spec.account_ref.name
    return kept


def _env(variable: EnvVar) -> dict[str, Any]:
    source = variable.value_from
    if source is None:
        return {"name": variable.name, "value": variable.value}
    if source.secret_key_ref is not None:
        ref = source.secret_key_ref
        # Checked opted in (bot-env) by the executor before the pod is created.
        return {"name": variable.name,
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}  # fmt: skip
    assert source.field_ref is not None
    return {"name": variable.name,
            "valueFrom": {"fieldRef": {"fieldPath": source.field_ref.field_path}}}  # fmt: skip


def env_secrets(spec: MeetingBotSpec) -> list[tuple[str, str]]:
    """The (Secret, key) pairs the bot container's environment names."""
    return [
        (e.value_from.secret_key_ref.name, e.value_from.secret_key_ref.key)
        for e in spec.pod_template.env or []
        if e.value_from is not None and e.value_from.secret_key_ref is not None
    ]


LIVENESS_PERIOD_SECONDS = 10
LIVENESS_FAILURES = 3
# How long a bot fails its probe before the kubelet stops it (decide's liveness_silence).
LIVENESS_WINDOW_SECONDS = LIVENESS_PERIOD_SECONDS * LIVENESS_FAILURES


def _probes(settings: Settings) -> dict[str, Any]:
    """The liveness probe: a bot whose event loop stops answering is restarted by nobody
    (restartPolicy Never), so the kubelet ends the container and the operator retries the
    attempt. Reports stopping (the operator's own heartbeat check) catch a bot that answers
    probes but has stopped working."""
    if not settings.bot_health_port:
        return {}
    return {
        "livenessProbe": {
            "httpGet": {"path": HEALTH_PATH, "port": settings.bot_health_port},
            "periodSeconds": LIVENESS_PERIOD_SECONDS,
            "timeoutSeconds": 5,
            "failureThreshold": LIVENESS_FAILURES,
        }
    }
