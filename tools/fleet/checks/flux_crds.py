"""flux-crds: Flux, Gateway API and Envoy Gateway objects against the real CRD files
(`fleet lint --crds DIR`, repeatable), schema and CEL rules.

What kubeconform users get from CRD schemas, plus the CRDs' `x-kubernetes-validations` (e.g.
"either chart or chartRef must be set") evaluated with cel-python — the checks the API server
would run at apply time. Objects of a group some CRD defines but in a version none serves
(helm.toolkit.fluxcd.io/v2beta1) are reported as unknown/removed APIs. Built-in kinds are left
to k8s-schema. Off unless --crds is given: the CRD files live outside this repo. Gateway API and
Envoy Gateway objects have no other schema: when no --crds folder defines their group, that is a
warning (they went unvalidated).
"""
from __future__ import annotations

from typing import Iterable

from .. import yamlio
from ..errors import Finding, Severity, SourceRef
from ..cache import ResultCache, code_key
from ..k8s import crd, fastcheck, validate
from ..k8s.objects import FastLoader, RenderedObject, rendered_objects
from ..k8s.validate import VerdictCache, Violation, finding, object_violation

NAME = "flux-crds"
DESCRIPTION = "Flux, Gateway API and Envoy Gateway objects validate against the real CRDs (--crds DIR, repeatable): structural schema and CEL rules"
ORDER = 21
SCOPE = "cluster"
READS = ()  # only the rendered objects (and --crds)
# Subtrees objects.strip_opaque may have replaced by {}; used only if the CRD keeps them opaque.
SKELETON_PATHS = {"HelmRelease": ("spec", "values")}

_CACHE = VerdictCache()


def _full_object(obj: RenderedObject) -> object:
    """The document with its opaque subtree as written (when a CRD does look into it)."""
    docs = [d for d in yamlio.load_all_fast(obj.text, FastLoader) if d is not None]
    return docs[0] if docs else obj.obj


def violations(obj: RenderedObject, crds: crd.CrdSet | crd.CrdSets) -> tuple[Violation, ...]:
    """CRD violations of one object, or () when no CRD in the folder concerns it."""
    if object_violation(obj) is not None or not crds.defines_group(obj.api_version):
        return ()
    version = crds.lookup(obj.api_version, obj.kind)
    if version is None:
        served = crds.served(obj.api_version, obj.kind)
        expected = f"one of: {', '.join(served)}" if served else "a kind this group's CRDs define"
        hint = f"use apiVersion {served[-1]}" if served else ""
        return (Violation(("apiVersion",), f"unknown/removed API {obj.api_version} {obj.kind}: "
                          f"no served CRD version in {crds.folder.name}/", expected, hint),)
    skeleton_path = SKELETON_PATHS.get(obj.kind)
    if obj.skeleton and skeleton_path and not crd.is_opaque(version.openapi, skeleton_path):
        return tuple(version.violations(_full_object(obj)))
    return _CACHE.get(f"{crds.token}:{version.api_version}:{version.kind}", obj, version.violations)


#: Verdicts kept in .cache/flux-crds.json are keyed by the validating code too.
_CODE = code_key(__file__, crd.__file__, validate.__file__, fastcheck.__file__,
                 packages=("jsonschema", "cel-python"))


def check(ctx) -> Iterable[Finding]:
    folders = ctx.options.get("crds")
    store = ResultCache(ctx.root, NAME)
    docs_cache = ctx.root / ".cache" / "crd-docs" if store.enabled else None
    crds = crd.load_crd_sets(folders, docs_cache) if folders else None
    with _CACHE.persisted(store, _CODE):
        yield from _check(ctx, crds)


def _check(ctx, crds: crd.CrdSets | None) -> Iterable[Finding]:
    unvalidated: dict[str, str] = {}
    for obj in rendered_objects(ctx):
        if crd.crd_group(obj.api_version) and (crds is None or not crds.defines_group(obj.api_version)):
            unvalidated.setdefault(obj.api_version.split("/", 1)[0], obj.path)
            continue
        if crds is None:
            continue
        for violation in violations(obj, crds):
            yield finding(NAME, obj, violation)
    for group, path in sorted(unvalidated.items()):
        yield Finding(NAME, Severity.WARNING, SourceRef(path),
                      f"{group} objects not validated: no --crds folder defines the group",
                      "pass the CRD folder, e.g. --crds ../shared/crds/gateway/standard --crds ../shared/crds/envoy-gateway")
