"""What the kinds share: the base model, references, conditions, CEL helpers, and the
caps that keep the largest legal object small.

Field names follow the Kubernetes API conventions: camelCase on the wire, `...Seconds` for
durations, `...Time` for timestamps, `...Ref` for references. Rules the API server can check
at apply time are CEL rules (`x-kubernetes-validations`) attached to the models. Every field
has a description: it is what `kubectl explain` prints (a unit test fails when one is missing).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

GROUP = "meetingbot.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


def cel(*rules: tuple[str, str] | tuple[str, str, str]) -> dict[str, Any]:
    """`x-kubernetes-validations` from (rule, message[, fieldPath]) tuples."""
    out = []
    for rule in rules:
        entry = {"rule": rule[0], "message": rule[1]}
        if len(rule) == 3:
            entry["fieldPath"] = rule[2]
        out.append(entry)
    return {"x-kubernetes-validations": out}


class Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class ObjectMeta(Model):
    """The metadata fields a reader of our objects uses (the API server owns them)."""

    name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = Field("", alias="resourceVersion")
    generation: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: datetime | None = Field(None, alias="creationTimestamp")
    deletion_timestamp: datetime | None = Field(None, alias="deletionTimestamp")


# An object's name (a DNS subdomain, as the API server checks it for Secrets and our own
# kinds). A reference is only ever a name: `..`, `/` or `%` could otherwise turn it into
# another object's API path.
OBJECT_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A key of a Secret's data, as the API server checks it.
SECRET_DATA_KEY = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 - a pattern, not a password


class LocalObjectRef(Model):
    """An object in the same namespace, by name."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=OBJECT_NAME,
        description="The object's name (a DNS subdomain) in this namespace.",
    )


class SecretKeyRef(Model):
    """One key of a Secret in the same namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=OBJECT_NAME,
        description="The Secret's name (a DNS subdomain) in this namespace.",
    )
    key: str = Field(
        min_length=1, max_length=253, pattern=SECRET_DATA_KEY, description="The key in its data."
    )


class Condition(Model):
    """A condition, as metav1.Condition: a type, whether it holds, and why."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="The condition's type: Ready (ZoomAccount, ZoomUserGrant, MeetingBot), "
        "Complete, Failed (MeetingBot).",
    )
    status: str = Field(
        description="Whether the condition holds: True, False or Unknown.",
        json_schema_extra={"enum": ["True", "False", "Unknown"]},
    )
    observed_generation: int | None = Field(
        None,
        alias="observedGeneration",
        ge=0,
        description="The object's metadata.generation this condition was set for.",
    )
    last_transition_time: datetime = Field(
        alias="lastTransitionTime", description="When the status last changed."
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Why, in one CamelCase word (docs/reasons.md lists them).",
    )
    message: str = Field(max_length=32768, description="What happened, in words.")


# An empty object as the default, so the API server fills in the nested fields' defaults.
APPLY_DEFAULTS: dict[str, Any] = {"default": {}}

CONDITIONS_LIST: dict[str, Any] = {
    "maxItems": 16,
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}
# A list of distinct strings, merged as a set by server-side apply.
STRING_SET: dict[str, Any] = {"x-kubernetes-list-type": "set"}

# What the largest legal podTemplate may hold, so that a tenant's biggest specs cost the
# operator (its watch pages, its cache) and the API server little: keys as long as Kubernetes
# allows for labels and annotations (a 253-character prefix, '/', a 63-character name), label
# and node-selector values as long as a label value may be, and at most 32 768 characters of
# annotations and of environment each (CEL counts characters). The largest legal MeetingBot
# spec is 107 KB of JSON (tests/support/specs.py largest_pod_template).
MAX_KEY = 317
MAX_LABEL_VALUE = 63
MAX_TOTAL_CHARS = 32768
KEYS_BOUNDED = (f"self.all(k, size(k) <= {MAX_KEY})", f"keys are at most {MAX_KEY} characters")
LABEL_MAP: dict[str, Any] = {
    "additionalProperties": {"type": "string", "maxLength": MAX_LABEL_VALUE},
}


def first_error(error: ValidationError) -> str:
    """The first problem of a validation error, as `field.path: message` (for status, answers)."""
    first = error.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
