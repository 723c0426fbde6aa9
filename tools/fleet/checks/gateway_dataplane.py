"""gateway-dataplane: the Envoy data plane is there, highly available, and what the `envoy` job scrapes.

Envoy Gateway's controller routes nothing without a Gateway of a GatewayClass it controls; the
EnvoyProxy the class names shapes the proxies. For each cluster this holds the merged
`gateway-dataplane` values to the seeds' "2+ replicas" (a PDB that still lets a node drain,
spread over nodes, resources), and replays a proxy pod of the rendered Gateway — the discovery
labels Envoy Gateway gives it — through the vmagent `envoy` job's relabel rules with the real
relabel engine: a job that drops it would leave the Envoy recording rules without input.

It also refuses the EnvoyProxy settings that silently rename what the customer L7 figures are
attributed by (base/rules/README.md, "Which Envoy numbers a customer dashboard can trust"), in
Envoy Gateway's default EnvoyProxy spec (gateway-helm values `config.envoyGateway.envoyProxy`,
the base of every proxy's settings: our GatewayClass's EnvoyProxy replaces it today, as it sets no
`mergeType`, but it is the one place a layer can write these fields, since the rendered EnvoyProxy
takes only `spec.provider` from the data plane's values):
- `mergeBackends`, present at all (it enables cluster deduplication: one cluster per backend
  instead of `httproute/<ns>/<route>/rule/<n>`);
- a `telemetry.metrics.clusterStatName` other than Envoy Gateway's default (the stat name the
  series carry as `envoy_cluster_name`);
- `mergeGateways: true` (the proxies then carry the GatewayClass owner label instead of the
  Gateway's, which the `envoy` job selects on).
Findings point at the values line that set (or should set) the value.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

from ..errors import Finding, Severity, SourceRef
from ..model import Cluster, Component
from ..relabel.engine import apply, rule_from_mapping
from ..render import gateway
from . import CheckContext

NAME = "gateway-dataplane"
DESCRIPTION = "The Envoy data plane (GatewayClass, EnvoyProxy >= 2 replicas with drainable PDB, spread, resources; shared Gateway) exists and the envoy scrape job selects its proxies"
ORDER = 46
SCOPE = "cluster"

COMPONENT = "gateway-dataplane"
CONTROLLER = "envoy-gateway"
#: Envoy Gateway's default EnvoyProxy spec inside the gateway-helm values (EnvoyGateway config API).
DEFAULT_PROXY_SPEC = ("config", "envoyGateway", "envoyProxy")
#: EnvoyProxy spec.telemetry.metrics.clusterStatName's default (Envoy Gateway v1.9.0 CRD): the
#: `httproute/<ns>/<route>/rule/<n>` names base/rules/recording/20-envoy.yaml parses.
DEFAULT_CLUSTER_STAT_NAME = "%ROUTE_KIND%/%ROUTE_NAMESPACE%/%ROUTE_NAME%/rule/%ROUTE_RULE_NUMBER%"
SCRAPE_JOB = "envoy"
METRICS_PORT = "metrics"   # the proxy container's stats port name (19001, /stats/prometheus)
MIN_REPLICAS = 2


def _get(values: Any, *path: Any) -> Any:
    for key in path:
        if isinstance(key, int) and isinstance(values, list):
            values = values[key] if key < len(values) else None
        elif isinstance(values, dict):
            values = values.get(key)
        else:
            return None
    return values


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def ha_problems(values: dict) -> Iterator[tuple[tuple[str, ...], str]]:
    """(values path, problem) for a data plane that is not highly available."""
    deployment = ("envoyProxy", "envoyDeployment")
    replicas = _int(_get(values, *deployment, "replicas"))
    if replicas is None or replicas < MIN_REPLICAS:
        yield deployment + ("replicas",), f"must be an integer >= {MIN_REPLICAS} (one proxy is an outage on every drain)"
    pdb = _get(values, "envoyProxy", "envoyPDB")
    min_available = _int(_get(pdb, "minAvailable"))
    max_unavailable = _int(_get(pdb, "maxUnavailable"))
    if min_available is None and max_unavailable is None:
        yield ("envoyProxy", "envoyPDB"), "needs an integer minAvailable >= 1 or maxUnavailable >= 1"
    elif min_available is not None and (min_available < 1 or (replicas is not None and min_available >= replicas)):
        yield ("envoyProxy", "envoyPDB", "minAvailable"), \
            f"must be >= 1 and below replicas ({replicas}), or no node holding a proxy can be drained"
    elif max_unavailable is not None and max_unavailable < 1:
        yield ("envoyProxy", "envoyPDB", "maxUnavailable"), "must be >= 1, or no node holding a proxy can be drained"
    if not _get(values, *deployment, "pod", "topologySpreadConstraints"):
        yield deployment + ("pod", "topologySpreadConstraints"), "must spread the proxies over nodes"
    resources = _get(values, *deployment, "container", "resources") or {}
    if not _get(resources, "requests", "cpu") or not _get(resources, "requests", "memory") \
            or not _get(resources, "limits", "memory"):
        yield deployment + ("container", "resources"), "needs cpu and memory requests and a memory limit"


def renaming_problems(spec: Any) -> Iterator[tuple[tuple[str, ...], str]]:
    """(path in an EnvoyProxy spec, problem) for each setting that renames the Envoy clusters or
    proxies the customer L7 figures are attributed by."""
    if not isinstance(spec, dict):
        return
    if "mergeBackends" in spec:
        yield ("mergeBackends",), ("enables cluster deduplication (even empty): routes to one backend share one "
                                   "cluster, no longer named httproute/<ns>/<route>/rule/<n>, so per-service L7 "
                                   "series vanish")
    stat_name = _get(spec, "telemetry", "metrics", "clusterStatName")
    if stat_name is not None and stat_name != DEFAULT_CLUSTER_STAT_NAME:
        yield ("telemetry", "metrics", "clusterStatName"), \
            (f"renames every cluster's stats (envoy_cluster_name) away from {DEFAULT_CLUSTER_STAT_NAME}: "
             "per-service L7 series vanish")
    if spec.get("mergeGateways") is True:
        yield ("mergeGateways",), ("puts the proxies under the GatewayClass owner label, which the `envoy` "
                                   "scrape job does not select: every Envoy series vanishes")


def proxy_target(component: Component) -> dict[str, str]:
    """The discovery labels of one proxy pod's metrics port of the rendered Gateway."""
    labels = gateway.proxy_pod_labels(component.values["gateway"]["name"], component.namespace)
    target = {f"__meta_kubernetes_pod_label_{_sanitize(k)}": v for k, v in labels.items()}
    target.update({"__meta_kubernetes_namespace": component.namespace, "__meta_kubernetes_pod_name": "envoy-0",
                   "__meta_kubernetes_pod_container_port_name": METRICS_PORT, "__address__": "10.0.0.1:19001",
                   "job": SCRAPE_JOB, "__metrics_path__": "/stats/prometheus", "__scheme__": "http"})
    return target


def _sanitize(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def scrape_problem(cluster: Cluster, dataplane: Component) -> tuple[SourceRef, str] | None:
    vmagent = cluster.components.get("vmagent")
    jobs = _get(vmagent.values, "config", "scrape_configs") if vmagent else None
    for i, job in enumerate(jobs or []):
        if isinstance(job, dict) and job.get("job_name") == SCRAPE_JOB:
            source = vmagent.source_of("values", "config", "scrape_configs", i) or SourceRef(cluster.source)
            namespaces = _get(job, "kubernetes_sd_configs", 0, "namespaces", "names")
            if namespaces and dataplane.namespace not in namespaces:
                return source, f"discovers pods in {namespaces}, not {dataplane.namespace} where the proxies run"
            rules = [rule_from_mapping(r, source, "vmagent") for r in job.get("relabel_configs") or []]
            if apply(rules, proxy_target(dataplane), "vmagent") is None:
                return source, "drops the proxy pods of the shared Gateway (its relabel_configs keep none)"
            return None
    if vmagent is None:
        return None
    return vmagent.source_of("values", "config", "scrape_configs") or SourceRef(cluster.source), \
        f"has no `{SCRAPE_JOB}` job: the Envoy recording rules would have no input"


def check(ctx: CheckContext) -> Iterable[Finding]:
    found: dict[tuple, list[str]] = {}
    for cluster in ctx.fleet.clusters.values():
        dataplane = cluster.components.get(COMPONENT)
        if dataplane is None:
            if "envoy-gateway" in cluster.components:
                found.setdefault((SourceRef(cluster.source), "no gateway-dataplane component: Envoy Gateway "
                                  "runs no proxy, nothing is routed"), []).append(cluster.id)
            continue
        for path, problem in ha_problems(dataplane.values):
            source = dataplane.source_of("values", *path) or SourceRef(cluster.source)
            found.setdefault((source, f"{COMPONENT}: values.{'.'.join(path)} {problem}"), []).append(cluster.id)
        controller = cluster.components.get(CONTROLLER)
        if controller is not None:
            for path, problem in renaming_problems(_get(controller.values, *DEFAULT_PROXY_SPEC)):
                full = DEFAULT_PROXY_SPEC + path
                source = controller.source_of("values", *full) or controller.source_of("values", *full[:-1]) \
                    or SourceRef(cluster.source)
                found.setdefault((source, f"{CONTROLLER}: values.{'.'.join(full)} {problem}"), []).append(cluster.id)
        scrape = scrape_problem(cluster, dataplane)
        if scrape is not None:
            found.setdefault((scrape[0], f"vmagent: scrape job `{SCRAPE_JOB}` {scrape[1]}"), []).append(cluster.id)
    for (source, message), clusters in sorted(found.items()):
        yield Finding(NAME, Severity.ERROR, source, f"{message}; cluster(s): {', '.join(sorted(clusters))}",
                      details={"clusters": sorted(clusters)})
