"""Cluster-specific values the fleet owns: computed from the model, applied after all layers.

These are the few values that follow from where a cluster is (its region's endpoints, its
identity) rather than from taste; a layer cannot override them, and lint proves they point at
the right place. Everything else comes from base ← overlay ← region ← cluster.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

from ..model import Cluster, Component
from .templates import render_template


FLUENT_OUTPUTS = "base/components/fluent-bit/outputs.conf.j2"
#: (component, values path) → the template in base/ that renders that fleet-owned value.
WIRED_TEMPLATES = {("fluent-bit", ("config", "outputs")): FLUENT_OUTPUTS}


def _fluent_bit(root: Path, cluster: Cluster, values: dict) -> dict:
    config = values.setdefault("config", {})
    config["outputs"] = render_template(root, FLUENT_OUTPUTS, region=cluster.region, cluster=cluster)
    return values


def _vmagent(root: Path, cluster: Cluster, values: dict) -> dict:
    values["remoteWrite"] = [{
        "url": cluster.region.remote_write_url,
        "urlRelabelConfig": [copy.deepcopy(r.rule) for r in cluster.customer_relabel],
        "maxDiskUsagePerURL": cluster.region.vmagent_queue_limit,
    }]
    # The queue's volume (StatefulSet volumeClaimTemplate), sized by the region.
    values.setdefault("persistentVolume", {})["size"] = f"{cluster.region.vmagent_queue_gib}Gi"
    glob = values.setdefault("config", {}).setdefault("global", {})
    glob["external_labels"] = {"cluster_id": cluster.id, "region": cluster.region.slug}
    return values


def _alloy(root: Path, cluster: Cluster, values: dict) -> dict:
    """The control plane's Alloy reads the managed Postgres DSN from a Secret (by name only)."""
    if cluster.profile == "control-plane":
        env = values.setdefault("alloy", {}).setdefault("extraEnv", [])
        env.append({"name": "POSTGRES_DSN", "valueFrom": {"secretKeyRef": {
            "name": cluster.control_plane["postgresDsnSecretName"], "key": "dsn"}}})
    return values


WIRING: dict[str, Callable[[Path, Cluster, dict], dict]] = {
    "fluent-bit": _fluent_bit,
    "vmagent": _vmagent,
    "alloy": _alloy,
}


def final_values(root: Path, cluster: Cluster, component: Component) -> dict:
    """The component's merged values with the fleet-owned values applied."""
    values = copy.deepcopy(component.values)
    wire = WIRING.get(component.name)
    return wire(root, cluster, values) if wire else values
