"""Envoy Gateway's data plane as data: a GatewayClass, its EnvoyProxy and the shared Gateway.

Envoy Gateway's controller (the envoy-gateway HelmRelease) routes nothing by itself: it runs
Envoy proxies for each Gateway of a GatewayClass it controls. The EnvoyProxy named by the
GatewayClass's parametersRef shapes those proxies (replicas, PDB, topology spread, resources).
All three come from the merged `gateway-dataplane` values, so a layer can patch them with
provenance; the renderer adds only what follows from the names (parametersRef, the spread
constraints' selector). Scrape jobs and lint select the proxies by `proxy_pod_labels`.

With them goes the admission policy on customer HTTPRoutes (ROUTE_POLICY, data as written): the
naming contract the Envoy recording rules attribute by, enforced where routes are admitted.
"""
from __future__ import annotations

import copy
from pathlib import Path

from .. import yamlio
from ..model import Cluster, Component

GATEWAY_API = "gateway.networking.k8s.io/v1"
ENVOY_API = "gateway.envoyproxy.io/v1alpha1"
#: Envoy Gateway's controllerName (gateway-helm values config.envoyGateway.gateway.controllerName).
CONTROLLER_NAME = "gateway.envoyproxy.io/gatewayclass-controller"
LABELS = {"app.kubernetes.io/managed-by": "starform-fleet", "app.kubernetes.io/part-of": "starform"}
#: ValidatingAdmissionPolicy + binding on customer HTTPRoutes (the Envoy attribution contract).
ROUTE_POLICY = Path("base/components/gateway-dataplane/httproute-policy.yaml")


def load_route_policy(root: Path) -> list[dict]:
    """The policy documents of ROUTE_POLICY, each labelled managed-by the fleet like the rest."""
    text = yamlio.read_text(root / ROUTE_POLICY, ROUTE_POLICY.as_posix())
    docs = [yamlio.plain(d) for d in yamlio.load_all_text(text, ROUTE_POLICY.as_posix()) if d is not None]
    for doc in docs:
        doc.setdefault("metadata", {}).setdefault("labels", {})["app.kubernetes.io/managed-by"] = "starform-fleet"
    return docs


def proxy_pod_labels(gateway: str, namespace: str) -> dict[str, str]:
    """The labels Envoy Gateway puts on the proxy pods of one Gateway (its infra resources)."""
    return {"app.kubernetes.io/component": "proxy", "app.kubernetes.io/managed-by": "envoy-gateway",
            "app.kubernetes.io/name": "envoy", "gateway.envoyproxy.io/owning-gateway-name": gateway,
            "gateway.envoyproxy.io/owning-gateway-namespace": namespace}


def _meta(name: str, namespace: str | None = None) -> dict:
    meta: dict = {"name": name, "labels": dict(LABELS)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def render(cluster: Cluster, component: Component, route_policy: list[dict] = ()) -> list[dict]:
    """The GatewayClass, its EnvoyProxy, the shared Gateway, then `route_policy` (load_route_policy)."""
    values = copy.deepcopy(component.values)
    ns = component.namespace
    class_name = values["gatewayClassName"]
    gateway = values["gateway"]
    kubernetes = values["envoyProxy"]
    selector = {"matchLabels": proxy_pod_labels(gateway["name"], ns)}
    pod = kubernetes.get("envoyDeployment", {}).get("pod", {})
    for constraint in pod.get("topologySpreadConstraints", []):
        constraint.setdefault("labelSelector", selector)
    envoy_proxy = {"apiVersion": ENVOY_API, "kind": "EnvoyProxy", "metadata": _meta(class_name, ns),
                   "spec": {"provider": {"type": "Kubernetes", "kubernetes": kubernetes}}}
    gateway_class = {"apiVersion": GATEWAY_API, "kind": "GatewayClass", "metadata": _meta(class_name),
                     "spec": {"controllerName": CONTROLLER_NAME,
                              "parametersRef": {"group": "gateway.envoyproxy.io", "kind": "EnvoyProxy",
                                                "name": class_name, "namespace": ns}}}
    shared = {"apiVersion": GATEWAY_API, "kind": "Gateway", "metadata": _meta(gateway["name"], ns),
              "spec": {"gatewayClassName": class_name, "listeners": gateway["listeners"]}}
    return [gateway_class, envoy_proxy, shared] + copy.deepcopy(list(route_policy))
