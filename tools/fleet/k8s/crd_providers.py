"""Who installs which custom resource definitions on a Starform cluster: data for `crd-order`.

Three providers exist before or beside the fleet's stages:
* Flux itself (`flux bootstrap`: source, kustomize, helm and notification controllers);
* DOKS, which manages the Gateway API CRDs (standard channel; README "Who owns the Gateway API
  CRDs") and Cilium's (its managed CNI: CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy);
* the charts of the fleet's HelmReleases, each under a values switch (checked against
  ../shared/charts/<chart>/<version>/values.yaml defaults and ../shared/crds by
  tests/test_crd_order.py).

Kinds of groups not listed here (and not built into Kubernetes) are installed by nobody.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: API groups Kubernetes serves itself (no CRD needed); "" is the core group.
BUILT_IN_GROUPS = frozenset({
    "", "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io", "apps",
    "authentication.k8s.io", "authorization.k8s.io", "autoscaling", "batch", "certificates.k8s.io",
    "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io", "flowcontrol.apiserver.k8s.io",
    "networking.k8s.io", "node.k8s.io", "policy", "rbac.authorization.k8s.io", "resource.k8s.io",
    "scheduling.k8s.io", "storage.k8s.io", "storagemigration.k8s.io", "internal.apiserver.k8s.io",
})

#: Flux's controllers as `flux bootstrap` installs them (their CRDs come with Flux).
FLUX = {
    "source.toolkit.fluxcd.io": frozenset({"GitRepository", "HelmRepository", "HelmChart", "OCIRepository", "Bucket"}),
    "kustomize.toolkit.fluxcd.io": frozenset({"Kustomization"}),
    "helm.toolkit.fluxcd.io": frozenset({"HelmRelease"}),
    "notification.toolkit.fluxcd.io": frozenset({"Alert", "Provider", "Receiver"}),
}

#: What DOKS (1.33+) installs and manages: the Gateway API kinds it ships (README) and Cilium's policies.
DOKS = {
    "gateway.networking.k8s.io": frozenset({"Gateway", "GatewayClass", "HTTPRoute", "GRPCRoute", "TLSRoute",
                                            "ReferenceGrant"}),
    "cilium.io": frozenset({"CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"}),
}

#: Envoy Gateway v1.9's own kinds (../shared/crds/envoy-gateway).
ENVOY_GATEWAY_KINDS = frozenset({"Backend", "BackendTrafficPolicy", "ClientTrafficPolicy", "EnvoyExtensionPolicy",
                                 "EnvoyPatchPolicy", "EnvoyProxy", "HTTPRouteFilter", "SecurityPolicy"})
#: Gateway API kinds (experimental channel, which gateway-helm's bundled CRDs install).
GATEWAY_API_KINDS = frozenset({"BackendTLSPolicy", "Gateway", "GatewayClass", "GRPCRoute", "HTTPRoute",
                               "ListenerSet", "ReferenceGrant", "TCPRoute", "TLSRoute", "UDPRoute"})


@dataclass(frozen=True)
class ChartCrds:
    """CRDs a chart installs when the values switch at `when` (a dotted path) is on; `default`
    is the chart's own default for it."""

    when: str
    default: bool
    group: str
    kinds: frozenset[str]


CHARTS: dict[str, tuple[ChartCrds, ...]] = {
    # gateway-crds-helm: both switches default to false (base/components/envoy-gateway-crds/values.yaml)
    "gateway-crds-helm": (ChartCrds("crds.envoyGateway.enabled", False, "gateway.envoyproxy.io", ENVOY_GATEWAY_KINDS),
                          ChartCrds("crds.gatewayAPI.enabled", False, "gateway.networking.k8s.io", GATEWAY_API_KINDS)),
    # gateway-helm: its `crds` subchart (Envoy Gateway's and Gateway API's), crds.enabled: true by default
    "gateway-helm": (ChartCrds("crds.enabled", True, "gateway.envoyproxy.io", ENVOY_GATEWAY_KINDS),
                     ChartCrds("crds.enabled", True, "gateway.networking.k8s.io", GATEWAY_API_KINDS)),
    # alloy: its `crds` subchart (PodLogs), crds.create: true by default
    "alloy": (ChartCrds("crds.create", True, "monitoring.grafana.com", frozenset({"PodLogs"})),),
}


def _switch(values: Any, dotted: str, default: bool) -> bool:
    node = values
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node is True if isinstance(node, bool) else default


def chart_kinds(chart: str, values: Any) -> set[tuple[str, str]]:
    """(group, kind) of every CRD a release of `chart` with `values` installs."""
    out: set[tuple[str, str]] = set()
    for entry in CHARTS.get(chart, ()):
        if _switch(values, entry.when, entry.default):
            out |= {(entry.group, kind) for kind in entry.kinds}
    return out


def preinstalled() -> frozenset[tuple[str, str]]:
    """(group, kind) there before any stage runs: Flux's and DOKS's."""
    return PREINSTALLED


PREINSTALLED = frozenset((group, kind) for table in (FLUX, DOKS) for group, kinds in table.items() for kind in kinds)


def needs_crd(api_version: str) -> bool:
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    return group not in BUILT_IN_GROUPS
