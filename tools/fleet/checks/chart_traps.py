"""Known chart template traps: merged values the pinned chart's templates turn into a broken release.

Key names are checked by `chart-values`; this check knows what a few *values* do. Each entry of
`TRAPS` names a chart, the versions whose templates were read (../shared/charts/README.md,
"Template traps"), the values path, the condition and what breaks. A trap is evaluated on each
cluster's merged values (every layer, plus the fleet-owned values) laid over the pinned chart's
defaults (`--charts`) the way Helm coalesces them: maps merge key by key (so a `{}` written over a
non-empty default map is filled by the default and springs nothing), lists and scalars replace.
A layer's `null` never reaches Helm (the fleet merge drops the key, so the chart default applies).
Without `--charts` an absent key or a `{}` counts as the chart's default, i.e. safe.
A finding points at the source line of the value that springs the trap; when the trap is sprung
by a chart default we did not change, at the line that set its partner value.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from ..errors import Finding, Severity, SourceRef
from ..model import Cluster, Component
from . import CheckContext
from ._workloads import effective_values

NAME = "chart-traps"
DESCRIPTION = "Merged Helm values do not spring a known template trap of the pinned chart (invalid YAML, rejected or broken objects)"
ORDER = 41
SCOPE = "cluster"

ABSENT = object()


class Values:
    """The effective values of one release: ours over the chart's defaults (when known)."""

    def __init__(self, values: dict, defaults_known: bool):
        self.data = values
        self.defaults_known = defaults_known

    def get(self, dotted: str | tuple, default: Any = ABSENT) -> Any:
        node: Any = self.data
        for key in (dotted.split(".") if isinstance(dotted, str) else dotted):
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def nil_or_empty(self, dotted: str) -> bool:
        """What a template splice sees as empty: [] / {} / "" — or nil, which an absent key is
        only when the chart's defaults are known not to set it."""
        value = self.get(dotted)
        if value is ABSENT:
            return self.defaults_known
        if value == {} and not self.defaults_known:
            return False  # Helm fills a {} from the chart's default map, which is unknown here
        return value in (None, [], {}, "")


#: A condition returns the values paths that spring the trap (empty: not sprung).
Condition = Callable[[Values], list[tuple]]


@dataclass(frozen=True)
class Trap:
    chart: str
    versions: tuple[str, ...]   # versions whose templates were read; others are not judged
    path: str                   # the values path(s) concerned, for the table and messages
    condition: str              # when it springs, in words
    breaks: str                 # what breaks
    sprung: Condition


def _p(dotted: str) -> tuple:
    return tuple(dotted.split("."))


def _alloy_rbac(v: Values) -> list[tuple]:
    if v.get("rbac.create", True) is False or v.get("rbac.namespaces", []):
        return []
    rules, cluster_rules = v.nil_or_empty("rbac.rules"), v.nil_or_empty("rbac.clusterRules")
    if rules == cluster_rules:
        return []
    return [_p("rbac.rules") if rules else _p("rbac.clusterRules"),
            _p("rbac.clusterRules") if rules else _p("rbac.rules")]


def _fluent_daemonset_list(key: str) -> Condition:
    def sprung(v: Values) -> list[tuple]:
        return [_p(key), _p("kind")] if v.get("kind", "DaemonSet") == "DaemonSet" and v.nil_or_empty(key) else []
    return sprung


def _fluent_args_hot_reload(v: Values) -> list[tuple]:
    return [_p("args"), _p("hotReload.enabled")] if v.get("hotReload.enabled", False) is True \
        and v.nil_or_empty("args") else []


def _empty_map(*keys: str) -> Condition:
    """A probe written as {}: the template renders a probe without a handler."""
    def sprung(v: Values) -> list[tuple]:
        return [_p(k) for k in keys if v.defaults_known and v.get(k) == {}]
    return sprung


def _fluent_network_policy(v: Values) -> list[tuple]:
    if v.get("networkPolicy.enabled", False) is not True:
        return []
    ingress = v.get("networkPolicy.ingress", ABSENT)
    if ingress in (ABSENT, None, {}) or not isinstance(ingress, dict):
        return [_p("networkPolicy.ingress"), _p("networkPolicy.enabled")]
    if ingress.get("from", ABSENT) in (None, [], ABSENT):
        return [_p("networkPolicy.ingress.from"), _p("networkPolicy.ingress")]
    return []


def _vmagent_metrics_endpoints(v: Values) -> list[tuple]:
    if v.get("rbac.create", True) is False or v.get("rbac.namespaced", False) is True:
        return []
    return [_p("allowedMetricsEndpoints")] if v.nil_or_empty("allowedMetricsEndpoints") else []


def _vmagent_pv_name(v: Values) -> list[tuple]:
    if v.get("mode", "deployment") == "statefulSet" and v.get("persistentVolume.enabled", False) is True \
            and v.get("persistentVolume.name", "") not in ("", None, ABSENT):
        return [_p("persistentVolume.name")]
    return []


def _vmagent_empty_extra_arg(v: Values) -> list[tuple]:
    args = v.get("extraArgs", {})
    return [("extraArgs", k) for k, value in sorted(args.items()) if value == ""] if isinstance(args, dict) else []


def _ksm_collectors(v: Values) -> list[tuple]:
    return [_p("collectors")] if v.nil_or_empty("collectors") else []


def _non_empty(key: str) -> Condition:
    def sprung(v: Values) -> list[tuple]:
        return [_p(key)] if v.nil_or_empty(key) else []
    return sprung


TRAPS: tuple[Trap, ...] = (
    Trap("alloy", ("1.11.1",), "rbac.rules / rbac.clusterRules",
         "a ClusterRole (rbac.namespaces empty) with exactly one of the two lists empty",
         "templates/rbac.yaml splices both lists one after the other: a bare []/null beside a block sequence "
         "is invalid YAML, the HelmRelease fails", _alloy_rbac),
    Trap("fluent-bit", ("0.58.1",), "daemonSetVolumeMounts", "kind DaemonSet and the list empty",
         "templates/_pod.tpl splices it after the config mount without a guard: invalid YAML "
         "(remove the items you do not want, never the list)", _fluent_daemonset_list("daemonSetVolumeMounts")),
    Trap("fluent-bit", ("0.58.1",), "daemonSetVolumes", "kind DaemonSet and the list empty",
         "templates/_pod.tpl splices it after the config volume without a guard: invalid YAML",
         _fluent_daemonset_list("daemonSetVolumes")),
    Trap("fluent-bit", ("0.58.1",), "args", "hotReload.enabled with args empty",
         "templates/_pod.tpl splices args, then appends --enable-hot-reload: invalid YAML", _fluent_args_hot_reload),
    Trap("fluent-bit", ("0.58.1",), "livenessProbe / readinessProbe", "written as {}",
         "the probe renders without a handler; the API server rejects the pod (\"must specify a handler type\"); "
         "use null to drop a probe", _empty_map("livenessProbe", "readinessProbe")),
    Trap("fluent-bit", ("0.58.1",), "networkPolicy.ingress",
         "networkPolicy.enabled with ingress unset/empty, or ingress.from empty",
         "no ingress rule denies everything (metrics on 2020 included); `from: []` renders `- from: []`, which "
         "admits every source", _fluent_network_policy),
    Trap("victoria-metrics-agent", ("0.46.0",), "allowedMetricsEndpoints",
         "a ClusterRole (rbac.namespaced false) with the list empty",
         "templates/rbac.yaml renders a nonResourceURLs rule without URLs; the API server rejects the ClusterRole",
         _vmagent_metrics_endpoints),
    Trap("victoria-metrics-agent", ("0.46.0",), "persistentVolume.name",
         "mode statefulSet, persistentVolume.enabled and a non-empty name",
         "the volumeClaimTemplate takes that name while the container mounts `tmpdata`: pods cannot be created",
         _vmagent_pv_name),
    Trap("victoria-metrics-agent", ("0.46.0",), "extraArgs.<flag>", "a flag whose value is the empty string",
         "rendered as a bare positional argument; vmagent exits (\"unprocessed command-line args left\"); "
         "use null to drop a default flag", _vmagent_empty_extra_arg),
    Trap("kube-state-metrics", ("8.4.0",), "collectors", "the list empty",
         "KSM then runs its default resources while templates/role.yaml grants none: every list/watch is forbidden",
         _ksm_collectors),
    Trap("metrics-server", ("3.13.1",), "tmpVolume", "empty",
         "templates/deployment.yaml splices it under `- name: tmp` without a guard: invalid YAML", _non_empty("tmpVolume")),
    Trap("gateway-helm", ("v1.9.0",), "deployment.ports", "the list empty",
         "templates/envoy-gateway-service.yaml splices it at the indentation of `ports:`: invalid YAML",
         _non_empty("deployment.ports")),
    Trap("gateway-helm", ("v1.9.0",), "deployment.envoyGateway.startupProbe / livenessProbe / readinessProbe",
         "written as {}", "the probe renders without a handler; the API server rejects the pod; use null to drop it",
         _empty_map("deployment.envoyGateway.startupProbe", "deployment.envoyGateway.livenessProbe",
                    "deployment.envoyGateway.readinessProbe")),
)


def traps_for(component: Component) -> list[Trap]:
    chart = component.chart
    if chart is None:
        return []
    return [t for t in TRAPS if t.chart == chart.name and chart.version in t.versions]


def _source(component: Component, paths: list[tuple]) -> SourceRef | None:
    """The line that wrote the first of `paths` in a fleet layer (chart defaults have none)."""
    provenance = component.merged.provenance
    for path in paths:
        ref = provenance.get(("values",) + tuple(path))
        if ref is not None:
            return ref
    return None


def sprung_traps(cluster: Cluster, component: Component, values: dict, defaults_known: bool
                 ) -> Iterator[tuple[Trap, tuple, SourceRef]]:
    effective = Values(values, defaults_known)
    for trap in traps_for(component):
        paths = trap.sprung(effective)
        if not paths:
            continue
        source = _source(component, paths) or component.source_of("chart", "version") or SourceRef(cluster.source)
        yield trap, paths[0], source


def check(ctx: CheckContext) -> Iterable[Finding]:
    found: dict[tuple, list[str]] = {}
    for cluster in ctx.fleet.clusters.values():
        for component in cluster.components.values():
            if not traps_for(component):
                continue
            values, defaults_known = effective_values(ctx, cluster, component)
            for trap, path, source in sprung_traps(cluster, component, values, defaults_known):
                found.setdefault((source, component.name, trap, path), []).append(cluster.id)
    for (source, name, trap, path), clusters in sorted(found.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][3])):
        chart = f"{trap.chart} {'/'.join(trap.versions)}"
        yield Finding(NAME, Severity.ERROR, source,
                      f"{name}: values.{'.'.join(map(str, path))} springs a template trap of chart {chart} "
                      f"({trap.condition}): {trap.breaks}; cluster(s): {', '.join(sorted(clusters))}",
                      details={"clusters": sorted(clusters)})
