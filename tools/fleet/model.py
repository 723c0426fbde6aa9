"""Stage 2: merge the layers into a typed, immutable-by-convention model of the fleet.

Merge order per cluster and component: base ← overlay(environment) ← region ← cluster.
A cluster's merged inputs are everything its render depends on, so `Cluster.fingerprint`
(a hash of them) is a sound cache key for its rendered output.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import inputs
from .errors import InputError, InputErrors, SourceRef, clip, processing
from .merge import Layered, from_indexed, merge_layers


@dataclass(frozen=True)
class Chart:
    name: str
    version: str
    repository: str

    @property
    def is_oci(self) -> bool:
        return self.repository.startswith("oci://")


@dataclass
class Component:
    """One component of one cluster after merging every layer."""

    name: str
    stage: str
    namespace: str
    create_namespace: bool
    kind: str                      # "helm" | "manifests"
    chart: Chart | None
    release_name: str
    values: dict
    image: str | None
    merged: Layered                # the whole merged component document with provenance
    after_releases: bool = False   # applied by the stage's second Kustomization (kinds its HelmReleases install)
    depends_on: tuple[str, ...] = ()   # same-stage components whose HelmRelease must be Ready first

    def source_of(self, *path: Any) -> SourceRef | None:
        return self.merged.source_of(tuple(path))


@dataclass(frozen=True)
class Region:
    slug: str
    vpc_cidr: str
    victoria_metrics_url: str
    vector_host: str
    vector_port: int
    clickhouse_url: str
    source: str                    # regions/<slug>/region.yaml
    vmagent_queue_gib: int         # vmagentQueue.volumeSize, in GiB

    @property
    def vmagent_queue_limit(self) -> str:
        """-remoteWrite.maxDiskUsagePerURL for a queue volume of `vmagent_queue_gib`: vmagent drops
        the oldest data only at this cap, so it must stay below the volume (a full volume fails
        writes instead). 80% leaves room for the ~500 MB chunk vmagent writes past the check."""
        return f"{self.vmagent_queue_gib * 1024 * 8 // 10}MiB"

    @property
    def remote_write_url(self) -> str:
        """VictoriaMetrics single-node accepts Prometheus remote write at /api/v1/write."""
        return self.victoria_metrics_url.rstrip("/") + "/api/v1/write"


@dataclass(frozen=True)
class RelabelRule:
    """A relabel rule as written (plain mapping) and where it was written."""

    rule: dict
    source: SourceRef


@dataclass
class Cluster:
    id: str
    region: Region
    environment: str
    shuttle_token_secret: str
    components: dict[str, Component]
    customer_relabel: list[RelabelRule]
    platform_relabel: list[RelabelRule]
    source: str                    # clusters/<id>/cluster.yaml
    profile: str = "customer"      # "customer" | "control-plane" (Starbase's cluster)
    control_plane: dict = field(default_factory=dict)   # controlPlane of cluster.yaml (+ probed clusters' environments)
    inputs: list[str] = field(default_factory=list)   # input files this cluster's render reads
    input_digest: str = ""         # see fingerprint

    @property
    def fingerprint(self) -> str:
        """Hash of every input file this cluster's model is built from (its own, its overlay and
        region, every base component and relabel set). With render.fleet.code_digest (renderer,
        templates, settings) it keys the render: same key → same rendered output."""
        return self.input_digest


@dataclass
class Fleet:
    root: Path
    settings: dict
    stages: list[str]
    regions: dict[str, Region]
    clusters: dict[str, Cluster]
    raw: inputs.RawInputs

    def components_in_stage(self, cluster: Cluster, stage: str) -> list[Component]:
        return [c for c in cluster.components.values() if c.stage == stage]

    def stages_of(self, cluster: Cluster) -> list[str]:
        """The stages this cluster installs, in order: those with a component for its profile
        (the control-plane cluster has no Shuttle stage). Numbering stays the fleet's."""
        return [s for s in self.stages if self.components_in_stage(cluster, s)]


def build(raw: inputs.RawInputs) -> Fleet:
    """Merge every cluster's layers; raise InputErrors for patches naming unknown components."""
    errors: list[InputError] = []
    regions = {slug: _region(doc) for slug, doc in raw.regions.items()}
    clusters = {}
    for cid, doc in sorted(raw.clusters.items()):
        try:
            with processing(f"{doc.name} (merging its layers)"):
                clusters[cid] = _cluster(raw, doc, regions[doc.data["region"]])
        except InputErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise InputErrors(errors)
    settings = raw.settings.data
    return Fleet(raw.root, settings, list(settings["stages"]), regions, clusters, raw)


def load(root: Path, clusters: set[str] | None = None) -> Fleet:
    """The fleet model; with `clusters`, of those clusters only (and the clusters they probe)."""
    return build(inputs.load(root, clusters))


def _region(doc: inputs.Document) -> Region:
    d = doc.data
    e = d["endpoints"]
    return Region(d["region"], d["vpcCidr"], e["victoriaMetrics"]["url"], e["vector"]["host"],
                  int(e["vector"]["port"]), e["clickhouse"]["url"], doc.name,
                  int(d["vmagentQueue"]["volumeSize"].removesuffix("Gi")))


def _patch_layers(doc: inputs.Document, kinds: dict[str, str], errors: list[InputError]) -> dict[str, Layered]:
    """Per-component patch layers of one overlay/region/cluster document (`kinds`: name → kind)."""
    out = {}
    for name, patch in (doc.data.get("components") or {}).items():
        if name not in kinds:
            errors.append(InputError(f"patch for unknown component {clip(name)}", doc.ref("components", name),
                                     path=f"$.components.{name}", expected=f"one of {sorted(kinds)}"))
            continue
        if kinds[name] == "manifests" and patch:
            # A manifests component without values (Shuttle) is identical on every cluster but for
            # the values the fleet sets from the cluster itself (ID, region, token Secret name):
            # nothing of it may be patched. One rendered from values (the Envoy data plane) takes
            # patches of its values like a Helm component.
            errors.append(InputError(f"patch for {name!r}, whose manifests no layer may change",
                                     doc.ref("components", name), path=f"$.components.{name}",
                                     expected=f"no components.{name} patch (its cluster ID, region and "
                                              "shuttle.tokenSecretName come from cluster.yaml)"))
            continue
        out[name] = from_indexed(doc.ix.sub(("components", name)))
    return out


def _cluster(raw: inputs.RawInputs, doc: inputs.Document, region: Region) -> Cluster:
    errors: list[InputError] = []
    kinds = {name: "values" if "values" in component.data else component.data["kind"]
             for name, component in raw.components.items()}
    overlay_doc = raw.overlays[doc.data["environment"]]
    region_doc = raw.regions[region.slug]
    layers = [_patch_layers(d, kinds, errors) for d in (overlay_doc, region_doc, doc)]
    if errors:
        raise InputErrors(errors)
    components = {}
    profile = doc.data.get("profile", "customer")
    for name, base_doc in sorted(raw.components.items()):
        if profile not in base_doc.data.get("profiles", [profile]):
            continue  # not installed on this profile of cluster
        stack = [base_doc.layered] + [layer[name] for layer in layers if name in layer]
        components[name] = _component(merge_layers(stack))
    files = [raw.settings.name, overlay_doc.name, region_doc.name, doc.name]
    files += [d.name for d in raw.components.values()] + [d.name for d in raw.relabel.values()]
    # A control-plane cluster's probes carry the probed clusters' environments.
    probed = [raw.clusters[lb["cluster"]] for lb in (doc.data.get("controlPlane") or {}).get("loadBalancers", [])]
    files += [d.name for d in probed]
    shared = sorted(d.digest for d in (*raw.components.values(), *raw.relabel.values()))
    digest = hashlib.sha256("\0".join([raw.settings.digest, overlay_doc.digest, region_doc.digest, doc.digest,
                                          *shared, *(d.digest for d in probed)]).encode()).hexdigest()
    return Cluster(
        input_digest=digest,
        id=doc.data["id"], region=region, environment=doc.data["environment"],
        shuttle_token_secret=(doc.data.get("shuttle") or {}).get("tokenSecretName", ""), components=components,
        customer_relabel=_relabel(raw, doc, "customer"), platform_relabel=_relabel(raw, doc, "platform"),
        source=doc.name, inputs=sorted(set(files)),
        profile=profile, control_plane=_control_plane(raw, doc),
    )


def _control_plane(raw: inputs.RawInputs, doc: inputs.Document) -> dict:
    """The control-plane settings, each probed load balancer with its cluster's environment:
    the probe's series carry it, so a staging cluster's load balancer never pages critical."""
    cp = copy.deepcopy(doc.data.get("controlPlane") or {})
    for lb in cp.get("loadBalancers", []):
        lb["environment"] = raw.clusters[lb["cluster"]].data["environment"]
    return cp


def _component(merged: Layered) -> Component:
    d = merged.data
    chart = Chart(**d["chart"]) if d.get("chart") else None
    return Component(
        name=d["name"], stage=d["stage"], namespace=d["namespace"],
        create_namespace=d.get("createNamespace", True), kind=d["kind"], chart=chart,
        release_name=d.get("releaseName", d["name"]), values=d.get("values") or {},
        image=d.get("image"), merged=merged, after_releases=bool(d.get("afterReleases", False)),
        depends_on=tuple(d.get("dependsOn") or ()),
    )


# The agent that runs each rule set, whose validation rules apply: the customer path is vmagent's
# remote-write relabeling, the platform path Alloy's prometheus.relabel (Prometheus semantics).
RELABEL_FLAVOR = {"customer": "vmagent", "platform": "prometheus"}


_VALID_RULES: set[tuple[str, str]] = set()  # (flavor, rule as JSON) already accepted: base rules repeat per cluster


def _validated(rules: list[RelabelRule], kind: str) -> list[RelabelRule]:
    """Reject rules the agent would reject, at their source line, before anything renders."""
    from .relabel.engine import rule_from_mapping  # the engine is the one definition of validity
    flavor = RELABEL_FLAVOR.get(kind, "prometheus")
    errors = []
    for r in rules:
        key = (flavor, json.dumps(r.rule, sort_keys=True, default=str))
        if key in _VALID_RULES:
            continue
        try:
            rule_from_mapping(r.rule, r.source, flavor)
            _VALID_RULES.add(key)
        except InputError as exc:
            errors.append(exc)
    if errors:
        raise InputErrors(errors)
    return rules


def _relabel(raw: inputs.RawInputs, cluster_doc: inputs.Document, kind: str) -> list[RelabelRule]:
    """Base rule set for `kind`, then the cluster's extra rules appended (order is semantics)."""
    rules: list[RelabelRule] = []
    base = raw.relabel.get(kind)
    if base is not None:
        if not isinstance(base.data, list):
            raise InputErrors([InputError("a relabel rule set must be a YAML list of rules", SourceRef(base.name, 1, 1))])
        rules += [RelabelRule(r, base.ref(i)) for i, r in enumerate(base.data)]
    extra = (cluster_doc.data.get("relabel") or {}).get(kind) or []
    rules += [RelabelRule(r, cluster_doc.ref("relabel", kind, i)) for i, r in enumerate(extra)]
    return _validated(rules, kind)
