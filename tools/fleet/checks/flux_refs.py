"""flux-refs: will Flux actually reconcile each cluster? References between rendered objects.

Schemas say each object is well-formed; Flux additionally needs, per cluster:
- every `dependsOn` to name an object of the same kind that is rendered in the cluster
  (Kustomization → Kustomization, HelmRelease → HelmRelease), and no dependency cycle;
- every Kustomization `sourceRef` and HelmRelease `chartRef` / `chart.spec.sourceRef` to name
  a source rendered in the cluster, in the referring object's namespace (no cross-namespace refs);
- every Kustomization `path` to be a rendered folder of the same cluster holding a
  kustomization.yaml, and every rendered stage folder to be applied by some Kustomization;
- the stage Kustomizations to form the install chain of base/fleet.yaml: stage-01 first, each
  next one `dependsOn` exactly the previous one.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import Finding, Severity, SourceRef
from ..k8s import flux
from ..k8s.objects import KUSTOMIZE_FILES, RenderedObject, rendered_objects
from ..k8s.validate import Violation, finding, json_path

NAME = "flux-refs"
DESCRIPTION = "Flux dependsOn/sourceRef/chartRef/path targets exist in the same cluster; stages chain in order"
ORDER = 22
SCOPE = "cluster"

Key = tuple[str, str, str]  # (kind, namespace, name)


class ClusterObjects:
    """The Flux objects of one rendered cluster, indexed by (kind, namespace, name)."""

    def __init__(self, cluster: str, objects: list[RenderedObject]):
        self.cluster = cluster
        self.objects = objects
        self.index: dict[Key, RenderedObject] = {}
        for obj in objects:
            self.index.setdefault((obj.kind, obj.namespace, obj.name), obj)

    def of_kind(self, kind: str) -> list[RenderedObject]:
        return [o for o in self.objects if o.kind == kind]


def _spec(obj: RenderedObject) -> dict:
    spec = obj.obj.get("spec") if isinstance(obj.obj, dict) else None
    return spec if isinstance(spec, dict) else {}


def _ref_violation(objs: ClusterObjects, obj: RenderedObject, ref: Any, path: tuple, kinds: tuple[str, ...],
                   what: str) -> Iterator[Violation]:
    """A reference {kind?, name, namespace?} must hit a rendered object in the same namespace."""
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        return  # shape problems are k8s-schema's
    kind = ref.get("kind") or kinds[0]
    namespace = ref.get("namespace") or obj.namespace
    if namespace != obj.namespace:
        yield Violation(path + ("namespace",), f"{what} {kind} {namespace}/{ref['name']} is in another namespace",
                        f"namespace {obj.namespace} (cross-namespace references are not used in this fleet)")
        return
    if (kind, namespace, ref["name"]) not in objs.index:
        have = sorted(n for (k, ns, n) in objs.index if k == kind and ns == namespace)
        yield Violation(path + ("name",), f"{what} {kind} {namespace}/{ref['name']} is not rendered in cluster "
                        f"{objs.cluster}", f"one of: {', '.join(have)}" if have else f"a rendered {kind}")


def reference_violations(objs: ClusterObjects, obj: RenderedObject) -> Iterator[Violation]:
    """dependsOn, sourceRef, chartRef and chart.spec.sourceRef of one object."""
    spec = _spec(obj)
    deps = spec.get("dependsOn")
    if obj.kind in ("Kustomization", "HelmRelease") and isinstance(deps, list):
        for i, dep in enumerate(deps):
            yield from _ref_violation(objs, obj, dep, ("spec", "dependsOn", i), (obj.kind,), "dependsOn")
    if obj.kind == "Kustomization":
        yield from _ref_violation(objs, obj, spec.get("sourceRef"), ("spec", "sourceRef"),
                                  ("GitRepository", "OCIRepository", "Bucket"), "sourceRef")
    if obj.kind == "HelmRelease":
        if "chartRef" in spec:
            yield from _ref_violation(objs, obj, spec["chartRef"], ("spec", "chartRef"),
                                      ("OCIRepository", "HelmChart"), "chartRef")
        chart = spec.get("chart")
        if isinstance(chart, dict) and isinstance(chart.get("spec"), dict):
            yield from _ref_violation(objs, obj, chart["spec"].get("sourceRef"),
                                      ("spec", "chart", "spec", "sourceRef"), ("HelmRepository",), "chart sourceRef")


def path_violations(root: Path, objs: ClusterObjects, obj: RenderedObject, cluster_dir: str) -> Iterator[Violation]:
    """A Kustomization's path: a rendered folder of this cluster with a kustomization.yaml."""
    path = _spec(obj).get("path")
    if obj.kind != "Kustomization" or not isinstance(path, str):
        return
    rel = Path(path).as_posix().removeprefix("./").rstrip("/")
    if rel != cluster_dir and not rel.startswith(cluster_dir + "/"):
        yield Violation(("spec", "path"), f"path {path} is outside this cluster's folder",
                        f"a folder under ./{cluster_dir}")
        return
    folder = root / rel
    if not folder.is_dir():
        yield Violation(("spec", "path"), f"path {path} is not a rendered folder", "an existing rendered folder")
    elif not any((folder / name).is_file() for name in KUSTOMIZE_FILES):
        yield Violation(("spec", "path"), f"path {path} has no kustomization.yaml", "a kustomize folder")


def cycle_violations(objs: ClusterObjects) -> Iterator[tuple[RenderedObject, Violation]]:
    """dependsOn cycles: Flux would wait forever on every object in one."""
    graph: dict[Key, list[Key]] = defaultdict(list)
    for obj in objs.objects:
        deps = _spec(obj).get("dependsOn")
        if obj.kind in ("Kustomization", "HelmRelease") and isinstance(deps, list):
            for dep in deps:
                if isinstance(dep, dict) and isinstance(dep.get("name"), str):
                    graph[(obj.kind, obj.namespace, obj.name)].append(
                        (obj.kind, dep.get("namespace") or obj.namespace, dep["name"]))
    state: dict[Key, int] = {}
    reported: set[Key] = set()

    def visit(node: Key, trail: list[Key]) -> Iterator[tuple[RenderedObject, Violation]]:
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1 and nxt not in reported and nxt in objs.index:
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
                reported.add(nxt)
                names = " → ".join(n for (_, _, n) in cycle)
                yield objs.index[nxt], Violation(("spec", "dependsOn"), f"dependsOn cycle: {names}",
                                                 "an acyclic install order")
            elif state.get(nxt) is None:
                yield from visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            yield from visit(node, [node])


def stage_chain_violations(ctx: Any, objs: ClusterObjects, cluster_dir: str
                           ) -> Iterator[tuple[RenderedObject | None, Violation]]:
    """The stage Kustomizations of base/fleet.yaml (and a stage's custom-resources step) exist and
    chain stage-01 → … → stage-NN, each dependsOn exactly the step before (the stages the cluster's
    profile installs: the control plane has no Shuttle stage)."""
    from ..render.cluster import stage_steps  # the renderer's own naming

    fleet = ctx.fleet
    namespace = ((fleet.settings.get("flux") or {}).get("namespace")) or "flux-system"
    previous: str | None = None
    for _stage, name, folder in stage_steps(fleet, fleet.clusters[objs.cluster]):
        obj = objs.index.get(("Kustomization", namespace, name))
        if obj is None:
            yield None, Violation((), f"stage Kustomization {namespace}/{name} is not rendered in cluster "
                                  f"{objs.cluster}", "one Flux Kustomization per stage of base/fleet.yaml")
        else:
            deps = _spec(obj).get("dependsOn") or []
            names = [d.get("name") for d in deps if isinstance(d, dict)] if isinstance(deps, list) else []
            want = [previous] if previous else []
            if names != want:
                got = ", ".join(map(str, names)) or "nothing"
                yield obj, Violation(("spec", "dependsOn"), f"stage {name} depends on {got}",
                                     f"dependsOn [{previous}]" if previous else "no dependsOn (first stage)")
            path = _spec(obj).get("path")
            want_path = f"./{cluster_dir}/{folder}"
            if isinstance(path, str) and path.rstrip("/") != want_path:
                yield obj, Violation(("spec", "path"), f"stage {name} applies {path}", want_path)
        previous = name


def orphan_folders(root: Path, objs: ClusterObjects, cluster_dir: str) -> Iterator[str]:
    """Rendered folders with a kustomization.yaml under stages/ (at any depth) that no Kustomization applies."""
    applied = {Path(str(_spec(o).get("path", ""))).as_posix().removeprefix("./").rstrip("/")
               for o in objs.of_kind("Kustomization")}
    stages = root / cluster_dir / "stages"
    if not stages.is_dir():
        return
    for folder in sorted(p for p in stages.rglob("*") if p.is_dir()):  # a stage's custom-resources too
        rel = folder.relative_to(root).as_posix()
        if any((folder / n).is_file() for n in KUSTOMIZE_FILES) and rel not in applied:
            yield rel


def by_cluster(objects: Iterable[RenderedObject]) -> dict[str, ClusterObjects]:
    groups: dict[str, list[RenderedObject]] = defaultdict(list)
    for obj in objects:
        if obj.cluster and isinstance(obj.obj, dict) and flux.is_flux(obj.api_version):
            groups[obj.cluster].append(obj)
    return {cid: ClusterObjects(cid, objs) for cid, objs in sorted(groups.items())}


def _cluster_dir(ctx: Any, cluster: str) -> str:
    try:
        rendered = Path(ctx.rendered).resolve().relative_to(Path(ctx.root).resolve()).as_posix()
    except ValueError:
        rendered = "rendered"
    return f"{rendered}/clusters/{cluster}"


def check(ctx) -> Iterable[Finding]:
    root = Path(ctx.root)
    for cid, objs in by_cluster(rendered_objects(ctx)).items():
        cluster_dir = _cluster_dir(ctx, cid)
        for obj in objs.objects:
            for violation in reference_violations(objs, obj):
                yield finding(NAME, obj, violation)
            for violation in path_violations(root, objs, obj, cluster_dir):
                yield finding(NAME, obj, violation)
        for obj, violation in cycle_violations(objs):
            yield finding(NAME, obj, violation)
        if cid in getattr(ctx.fleet, "clusters", {}):
            for obj, violation in stage_chain_violations(ctx, objs, cluster_dir):
                if obj is not None:
                    yield finding(NAME, obj, violation)
                else:
                    yield Finding(NAME, Severity.ERROR, SourceRef(f"{cluster_dir}/stages.yaml"),
                                  f"{violation.message}; expected {violation.expected}", "",
                                  {"path": json_path(violation.path)})
        for rel in orphan_folders(root, objs, cluster_dir):
            yield Finding(NAME, Severity.ERROR, SourceRef(f"{rel}/kustomization.yaml"),
                          f"rendered folder {rel} is applied by no Flux Kustomization in cluster {cid}",
                          "every stage folder needs a Kustomization whose spec.path points at it")
