"""Flux objects as plain data (current APIs only: source v1, helm v2, kustomize v1).

Each function returns one Kubernetes object as a dict; nothing here knows about files.
"""
from __future__ import annotations

from typing import Any

SOURCE_API = "source.toolkit.fluxcd.io/v1"
HELM_API = "helm.toolkit.fluxcd.io/v2"
KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1"
HELM_CHART_MEDIA_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"

LABELS = {"app.kubernetes.io/managed-by": "starform-fleet"}


def _meta(name: str, namespace: str | None = None, labels: dict | None = None) -> dict:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {**LABELS, **(labels or {})}
    return meta


#: Flux never deletes an object with this annotation, even when it leaves the source (a stage
#: renamed or reordered, a component moved): a platform namespace holds what Flux did not create
#: (Secrets provisioned out of band, vmagent's queue volumes, leases), and deleting the
#: namespace deletes them.
PRUNE_DISABLED = {"kustomize.toolkit.fluxcd.io/prune": "disabled"}


def namespace(name: str) -> dict:
    meta = _meta(name)
    meta["annotations"] = dict(PRUNE_DISABLED)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def git_repository(name: str, namespace: str, url: str, branch: str, interval: str, secret: str | None) -> dict:
    spec: dict[str, Any] = {"interval": interval, "url": url, "ref": {"branch": branch}}
    if secret:
        spec["secretRef"] = {"name": secret}
    return {"apiVersion": SOURCE_API, "kind": "GitRepository", "metadata": _meta(name, namespace), "spec": spec}


def kustomization(name: str, namespace: str, path: str, source: str, *, interval: str, retry: str,
                  timeout: str, depends_on: list[str] = (), wait: bool = True) -> dict:
    spec: dict[str, Any] = {
        "interval": interval,
        "retryInterval": retry,
        "timeout": timeout,
        "path": path,
        "prune": True,
        "wait": wait,
        "sourceRef": {"kind": "GitRepository", "name": source},
    }
    if depends_on:
        spec["dependsOn"] = [{"name": d} for d in depends_on]
    return {"apiVersion": KUSTOMIZE_API, "kind": "Kustomization", "metadata": _meta(name, namespace), "spec": spec}


def helm_repository(name: str, namespace: str, url: str) -> dict:
    return {"apiVersion": SOURCE_API, "kind": "HelmRepository", "metadata": _meta(name, namespace),
            "spec": {"interval": "1h", "url": url}}


def oci_repository(name: str, namespace: str, url: str, tag: str) -> dict:
    """An OCI Helm chart as Flux documents it for HelmRelease.spec.chartRef."""
    return {"apiVersion": SOURCE_API, "kind": "OCIRepository", "metadata": _meta(name, namespace),
            "spec": {"interval": "1h", "url": url, "ref": {"tag": tag},
                     "layerSelector": {"mediaType": HELM_CHART_MEDIA_TYPE, "operation": "copy"}}}


def helm_release(name: str, namespace: str, release_name: str, values: dict, *, chart: str | None = None,
                 version: str | None = None, helm_repository: str | None = None,
                 oci_repository: str | None = None, interval: str = "10m", depends_on: tuple[str, ...] = ()) -> dict:
    spec: dict[str, Any] = {
        "interval": interval,
        "releaseName": release_name,
        "install": {"crds": "CreateReplace", "remediation": {"retries": 3}},
        "upgrade": {"crds": "CreateReplace", "remediation": {"retries": 3, "remediateLastFailure": True}},
        "values": values,
    }
    if depends_on:
        spec["dependsOn"] = [{"name": d, "namespace": namespace} for d in depends_on]
    if oci_repository:
        spec["chartRef"] = {"kind": "OCIRepository", "name": oci_repository, "namespace": namespace}
    else:
        spec["chart"] = {"spec": {"chart": chart, "version": version, "interval": "1h",
                                  "sourceRef": {"kind": "HelmRepository", "name": helm_repository,
                                                "namespace": namespace}}}
    return {"apiVersion": HELM_API, "kind": "HelmRelease", "metadata": _meta(name, namespace), "spec": spec}


def kustomize_file(resources: list[str], generators: list[dict] | None = None) -> dict:
    """A kustomize `kustomization.yaml` (kustomize.config.k8s.io, not the Flux kind)."""
    doc: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                           "resources": list(resources)}
    if generators:
        doc["configMapGenerator"] = generators
    return doc
