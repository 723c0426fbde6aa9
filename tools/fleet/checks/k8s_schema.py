"""k8s-schema: every rendered object against a strict schema for its apiVersion/kind.

Gateway API and Envoy Gateway kinds are left to the real CRDs (flux-crds with --crds).
Built-in kinds: the strict schemas kubernetes-validate bundles, at the fleet's pinned
`kubernetesVersion` (fleet.k8s.core). Flux kinds: our own flux-<kind> schemas (fleet.k8s.flux).
Cilium policies: our own cilium-<kind> schemas of the fields we emit (fleet.k8s.cilium).
An apiVersion/kind with neither is an unknown or removed API (e.g. helm.toolkit.fluxcd.io/v2beta1)
and is reported too: the cluster would reject it, or it is a kind nothing here can check.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from kubernetes_validate.utils import VersionNotSupportedError, all_versions

from ..errors import Finding, InputError, SourceRef
from ..cache import ResultCache, code_key
from ..k8s import cilium, core, fastcheck, flux, validate
from ..k8s.crd import crd_group
from ..k8s.objects import RenderedObject, rendered_objects
from ..k8s.validate import VerdictCache, Violation, finding, object_violation, schema_violations

NAME = "k8s-schema"
DESCRIPTION = "Rendered objects validate against strict Kubernetes (pinned version) and fleet Flux schemas"
ORDER = 20
SCOPE = "cluster"
READS = ("base/fleet.yaml",)  # the rendered objects, and kubernetesVersion
DEFAULT_VERSION = "1.33.0"

_CACHE = VerdictCache()  # process-wide: verdicts depend only on (schema, document bytes)


def kubernetes_version(fleet: object) -> str:
    """The pinned version from base/fleet.yaml (`kubernetesVersion`)."""
    settings = getattr(fleet, "settings", None) or {}
    return str(settings.get("kubernetesVersion") or DEFAULT_VERSION)


def unknown_api(obj: RenderedObject, schemas: core.CoreSchemas) -> Violation:
    """The violation for an object no schema covers, with the current API when we know it."""
    current = flux.current_api_version(obj.kind) if flux.is_flux(obj.api_version) else None
    hint = f"use apiVersion {current}" if current and current != obj.api_version else ""
    what = "Flux" if flux.is_flux(obj.api_version) else f"Kubernetes {schemas.version}"
    return Violation(("apiVersion",), f"unknown/removed API {obj.api_version} {obj.kind}: no {what} schema",
                     f"apiVersion {current}" if current else "a served apiVersion/kind", hint)


def violations(obj: RenderedObject, schemas: core.CoreSchemas) -> tuple[Violation, ...]:
    """All schema violations of one object (cached by its digest)."""
    basic = object_violation(obj)
    if basic is not None:
        return (basic,)
    if flux.is_flux(obj.api_version):
        validator, key = flux.validator(obj.api_version, obj.kind), "flux"
    elif cilium.is_cilium(obj.api_version):
        validator, key = cilium.validator(obj.api_version, obj.kind), "cilium"
    else:
        validator, key = schemas.validator(obj.api_version, obj.kind), schemas.label
    if validator is None:
        return (unknown_api(obj, schemas),)
    return _CACHE.get(f"{key}:{obj.api_version}:{obj.kind}", obj, lambda data: schema_violations(validator, data))


def schemas_for(fleet: object) -> core.CoreSchemas:
    """The compiled schemas for the pinned version; an unsupported version is bad input."""
    version = kubernetes_version(fleet)
    try:
        return core.core_schemas(version)
    except VersionNotSupportedError:
        bundled = all_versions()
        raise InputError(f"kubernetesVersion {version} is not supported by the pinned kubernetes-validate",
                         SourceRef("base/fleet.yaml"), path="$.kubernetesVersion",
                         expected=f"a version from {bundled[0]} to {bundled[-1]}") from None


#: Verdicts kept in .cache/k8s-schema.json are keyed by the validating code (and schemas) too.
_CODE = code_key(__file__, core.__file__, flux.__file__, cilium.__file__, validate.__file__, fastcheck.__file__,
                 *Path(core.__file__).parent.parent.glob("schemas/*.json"),
                 packages=("kubernetes-validate", "jsonschema"))


def check(ctx) -> Iterable[Finding]:
    schemas = schemas_for(ctx.fleet)
    with _CACHE.persisted(ResultCache(ctx.root, NAME), _CODE):
        for obj in rendered_objects(ctx):
            if crd_group(obj.api_version):
                continue  # Gateway API / Envoy Gateway kinds: only their real CRDs say (flux-crds, --crds)
            for violation in violations(obj, schemas):
                yield finding(NAME, obj, violation)
