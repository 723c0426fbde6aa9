"""namespace-prune: a rendered Namespace that holds Secrets created out of band is never pruned.

Flux prunes what leaves its source: renaming or reordering a stage moves a Namespace object to
another Kustomization, and the old one deletes it, with every Secret in it (Shuttle's token, Fluent
Bit's client certificate, the Grafana Cloud credentials: none of which git can recreate). The
annotation `kustomize.toolkit.fluxcd.io/prune: disabled` stops that. This check reads the rendered
Namespaces and every Secret the cluster's workloads reference by name (the manifests as rendered,
the Helm values as Flux passes them) and reports a Namespace without the annotation whose
namespace has such a reference, at the `namespace:` line of the component that owns it.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

from ..errors import Finding, Severity, SourceRef
from ..k8s.objects import rendered_objects
from ..render.cluster import namespace_owners
from ..render.flux import PRUNE_DISABLED
from ..render.wiring import wired_values
from . import CheckContext

NAME = "namespace-prune"
DESCRIPTION = "Namespaces holding Secrets created out of band carry kustomize.toolkit.fluxcd.io/prune: disabled"
ORDER = 46
SCOPE = "cluster"


def secret_names(node: Any) -> Iterator[str]:
    """Names of Secrets a pod spec or Helm values refer to: secretKeyRef/secretRef `name`, a
    secret volume's `secretName`, a projected `secret.name`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("secretKeyRef", "secretRef", "secret") and isinstance(value, dict):
                name = value.get("name") or value.get("secretName")
                if isinstance(name, str) and name:
                    yield name
            if key == "secretName" and isinstance(value, str) and value:
                yield value
            yield from secret_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from secret_names(item)


def _names(node: Any, memo: dict[int, tuple[Any, frozenset[str]]]) -> frozenset[str]:
    """secret_names of `node`, once per object: clusters share parsed documents and unpatched values."""
    got = memo.get(id(node))
    if got is None or got[0] is not node:
        got = memo[id(node)] = (node, frozenset(secret_names(node)))
    return got[1]


def referenced_secrets(ctx: CheckContext, cluster: Any, objects: list) -> dict[str, set[str]]:
    """namespace → Secret names the cluster's rendered workloads and Helm values reference."""
    memo = ctx.cache.setdefault(f"{NAME}:names", {})
    refs: dict[str, set[str]] = {}
    for obj in objects:
        if isinstance(obj.obj, dict) and obj.kind not in ("HelmRelease", "Secret") and obj.namespace:
            refs.setdefault(obj.namespace, set()).update(_names(obj.obj.get("spec"), memo))
    for component in cluster.components.values():
        if component.kind == "helm":
            refs.setdefault(component.namespace, set()).update(
                _names(wired_values(ctx, cluster, component), memo))
    return {ns: names for ns, names in refs.items() if names}


def check(ctx: CheckContext) -> Iterable[Finding]:
    by_cluster: dict[str, list] = {}
    for obj in rendered_objects(ctx):
        if obj.cluster:
            by_cluster.setdefault(obj.cluster, []).append(obj)
    found: dict[tuple, list[str]] = {}
    for cid, cluster in sorted(ctx.fleet.clusters.items()):
        objects = by_cluster.get(cid, [])
        refs = referenced_secrets(ctx, cluster, objects)
        owners = namespace_owners(ctx.fleet, cluster)
        for obj in objects:
            if obj.kind != "Namespace" or obj.name not in refs:
                continue
            annotations = obj.metadata.get("annotations") or {}
            if all(annotations.get(k) == v for k, v in PRUNE_DISABLED.items()):
                continue
            owner = cluster.components.get(owners.get(obj.name, ""))
            source = (owner.source_of("namespace") if owner else None) or obj.source(("metadata",))
            found.setdefault((source, obj.name, ", ".join(sorted(refs[obj.name]))), []).append(cid)
    for (source, ns, secrets), clusters in sorted(found.items(), key=lambda kv: (kv[0][0].file, kv[0][0].line, kv[0][1])):
        yield Finding(NAME, Severity.ERROR, source,
                      f"Namespace {ns} holds Secrets created out of band ({secrets}) but lacks the annotation "
                      f"kustomize.toolkit.fluxcd.io/prune: disabled: a renamed stage would delete it with them; "
                      f"cluster(s): {', '.join(sorted(clusters))}",
                      hint="render Namespaces with fleet.render.flux.namespace (it sets the annotation)",
                      details={"clusters": sorted(clusters), "namespace": ns})
