"""disruption-budgets: a workload of more than one replica has a PDB that still lets a node drain.

Without a PDB a drain may take every replica at once; with one that allows no eviction
(`minAvailable` equal to the replicas, `maxUnavailable: 0`) the drain — and so every DOKS
node upgrade — hangs. Helm components: the replica count and the PDB the chart renders, read
from the effective values through `_workloads.WORKLOADS` (e.g. gateway-helm renders no PDB for a
percentage). Raw manifests: each Deployment/StatefulSet of more than one replica needs a
PodDisruptionBudget in the same file selecting its pods. Percentages round up, as the
disruption controller does. A finding points at the PDB's line, else at the replicas line.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from .. import yamlio
from ..errors import Finding, Severity, SourceRef
from ..model import Cluster, Component
from . import CheckContext
from ._workloads import disruptable, effective_values, get, workload_of
from .resources import value_source

NAME = "disruption-budgets"
DESCRIPTION = "Every workload of more than one replica has a PodDisruptionBudget that allows a drain (minAvailable < replicas)"
ORDER = 48
SCOPE = "cluster"


def workload_problem(ctx: CheckContext, cluster: Cluster, component: Component) -> tuple[SourceRef, str] | None:
    workload = workload_of(component)
    if workload is None:
        return None
    values, _ = effective_values(ctx, cluster, component)
    replicas = workload.replicas(values)
    if replicas is None or replicas <= 1:
        return None
    budget = workload.budget(values)
    fallback = component.source_of("chart", "version") or component.source_of() or SourceRef(cluster.source)
    if budget is None:
        source = value_source(component, workload.budget_path) or value_source(component, workload.replicas_path)
        return source or fallback, (f"{component.name}: {replicas} replicas (values.{workload.replicas_path}) but the "
                                    f"chart renders no PodDisruptionBudget (values.{workload.budget_path})")
    if disruptable(budget, replicas) < 1:
        source = value_source(component, workload.budget_path) or value_source(component, workload.replicas_path)
        return source or fallback, (f"{component.name}: PodDisruptionBudget {budget} allows no eviction of "
                                    f"{replicas} replicas: a node drain would hang")
    return None


def manifest_problems(ctx: CheckContext, component: Component) -> Iterator[tuple[SourceRef, str]]:
    rel = f"base/components/{component.name}/manifests.yaml"
    path = ctx.root / rel
    if not path.exists():
        return
    docs = [d for d in yamlio.load_all_text(path.read_text(encoding="utf-8"), rel) if isinstance(d, dict)]
    budgets = [yamlio.plain(d) for d in docs if d.get("kind") == "PodDisruptionBudget"]
    for doc in docs:
        replicas = get(doc, "spec.replicas", 1)
        if doc.get("kind") not in ("Deployment", "StatefulSet") or not isinstance(replicas, int) or replicas <= 1:
            continue
        labels = get(yamlio.plain(doc), "spec.template.metadata.labels", {}) or {}
        matching = [b for b in budgets if (get(b, "spec.selector.matchLabels") or {}).items() <= labels.items()
                    and get(b, "spec.selector.matchLabels")]
        line, col = yamlio.position(doc["spec"], "replicas")
        source = SourceRef(rel, line, col)
        name = f"{doc['kind']} {get(doc, 'metadata.name')}"
        if not matching:
            yield source, f"{component.name}: {name} has {replicas} replicas and no PodDisruptionBudget selecting its pods"
        elif all(disruptable(get(b, "spec"), replicas) < 1 for b in matching):
            yield source, f"{component.name}: the PodDisruptionBudget of {name} allows no eviction of {replicas} replicas"


def check(ctx: CheckContext) -> Iterable[Finding]:
    found: dict[tuple, list[str]] = {}
    seen_manifests: set[str] = set()
    for cluster in ctx.fleet.clusters.values():
        for component in cluster.components.values():
            problem = workload_problem(ctx, cluster, component)
            if problem:
                found.setdefault(problem, []).append(cluster.id)
            if component.kind == "manifests" and workload_of(component) is None \
                    and component.name not in seen_manifests:
                seen_manifests.add(component.name)
                for source, message in manifest_problems(ctx, component):
                    found.setdefault((source, message), []).append("all clusters")
    for (source, message), clusters in sorted(found.items()):
        yield Finding(NAME, Severity.ERROR, source, f"{message}; cluster(s): {', '.join(sorted(set(clusters)))}",
                      details={"clusters": sorted(set(clusters))})
