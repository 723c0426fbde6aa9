"""Strict schemas of the built-in Kubernetes kinds, from the files kubernetes-validate bundles.

`kubernetes_validate.validate(obj, version, strict=True)` re-reads and re-parses the 1.4 MB
`_definitions.json` and builds a new validator on every call (~14 ms per object; 140 s for a
1,000-cluster fleet). Here the same files (`v<version>-local-strict/`, chosen by the same rule:
the newest bundled version not newer than the requested minor) are read once, every
`$ref` into the definitions is inlined once (cycles keep a `$ref`, resolved through a registry),
and one Draft 2020-12 validator per (apiVersion, kind) is kept. Same schema files, same
strictness — tests compare the verdicts with kubernetes_validate.validate itself.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib.resources import files as resource_files
from pathlib import Path
from typing import Any


from jsonschema import Draft202012Validator
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

DEFINITIONS = "_definitions.json"
_REF_MARK = "#/$defs/"
# Annotations next to a `$ref` in these files; they do not constrain anything.
_ANNOTATIONS = frozenset({"description", "x-kubernetes-patch-strategy", "x-kubernetes-patch-merge-key",
                          "x-kubernetes-list-type", "x-kubernetes-map-type", "x-kubernetes-list-map-keys",
                          "x-kubernetes-group-version-kind", "x-kubernetes-unions"})


def schema_folder(version: str) -> Path:
    """The bundled strict schema folder kubernetes_validate.validate would use for `version`.

    Raises kv_utils.VersionNotSupportedError like the library does.
    """
    wanted = version[1:] if version.startswith("v") else version
    minor = kv_utils.major_minor(wanted)
    bundled = kv_utils.all_versions()
    candidates = [v for v in bundled if _minor_key(kv_utils.major_minor(v)) <= _minor_key(minor)]
    if not candidates or _minor_key(minor) > _minor_key(kv_utils.major_minor(bundled[-1])):
        raise kv_utils.VersionNotSupportedError(version=minor)
    base = Path(str(resource_files("kubernetes_validate").joinpath("kubernetes-json-schema")))
    folder = base / f"v{candidates[-1]}-local-strict"
    if not folder.is_dir():
        raise kv_utils.VersionNotSupportedError(version=minor)
    return folder


def _minor_key(minor: str) -> tuple[int, ...]:
    return tuple(int(p) for p in minor.split(".") if p.isdigit())


def schema_file_name(api_version: str, kind: str) -> str:
    """kubernetes-validate's file naming: apps/v1 Deployment → deployment-apps-v1.json."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{group_version}.json"


class CoreSchemas:
    """Compiled validators for one Kubernetes version; build one per version (see `core_schemas`)."""

    def __init__(self, version: str):
        self.version = version
        self.folder = schema_folder(version)
        definitions = json.loads((self.folder / DEFINITIONS).read_text(encoding="utf-8"))
        self._defs_id = definitions["$id"]
        self._defs: dict[str, Any] = definitions["$defs"]
        self._registry = Registry().with_resource(self._defs_id, Resource.from_contents(definitions))
        self._inlined: dict[str, Any] = {}
        self._validators: dict[tuple[str, str], Draft202012Validator | None] = {}

    @property
    def label(self) -> str:
        """Which bundled schema set answers, e.g. `v1.33.0-local-strict`."""
        return self.folder.name

    def validator(self, api_version: str, kind: str) -> Draft202012Validator | None:
        """The validator for a kind, or None when kubernetes-validate has no schema for it."""
        key = (api_version, kind)
        if key not in self._validators:
            self._validators[key] = self._build(api_version, kind)
        return self._validators[key]

    def _build(self, api_version: str, kind: str) -> Draft202012Validator | None:
        if not api_version or not kind or not isinstance(api_version, str) or not isinstance(kind, str):
            return None
        path = self.folder / schema_file_name(api_version, kind)
        if not path.is_file() or path.name == DEFINITIONS:
            return None
        schema = json.loads(path.read_text(encoding="utf-8"))
        # The bundled file may serve a differently spelled group (e.g. a 3rd-party group that
        # shortens to the same prefix): only accept it when it declares this apiVersion.
        wanted = schema.get("properties", {}).get("apiVersion", {}).get("enum")
        if wanted and api_version not in wanted:
            return None
        return Draft202012Validator(self._inline(schema, ()), registry=self._registry)

    def _inline(self, node: Any, stack: tuple[str, ...]) -> Any:
        """Replace `$ref`s into the definitions by the (shared, inlined) definitions themselves."""
        if isinstance(node, list):
            return [self._inline(item, stack) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and _REF_MARK in ref and set(node) - {"$ref"} <= _ANNOTATIONS:
            name = ref.split(_REF_MARK, 1)[1]
            if name in stack:  # recursive definition (JSONSchemaProps): keep the reference
                return {"$ref": f"{self._defs_id}{_REF_MARK}{name}"}
            if name not in self._inlined:
                self._inlined[name] = self._inline(self._defs[name], stack + (name,))
            return self._inlined[name]
        return {key: (value if key == "description" else self._inline(value, stack))
                for key, value in node.items() if key != "description"}


@lru_cache(maxsize=4)
def core_schemas(version: str) -> CoreSchemas:
    """One compiled schema set per Kubernetes version per process."""
    return CoreSchemas(version)
