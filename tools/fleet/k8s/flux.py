"""Our own strict schemas of the Flux objects fleet render emits (fleet/schemas/flux-<kind>.schema.json).

They describe exactly the fields the renderer writes — closed objects, required fields, Flux's
enums and patterns (durations, names, sourceRef/chartRef kinds, layerSelector operation) plus
the fleet's own policies (pinned chart versions and tags). A new field in the renderer therefore
needs a schema change here, which is the point: the CRD check (`fleet.k8s.crd`) says whether Flux
would accept an object, these say whether it is one we meant to write.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from jsonschema import Draft202012Validator

from .. import schema as fleet_schema

PREFIX = "flux-"
COMMON = "flux-common"
# Flux API groups: an object in one of these groups without a schema is an unknown or removed API.
GROUPS = ("source.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io", "kustomize.toolkit.fluxcd.io",
          "notification.toolkit.fluxcd.io", "image.toolkit.fluxcd.io")


def is_flux(api_version: str) -> bool:
    """True for any apiVersion in a Flux API group (current or removed versions alike)."""
    return isinstance(api_version, str) and api_version.split("/", 1)[0] in GROUPS


@lru_cache(maxsize=1)
def schema_index() -> dict[tuple[str, str], str]:
    """(apiVersion, kind) → schema name (`flux-helmrelease`), read from each schema's consts."""
    index: dict[tuple[str, str], str] = {}
    for entry in resources.files("fleet.schemas").iterdir():
        name = entry.name.removesuffix(".schema.json")
        if not entry.name.endswith(".schema.json") or not name.startswith(PREFIX) or name == COMMON:
            continue
        props = json.loads(entry.read_text(encoding="utf-8")).get("properties", {})
        api_version, kind = props.get("apiVersion", {}).get("const"), props.get("kind", {}).get("const")
        if api_version and kind:
            index[(api_version, kind)] = name
    return index


def validator(api_version: str, kind: str) -> Draft202012Validator | None:
    """The compiled validator of our schema for this apiVersion/kind, or None."""
    name = schema_index().get((api_version, kind))
    return fleet_schema.validator(name) if name else None


def current_api_version(kind: str) -> str | None:
    """The apiVersion our schemas know for a Flux kind (for 'removed API' hints)."""
    for (api_version, known_kind) in schema_index():
        if known_kind == kind:
            return api_version
    return None
