"""Generate the CRDs from the pydantic models: `python -m meetingbot_operator.crdgen` (`make crds`).

The schema is made structural the way the API server wants it: every $ref inlined, Optional
fields as plain optional properties, int-or-string quantities marked as such, no titles, no
defaults under status. It writes three things, each checked by a unit test:
- crds/ at the top of the repository: the canonical copy, with a kustomization, for those who
  apply the CRDs themselves (GitOps);
- the chart's files/crds/, the same files, which the chart renders when `crds.install` is set
  (installed and upgraded with the release, kept on uninstall);
- docs/reference.md, the field reference, from the same schemas.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from meetingbot_api import (
    GROUP,
    MAX_BOT_NAME,
    MAX_SCHEDULE_NAME,
    VERSION,
    MeetingBotScheduleSpec,
    MeetingBotScheduleStatus,
    MeetingBotSpec,
    MeetingBotStatus,
    MeetingStreamSpec,
    MeetingStreamStatus,
    ZoomAccountSpec,
    ZoomAccountStatus,
    ZoomUserGrantSpec,
    ZoomUserGrantStatus,
)

CATEGORY = "meetingbot"
ROOT = Path(__file__).resolve().parents[2]
# The canonical CRDs (applied with `kubectl apply -k crds/` or by a GitOps tool) and the chart's
# copy of them (rendered as templates when crds.install is set: Helm's own crds/ directory
# would be installed once and never upgraded).
CRD_DIR = ROOT / "crds"
CHART_CRD_DIR = ROOT / "charts" / "meetingbot-operator" / "files" / "crds"
REFERENCE = ROOT / "docs" / "reference.md"
# What `kubectl explain` says of the fields every object has (the API server's own words).
API_VERSION_TEXT = (
    "APIVersion defines the versioned schema of this representation of an object. Servers "
    "should convert recognized schemas to the latest internal value, and may reject "
    "unrecognized values."
)
KIND_TEXT = (
    "Kind is a string value representing the REST resource this object represents. In CamelCase."
)
KEEP = {
    "type", "properties", "required", "items", "enum", "default", "description", "format",
    "pattern", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems",
    "additionalProperties", "nullable", "maxProperties", "minProperties",
}  # fmt: skip


def structural(model: type[BaseModel], *, defaults: bool = True) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    definitions = schema.pop("$defs", {})
    cleaned: dict[str, Any] = _clean(schema, definitions, defaults)
    return cleaned


def _clean(node: Any, definitions: dict[str, Any], defaults: bool) -> Any:
    if isinstance(node, list):
        return [_clean(item, definitions, defaults) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = dict(definitions[node["$ref"].split("/")[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _clean({**target, **extra}, definitions, defaults)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        kinds = {o.get("type") for o in options}
        if kinds == {"integer", "string"}:
            return {**_keep(rest, defaults), "x-kubernetes-int-or-string": True}
        if len(options) == 1:
            merged = {**_clean(options[0], definitions, defaults), **_keep(rest, defaults)}
            if merged.get("default") is None:
                merged.pop("default", None)
            return merged
        raise ValueError(f"cannot express anyOf {options} structurally")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            out[key] = value
        elif key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out[key] = {name: _clean(v, definitions, defaults) for name, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _clean(value, definitions, defaults)
        elif key == "default" and (not defaults or value is None):
            continue
        elif key in KEEP:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _keep(node: dict[str, Any], defaults: bool) -> dict[str, Any]:
    return {
        k: v
        for k, v in node.items()
        if (k in KEEP or k.startswith("x-kubernetes-"))
        and not (k == "default" and (not defaults or v is None))
    }


def crd(
    kind: str,
    plural: str,
    spec: type[BaseModel],
    status: type[BaseModel],
    *,
    short_names: list[str],
    columns: list[dict[str, Any]],
    description: str,
    max_name_length: int = 253,
) -> dict[str, Any]:
    # The API server describes metadata itself, and refuses a schema that says more of it
    # than a name's rules.
    metadata: dict[str, Any] = {"type": "object"}
    if max_name_length < 253:
        # The only metadata rule a CRD may state: refused at apply time, not at pod creation.
        metadata["properties"] = {"name": {"type": "string", "maxLength": max_name_length}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "meetingbot-operator"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": API_VERSION_TEXT},
                                "kind": {"type": "string", "description": KIND_TEXT},
                                "metadata": metadata,
                                "spec": structural(spec),
                                "status": structural(status, defaults=False),
                            },
                        }
                    },
                }
            ],
        },
    }


def age() -> dict[str, Any]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def definitions() -> dict[str, dict[str, Any]]:
    ready = '.status.conditions[?(@.type=="Ready")]'
    return {
        "meetingbot.dev_meetingbots.yaml": crd(
            "MeetingBot",
            "meetingbots",
            MeetingBotSpec,
            MeetingBotStatus,
            short_names=["mb"],
            max_name_length=MAX_BOT_NAME,
            description="A bot that joins one Zoom meeting with a freshly minted ZAK.",
            columns=[
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
                {"name": "Meeting", "type": "string", "jsonPath": ".spec.meeting.number"},
                {"name": "User", "type": "string", "jsonPath": ".status.zoomUser"},
                {
                    "name": "Attempts",
                    "type": "integer",
                    "jsonPath": ".status.attempts",
                    "priority": 1,
                },
                {"name": "Pod", "type": "string", "jsonPath": ".status.podName", "priority": 1},
                age(),
            ],
        ),
        "meetingbot.dev_meetingbotschedules.yaml": crd(
            "MeetingBotSchedule",
            "meetingbotschedules",
            MeetingBotScheduleSpec,
            MeetingBotScheduleStatus,
            short_names=["mbs"],
            max_name_length=MAX_SCHEDULE_NAME,
            description="MeetingBots made per occurrence (a cron expression, a recurring Zoom "
            "meeting, or a user's upcoming meetings), as a CronJob makes Jobs.",
            columns=[
                {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status"},
                {"name": "Cron", "type": "string", "jsonPath": ".spec.cron.schedule"},
                {"name": "Meeting", "type": "string", "jsonPath": ".spec.zoomMeeting.number"},
                {"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend"},
                {"name": "Next", "type": "date", "jsonPath": ".status.nextOccurrences[0].start"},
                {"name": "Last", "type": "date", "jsonPath": ".status.lastScheduleTime"},
                age(),
            ],
        ),
        "meetingbot.dev_meetingstreams.yaml": crd(
            "MeetingStream",
            "meetingstreams",
            MeetingStreamSpec,
            MeetingStreamStatus,
            short_names=["ms"],
            description="A Zoom meeting received through Realtime Media Streams (RTMS): no bot "
            "joins; Zoom streams the meeting's audio, transcript and chat to the app.",
            columns=[
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
                {"name": "Meeting", "type": "string", "jsonPath": ".spec.meeting.number"},
                {"name": "Start", "type": "string", "jsonPath": ".spec.start", "priority": 1},
                age(),
            ],
        ),
        "meetingbot.dev_zoomusergrants.yaml": crd(
            "ZoomUserGrant",
            "zoomusergrants",
            ZoomUserGrantSpec,
            ZoomUserGrantStatus,
            short_names=["zug"],
            description="A Zoom user's authorization of a user-managed OAuth app (for OBF): "
            "the operator runs the authorization and keeps the grant's tokens fresh.",
            columns=[
                {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status"},
                {"name": "Reason", "type": "string", "jsonPath": f"{ready}.reason"},
                {"name": "Email", "type": "string", "jsonPath": ".status.email"},
                {
                    "name": "URL",
                    "type": "string",
                    "jsonPath": ".status.authorizationUrl",
                    "priority": 1,
                },
                age(),
            ],
        ),
        "meetingbot.dev_zoomaccounts.yaml": crd(
            "ZoomAccount",
            "zoomaccounts",
            ZoomAccountSpec,
            ZoomAccountStatus,
            short_names=["za"],
            description="A Zoom account's credentials and the service users bots join as.",
            columns=[
                {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status"},
                {"name": "Reason", "type": "string", "jsonPath": f"{ready}.reason"},
                {"name": "Plan", "type": "string", "jsonPath": ".spec.plan"},
                {"name": "Users", "type": "integer", "jsonPath": ".status.activeUsers"},
                {"name": "Bots", "type": "integer", "jsonPath": ".status.activeBots"},
                {
                    "name": "Message",
                    "type": "string",
                    "jsonPath": f"{ready}.message",
                    "priority": 1,
                },
                age(),
            ],
        ),
    }


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(document: dict[str, Any]) -> str:
    header = "# Generated from api/meetingbot_api/ by crdgen.py: do not edit.\n"
    return header + yaml.dump(document, Dumper=_NoAliases, sort_keys=False, width=100)


def kustomization() -> str:
    """crds/kustomization.yaml: the CRDs as one kustomize base."""
    files = "".join(f"  - {name}\n" for name in definitions())
    return (
        "# Generated by crdgen.py: do not edit.\n"
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n{files}"
    )


def outputs() -> dict[Path, str]:
    """Every file the generator writes, and what it holds."""
    files: dict[Path, str] = {}
    for name, document in definitions().items():
        files[CRD_DIR / name] = files[CHART_CRD_DIR / name] = render(document)
    files[CRD_DIR / "kustomization.yaml"] = kustomization()
    files[REFERENCE] = reference_page()
    return files


def main(argv: list[str]) -> int:
    for path, text in outputs().items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(path.relative_to(ROOT))
    return 0


def reference_page() -> str:
    """docs/reference.md: every field of the four kinds, from the CRD schemas."""
    return (
        "<!-- Generated from the models by operator/meetingbot_operator/crdgen.py (make crds): "
        "do not edit. -->\n"
        "# Resource reference\n\n"
        "Every field of the four kinds, as the CRDs state them (`kubectl explain meetingbot.spec` "
        "prints the same descriptions). Rules checked at apply time follow each table. "
        "Examples are in [examples/](../examples/); how the kinds work together is in "
        "[the design](design.md).\n\n" + reference_markdown()
    )


def reference_markdown() -> str:
    """The field tables, one per kind."""
    lines: list[str] = []
    for document in definitions().values():
        version = document["spec"]["versions"][0]
        kind = document["spec"]["names"]["kind"]
        lines += [
            f"## {kind} `{GROUP}/{VERSION}`",
            "",
            "| field | type | default | notes |",
            "|---|---|---|---|",
        ]
        schema = version["schema"]["openAPIV3Schema"]["properties"]
        for prefix in ("spec", "status"):
            _rows(schema[prefix], prefix, schema[prefix].get("required", []), lines)
        rules = [r["message"] for r in _all_validations(schema["spec"])]
        if rules:
            lines += ["", "Checked at apply time: " + "; ".join(f"*{r}*" for r in rules) + "."]
        lines.append("")
    return "\n".join(lines)


def _rows(node: dict[str, Any], path: str, required: list[str], lines: list[str]) -> None:
    for key, child in (node.get("properties") or {}).items():
        here = f"{path}.{key}"
        kind = child.get("type", "int-or-string" if child.get("x-kubernetes-int-or-string") else "")
        if kind == "array":
            kind = f"[]{child.get('items', {}).get('type', 'object')}"
        notes = child.get("description", "")
        if "enum" in child:
            notes = (notes + " One of: " + ", ".join(f"`{v}`" for v in child["enum"]) + ".").strip()
        bounds = [
            f"{k} {child[k]}"
            for k in ("minimum", "maximum", "minLength", "maxLength")
            if k in child
        ]
        if bounds:
            notes = (notes + " (" + ", ".join(bounds) + ")").strip()
        if key in required:
            notes = ("**required**. " + notes).strip()
        default = child.get("default")
        shown = "" if default is None or default == {} else f"`{default}`"
        if child.get("type") == "object" and child.get("properties") and path.count(".") < 2:
            lines.append(f"| `{here}` | object | | {notes} |")
            _rows(child, here, child.get("required", []), lines)
        else:
            lines.append(f"| `{here}` | {kind} | {shown} | {notes} |")


def _all_validations(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found += node.get("x-kubernetes-validations", [])
        for value in node.values():
            found += _all_validations(value)
    elif isinstance(node, list):
        for item in node:
            found += _all_validations(item)
    return found


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
