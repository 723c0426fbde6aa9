"""resources: every container the fleet runs has cpu and memory requests and a memory limit.

Helm components: each container a chart renders (per `_workloads.WORKLOADS`: its resources
values path and the switch that turns it on), read from the cluster's effective values (all
layers over the pinned chart's defaults). Raw manifests (`manifests.yaml` of a manifests
component): every container and init container of every pod template. Without requests the
scheduler packs nodes blind and the pod is first to be evicted; without a memory limit one
leaking agent can take a node down with the customer pods on it. A finding points at the line
that set the resources block (or the chart's version line when the chart default is what runs).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

from .. import yamlio
from ..errors import Finding, Severity, SourceRef
from ..model import Cluster, Component
from . import CheckContext
from ._workloads import effective_values, get, workload_of

NAME = "resources"
DESCRIPTION = "Every container (chart values per chart, raw manifests per container) has cpu/memory requests and a memory limit"
ORDER = 47
SCOPE = "cluster"

REQUIRED = (("requests", "cpu"), ("requests", "memory"), ("limits", "memory"))
POD_SPECS = {"Deployment": ("spec", "template", "spec"), "StatefulSet": ("spec", "template", "spec"),
             "DaemonSet": ("spec", "template", "spec"), "ReplicaSet": ("spec", "template", "spec"),
             "Job": ("spec", "template", "spec"), "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
             "Pod": ("spec",)}


def missing(resources: Any) -> list[str]:
    """The required resources fields a resources block lacks."""
    return [".".join(path) for path in REQUIRED if get(resources, path) in (None, "", 0)]


#: Later layers win the merge, so a finding names the most specific line of the latest layer.
LAYER_RANK = (("clusters/", 3), ("regions/", 2), ("overlays/", 1))


def _rank(ref: SourceRef) -> int:
    return next((rank for prefix, rank in LAYER_RANK if ref.file.startswith(prefix)), 0)


def value_source(component: Component, dotted: str) -> SourceRef | None:
    """The fleet line behind `values.<dotted>`: among the lines written at or under it, the latest
    layer's most specific one; else its nearest written ancestor inside values."""
    path = ("values",) + tuple(dotted.split("."))
    provenance = component.merged.provenance
    under = [(key, ref) for key, ref in provenance.items() if key[:len(path)] == path]
    if under:
        return max(under, key=lambda kv: (_rank(kv[1]), len(kv[0]), -kv[1].line))[1]
    for cut in range(len(path) - 1, 1, -1):
        if path[:cut] in provenance:
            return provenance[path[:cut]]
    return None


def chart_findings(ctx: CheckContext, cluster: Cluster, component: Component) -> Iterator[tuple[SourceRef, str]]:
    workload = workload_of(component)
    if workload is None:
        yield (component.source_of("chart", "name") or SourceRef(cluster.source),
               f"{component.name}: chart {component.chart.name} has no entry in checks/_workloads.py WORKLOADS "
               "(its containers' resources paths): add one")
        return
    values, _ = effective_values(ctx, cluster, component)
    for container, (path, switch) in sorted(workload.containers.items()):
        if switch and get(values, switch) is not True:
            continue
        lacking = missing(get(values, path))
        if lacking:
            source = value_source(component, path) or component.source_of("chart", "version") \
                or component.source_of() or SourceRef(cluster.source)
            yield source, (f"{component.name}: container {container} (values.{path}) lacks "
                           f"{', '.join(lacking)}")


def manifest_containers(root: Path, component: Component) -> Iterator[tuple[str, str, Any, SourceRef]]:
    """(object, container, resources, source) of every container in a component's manifests.yaml."""
    rel = f"base/components/{component.name}/manifests.yaml"
    path = root / rel
    if not path.exists():
        return
    for doc in yamlio.load_all_text(path.read_text(encoding="utf-8"), rel):
        kind = doc.get("kind") if isinstance(doc, dict) else None
        spec = doc
        for key in POD_SPECS.get(kind, ("-",)):
            spec = spec.get(key) if isinstance(spec, dict) else None
        if not isinstance(spec, dict):
            continue
        name = f"{kind} {get(doc, 'metadata.name')}"
        for field in ("initContainers", "containers"):
            for i, container in enumerate(spec.get(field) or []):
                key = "resources" if "resources" in container else None
                line, col = yamlio.position(container, key) if key else yamlio.position(spec[field], i)
                yield name, str(container.get("name")), yamlio.plain(container.get("resources")), SourceRef(rel, line, col)


def check(ctx: CheckContext) -> Iterable[Finding]:
    found: dict[tuple, list[str]] = {}
    manifests_seen: set[str] = set()
    for cluster in ctx.fleet.clusters.values():
        for component in cluster.components.values():
            if component.chart is not None or workload_of(component) is not None:
                for source, message in chart_findings(ctx, cluster, component):
                    found.setdefault((source, message), []).append(cluster.id)
            elif component.name not in manifests_seen:  # the same file for every cluster
                manifests_seen.add(component.name)
                for obj, container, resources, source in manifest_containers(ctx.root, component):
                    lacking = missing(resources)
                    if lacking:
                        found.setdefault((source, f"{component.name}: {obj} container {container} lacks "
                                          f"resources {', '.join(lacking)}"), []).append("all clusters")
    for (source, message), clusters in sorted(found.items()):
        yield Finding(NAME, Severity.ERROR, source, f"{message}; cluster(s): {', '.join(sorted(set(clusters)))}",
                      details={"clusters": sorted(set(clusters))})
