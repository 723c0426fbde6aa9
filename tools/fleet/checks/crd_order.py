"""crd-order: no custom resource is applied before its CRD exists.

A Flux Kustomization server-side dry-runs everything it applies: one object of a kind whose CRD is
not installed yet fails the whole Kustomization, and every stage after it waits forever. For each
rendered cluster this check rebuilds what Flux does: which Kustomization applies each rendered
object (the deepest `spec.path` above its file), the `dependsOn` chain between them, and which
CRDs each Kustomization's HelmReleases install (k8s/crd_providers.py: chart → kinds under its
values switch, read from the merged model values). A custom resource may use a CRD that Flux or
DOKS provides, or that a HelmRelease of a Kustomization it (transitively) depends on installs;
one installed in the same Kustomization is not there at dry-run time (README: `afterReleases`).

A kind installed only by a later (or unrelated) Kustomization, or by nobody, is an error at the
component's source line that decides where it goes (`afterReleases:` / `stage:` in its
component.yaml), naming the rendered file and line and the clusters affected.

Per cluster (SCOPE "cluster"): a cluster's findings depend on its rendered folder and merged
values only, so `lint --changed` checks the affected clusters; a finding lists its clusters as
"; cluster(s): a, b" and names the file inside the cluster folder, so a narrowed run's finding
reads the same as the full lint's for those clusters.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import PurePosixPath
from typing import Any, Iterable

from ..errors import Finding, Severity, SourceRef
from ..k8s import crd_providers
from ..k8s.objects import RenderedObject, rendered_objects
from . import CheckContext

NAME = "crd-order"
DESCRIPTION = ("every custom resource's CRD is installed (by Flux, DOKS or a HelmRelease) in a Flux "
               "Kustomization its own depends on")
ORDER = 22
SCOPE = "cluster"
#: Besides each cluster's rendered folder and merged model: the component definitions and values
#: the model merges (overlays and regions are the render index's per-cluster inputs).
READS = ("base/*", "overlays/*", "regions/*")
FLUX_KUSTOMIZE = "kustomize.toolkit.fluxcd.io"


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


class ClusterOrder:
    """The Flux Kustomizations of one rendered cluster and the CRDs each makes available."""

    def __init__(self, objects: list[RenderedObject], cluster: Any):
        self.paths: dict[str, str] = {}
        self.depends: dict[str, list[str]] = {}
        for obj in objects:
            if obj.kind == "Kustomization" and _group(obj.api_version) == FLUX_KUSTOMIZE:
                spec = obj.obj.get("spec") or {}
                self.paths[obj.name] = str(spec.get("path", "")).removeprefix("./").rstrip("/")
                self.depends[obj.name] = [str(d.get("name")) for d in spec.get("dependsOn") or [] if isinstance(d, dict)]
        sources = {(o.namespace, o.name): o.obj for o in objects if o.kind == "OCIRepository"}
        self.installs: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for obj in objects:
            if obj.kind == "HelmRelease":
                owner = self.owner(obj)
                if owner is not None:
                    self.installs[owner] |= crd_providers.chart_kinds(_chart(obj, sources), _values(obj, cluster))

    def owner(self, obj: RenderedObject) -> str | None:
        """The Kustomization that applies `obj`: the deepest path above its file."""
        folder = obj.path.rsplit("/", 1)[0] + "/"
        best: tuple[int, str] | None = None
        for name, path in self.paths.items():
            if path and folder.startswith(path + "/") and (best is None or len(path) > best[0]):
                best = (len(path), name)
        return best[1] if best else None

    def before(self, name: str) -> set[str]:
        """Every Kustomization `name` depends on, transitively."""
        seen: set[str] = set()
        todo = list(self.depends.get(name, []))
        while todo:
            dep = todo.pop()
            if dep not in seen:
                seen.add(dep)
                todo.extend(self.depends.get(dep, []))
        return seen

    def problem(self, obj: RenderedObject) -> str | None:
        """Why `obj`'s kind may not exist when its Kustomization applies it, or None."""
        if not crd_providers.needs_crd(obj.api_version):
            return None
        group, kind = _group(obj.api_version), obj.kind
        owner = self.owner(obj)
        if owner is None:
            return None
        key = (group, kind)
        if key in crd_providers.preinstalled() or any(key in self.installs[n] for n in self.before(owner)):
            return None
        providers = sorted(n for n, kinds in self.installs.items() if key in kinds)
        what = f"{kind} ({group}), applied by Kustomization {owner},"
        if owner in providers:
            return (f"{what} has its CRD installed by a HelmRelease of the same Kustomization: its server-side "
                    "dry-run fails before the release runs (put the object in the stage's custom-resources: "
                    "afterReleases: true)")
        if providers:
            return (f"{what} has its CRD installed by {', '.join(providers)}, which {owner} does not depend on "
                    "(a later stage): move the object to a later stage")
        return (f"{what} has no CRD: no HelmRelease of any stage installs it, nor Flux, nor DOKS "
                "(k8s/crd_providers.py lists who installs which kinds)")


def _chart(obj: RenderedObject, sources: dict) -> str:
    spec = obj.obj.get("spec") or {}
    chart = ((spec.get("chart") or {}).get("spec") or {}).get("chart")
    if chart:
        return str(chart)
    ref = spec.get("chartRef") or {}
    source = sources.get((ref.get("namespace") or obj.namespace, ref.get("name")))
    url = str(((source or {}).get("spec") or {}).get("url", ""))
    return url.rstrip("/").rsplit("/", 1)[-1]


def _values(obj: RenderedObject, cluster: Any) -> dict:
    """The release's merged values from the model (the rendered skeleton leaves them out)."""
    component = cluster.components.get(obj.name) if cluster is not None else None
    return component.values if component is not None else {}


def _source(obj: RenderedObject, cluster: Any, problem: str) -> SourceRef:
    """The input line that decides where the object goes: its component's afterReleases/stage."""
    component = cluster.components.get(PurePosixPath(obj.path).stem) if cluster is not None else None
    if component is None:
        return obj.source()
    keys = ("afterReleases", "stage") if "same Kustomization" in problem else ("stage",)
    for key in keys:
        found = component.source_of(key)
        if found is not None:
            return found
    return obj.source()


def check(ctx: CheckContext) -> Iterable[Finding]:
    by_cluster: dict[str, list[RenderedObject]] = defaultdict(list)
    for obj in rendered_objects(ctx):
        if obj.cluster is not None and isinstance(obj.obj, dict):
            by_cluster[obj.cluster].append(obj)
    found: dict[tuple[SourceRef, str, str], list[tuple[str, str]]] = {}
    clusters = getattr(ctx.fleet, "clusters", {}) if ctx.fleet is not None else {}
    for cluster_id, objects in sorted(by_cluster.items()):
        if not ctx.wants(cluster_id):
            continue
        cluster = clusters.get(cluster_id)
        order = ClusterOrder(objects, cluster)
        for obj in objects:
            problem = order.problem(obj)
            if problem is not None:
                inside = _inside_cluster(obj.path, cluster_id)
                key = (_source(obj, cluster, problem), f"{obj.describe()}: {problem}", f"{inside}:{obj.line}")
                found.setdefault(key, []).append((cluster_id, f"{obj.path}:{obj.line}"))
    for (source, message, where), places in sorted(found.items()):
        ids = [c for c, _ in places]
        yield Finding(NAME, Severity.ERROR, source, f"{message}; rendered at {where} in each cluster's folder; "
                      f"cluster(s): {', '.join(ids)}",
                      details={"clusters": ids, "rendered": [w for _, w in places]})


def _inside_cluster(path: str, cluster_id: str) -> str:
    """`path` relative to the cluster's rendered folder (the same for every cluster)."""
    for prefix in (f"rendered/clusters/{cluster_id}/", f"clusters/{cluster_id}/"):
        if path.startswith(prefix):
            return path[len(prefix):]
    return path
