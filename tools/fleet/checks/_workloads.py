"""What each pinned chart (or values-driven manifests component) runs, for the hygiene checks.

Helm values decide which containers a chart renders, how many replicas and which PDB; reading
them needs the chart's own keys. `WORKLOADS` is that knowledge as data, one entry per chart (or
per manifests component rendered from values): the values paths of each container's resources
(with the switch that turns the container on), of the replica count and of the PDB, and a
function that says how many pods a drain may take given those values. Values are the effective
ones: the cluster's merged values (every layer, fleet-owned values applied) over the pinned
chart's defaults, coalesced as Helm does (maps merge, lists and scalars replace).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from ..cache import by_identity
from ..merge import Layered, merge_layers
from ..model import Cluster, Component
from ..render.wiring import wired_values
from .chart_values import chart_defaults, defaults_cache

ABSENT = object()


def get(values: Any, dotted: str | tuple, default: Any = None) -> Any:
    for key in (dotted.split(".") if isinstance(dotted, str) else dotted):
        if not isinstance(values, dict) or key not in values:
            return default
        values = values[key]
    return values


@lru_cache(maxsize=None)
def _defaults_layer(charts: Path, chart: str, version: str, cache_dir: Path | None = None) -> Layered | None:
    """The pinned defaults as a merge base, built (and stripped of nulls) once per chart."""
    defaults = chart_defaults(charts, chart, version, cache_dir)
    return Layered(defaults, {}) if isinstance(defaults, dict) else None


def effective_values(ctx: Any, cluster: Cluster, component: Component) -> tuple[dict, bool]:
    """The values the chart's templates see — ours (fleet-owned values applied) over the pinned
    defaults, coalesced as Helm does — and whether the defaults were known. Computed once per
    set of values and chart for all checks of a lint run (`ctx.cache`): clusters that share a
    component's merged values share the result (read-only)."""
    values = wired_values(ctx, cluster, component)
    chart = component.chart

    def merged() -> tuple[dict, bool]:
        charts = ctx.options.get("charts")
        base = _defaults_layer(Path(charts), chart.name, chart.version, defaults_cache(ctx)) if charts and chart else None
        return (merge_layers([base, Layered(values, {})]).data, True) if base is not None else (values, False)

    return by_identity(ctx.cache, ("effective-values", chart and (chart.name, chart.version)), values, merged)


def disruptable(budget: Any, replicas: int) -> int:
    """How many of `replicas` pods a PDB spec ({minAvailable|maxUnavailable}) lets a drain evict.
    Percentages round up for both fields (the disruption controller's GetScaledValueFromIntOrPercent)."""
    def scaled(value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit():
            return math.ceil(int(value[:-1]) * replicas / 100)
        return None
    if not isinstance(budget, dict):
        return 0
    if get(budget, "minAvailable") is not None:
        minimum = scaled(budget["minAvailable"])
        return max(0, replicas - minimum) if minimum is not None else 0
    maximum = scaled(get(budget, "maxUnavailable"))
    return max(0, maximum) if maximum is not None else 0


@dataclass(frozen=True)
class Workload:
    """One chart's (or values-driven component's) containers, replicas and PDB."""

    #: container name → (resources values path, the switch that renders it or None)
    containers: dict[str, tuple[str, str | None]]
    #: values → replica count of the replicated workload (None: a DaemonSet / not replicated)
    replicas: Callable[[dict], int | None] = lambda v: None
    replicas_path: str = ""
    #: values → the PDB spec the chart renders ({minAvailable|maxUnavailable}) or None (no PDB)
    budget: Callable[[dict], dict | None] = lambda v: None
    budget_path: str = ""
    paths: tuple[str, ...] = field(default=())  # extra values paths a finding may point at


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _enabled_budget(prefix: str, keys: tuple[str, ...] = ("minAvailable", "maxUnavailable"),
                    drop_zero: bool = False) -> Callable[[dict], dict | None]:
    """A PDB behind `<prefix>.enabled`, copying the non-empty `keys`."""
    def budget(v: dict) -> dict | None:
        if get(v, f"{prefix}.enabled") is not True:
            return None
        spec = {k: get(v, f"{prefix}.{k}") for k in keys
                if get(v, f"{prefix}.{k}") not in (None, "") and not (drop_zero and get(v, f"{prefix}.{k}") == 0)}
        return spec or None
    return budget


def _gateway_budget(v: dict) -> dict | None:
    """gateway-helm renders its PDB only for an integer >= 1 (a percentage string gives none)."""
    for key in ("minAvailable", "maxUnavailable"):
        value = _int(get(v, f"podDisruptionBudget.{key}"))
        if value is not None and value >= 1:
            return {key: value}
    return None


def _ksm_budget(v: dict) -> dict | None:
    spec = get(v, "podDisruptionBudget")
    return spec if isinstance(spec, dict) and spec else None


WORKLOADS: dict[str, Workload] = {
    "alloy": Workload(
        {"alloy": ("alloy.resources", None), "config-reloader": ("configReloader.resources", "configReloader.enabled")},
        replicas=lambda v: _int(get(v, "controller.replicas")) if get(v, "controller.type") in ("deployment", "statefulset") else None,
        replicas_path="controller.replicas",
        budget=_enabled_budget("controller.podDisruptionBudget"), budget_path="controller.podDisruptionBudget"),
    "fluent-bit": Workload(
        {"fluent-bit": ("resources", None), "hot-reload": ("hotReload.resources", "hotReload.enabled")},
        replicas=lambda v: _int(get(v, "replicaCount")) if get(v, "kind") == "Deployment" else None,
        replicas_path="replicaCount",
        budget=lambda v: _enabled_budget("podDisruptionBudget", ("maxUnavailable",))(v) if get(v, "kind") == "Deployment" else None,
        budget_path="podDisruptionBudget"),
    "victoria-metrics-agent": Workload(
        {"vmagent": ("resources", None)},
        replicas=lambda v: _int(get(v, "replicaCount")) if get(v, "mode") in ("deployment", "statefulSet") else None,
        replicas_path="replicaCount",
        budget=_enabled_budget("podDisruptionBudget", drop_zero=True), budget_path="podDisruptionBudget"),
    "kube-state-metrics": Workload(
        {"kube-state-metrics": ("resources", None), "kube-rbac-proxy": ("kubeRBACProxy.resources", "kubeRBACProxy.enabled")},
        replicas=lambda v: _int(get(v, "replicas")), replicas_path="replicas",
        budget=_ksm_budget, budget_path="podDisruptionBudget"),
    "metrics-server": Workload(
        {"metrics-server": ("resources", None), "addon-resizer": ("addonResizer.resources", "addonResizer.enabled")},
        replicas=lambda v: _int(get(v, "replicas")), replicas_path="replicas",
        budget=_enabled_budget("podDisruptionBudget"), budget_path="podDisruptionBudget"),
    "gateway-helm": Workload(
        {"envoy-gateway": ("deployment.envoyGateway.resources", None), "certgen": ("certgen.job.resources", None)},
        replicas=lambda v: _int(get(v, "hpa.minReplicas")) if get(v, "hpa.enabled") is True else _int(get(v, "deployment.replicas")),
        replicas_path="deployment.replicas",
        budget=_gateway_budget, budget_path="podDisruptionBudget"),
    "gateway-crds-helm": Workload({}),   # CRDs only: no container
    "prometheus-node-exporter": Workload(
        {"node-exporter": ("resources", None), "kube-rbac-proxy": ("kubeRBACProxy.resources", "kubeRBACProxy.enabled")}),
    # manifests rendered from values (tools/fleet/render/gateway.py): the Envoy proxies
    "gateway-dataplane": Workload(
        {"envoy": ("envoyProxy.envoyDeployment.container.resources", None)},
        replicas=lambda v: _int(get(v, "envoyProxy.envoyDeployment.replicas")),
        replicas_path="envoyProxy.envoyDeployment.replicas",
        budget=lambda v: get(v, "envoyProxy.envoyPDB") or None, budget_path="envoyProxy.envoyPDB"),
}


def workload_of(component: Component) -> Workload | None:
    """The table entry of a helm component's chart, or of a values-driven manifests component."""
    return WORKLOADS.get(component.chart.name if component.chart else component.name)
